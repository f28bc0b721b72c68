"""One level of the residual quantizer: an EMA codebook and its nearest-entry search.

Report Sec. 2.2.3 eq. (4): for each entry k keep a running cluster size
N_k ← γN_k + (1−γ)n_k and embedding sum m_k ← γm_k + (1−γ)Σ_{r∈S_k} r, then set
e_k ← m_k / N_k with Laplace-smoothed N_k; entries whose N_k falls below a threshold
are re-initialized from the current batch. The release keeps the same three tensors
per level (`embed`, `embed_avg`/`embed_ema`, `cluster_size`/`cluster_size_ema`).

Choices: `cluster_size_K` stores the raw EMA N_k; the smoothed value
N̂_k = (N_k + ε)/(ΣN + Kε)·ΣN is used only to divide m_k (as in Sonnet's VQ-EMA), so the
dead test sees the raw count. The search is always fp32 with the expanded distance
‖e‖² − 2r·e (‖r‖² is constant per row and dropped), computed in row blocks so that no
N×K×D (nor an unbounded N×K) temporary exists.

Legend: N = vectors, K = codebook entries, D = codebook dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

# Rows of the N×K distance block are chosen so one block holds about this many floats
# (4 MiB; 2^18-2^20 were fastest of 2^16..2^22 on our CPU): big enough for an efficient GEMM,
# small enough to stay in cache for any codebook size.
_BLOCK_ELEMENTS = 1 << 20


def nearest_codes(r_ND: Tensor, embed_KD: Tensor) -> Tensor:
    """Index of the nearest codebook entry (squared Euclidean, fp32) per row -> (N,) int64.

    Ties go to the lowest index (torch.argmin). Input of any float dtype is upcast first.
    """
    r_ND = r_ND.float()
    embed_KD = embed_KD.float()
    n_rows, n_codes = r_ND.shape[0], embed_KD.shape[0]
    embed_sq_K = embed_KD.square().sum(dim=1)
    embed_DK = embed_KD.t()
    codes_N = torch.empty(n_rows, dtype=torch.long, device=r_ND.device)
    block = max(1, _BLOCK_ELEMENTS // n_codes)
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        # ‖e‖² − 2 r·e in one fused GEMM; argmin over it equals argmin of ‖r − e‖².
        dist_BK = torch.addmm(embed_sq_K, r_ND[start:stop], embed_DK, beta=1.0, alpha=-2.0)
        torch.argmin(dist_BK, dim=1, out=codes_N[start:stop])
    return codes_N


@dataclass(frozen=True)
class BatchStats:
    """One level's assignment statistics for a batch: n_k (K,) and Σ_{r∈S_k} r (K, D), fp32."""

    counts_K: Tensor
    sums_KD: Tensor


def assignment_stats(r_ND: Tensor, codes_N: Tensor, n_codes: int, weights_N: Tensor | None = None) -> BatchStats:
    """Count and sum the rows assigned to each entry, each row counted `weights_N[i]` times if given."""
    counts_K = torch.bincount(codes_N, weights=weights_N, minlength=n_codes).float()
    sums_KD = torch.zeros(n_codes, r_ND.shape[1], dtype=torch.float32, device=r_ND.device)
    rows_ND = r_ND.float() if weights_N is None else r_ND.float() * weights_N.float().unsqueeze(1)
    sums_KD.index_add_(0, codes_N, rows_ND)
    return BatchStats(counts_K=counts_K, sums_KD=sums_KD)


class EMACodebook(nn.Module):
    """A K×D codebook trained by EMA, not by gradients (all state lives in buffers)."""

    embed_KD: Tensor
    embed_sum_KD: Tensor
    cluster_size_K: Tensor

    def __init__(self, *, n_codes: int, dim: int, generator: torch.Generator) -> None:
        """Entries start as N(0, 1) draws from `generator`, each counted once (N_k = 1, m_k = e_k)."""
        super().__init__()
        embed_KD = torch.randn(n_codes, dim, generator=generator)
        self.register_buffer("embed_KD", embed_KD)
        self.register_buffer("embed_sum_KD", embed_KD.clone())
        self.register_buffer("cluster_size_K", torch.ones(n_codes))

    @property
    def n_codes(self) -> int:
        return self.embed_KD.shape[0]

    def nearest(self, r_ND: Tensor) -> Tensor:
        """Nearest entry per row -> (N,) int64."""
        return nearest_codes(r_ND, self.embed_KD)

    def lookup(self, codes_N: Tensor) -> Tensor:
        """Entries for ids (N,) -> (N, D) fp32."""
        return self.embed_KD.float().index_select(0, codes_N)

    @torch.no_grad()
    def ema_update_(self, counts_K: Tensor, sums_KD: Tensor, *, decay: float, eps: float) -> None:
        """Eq. (4) with Laplace smoothing, from (already reduced) batch statistics."""
        self.cluster_size_K.mul_(decay).add_(counts_K, alpha=1.0 - decay)
        self.embed_sum_KD.mul_(decay).add_(sums_KD, alpha=1.0 - decay)
        total = self.cluster_size_K.sum()
        smoothed_K = (self.cluster_size_K + eps) / (total + self.n_codes * eps) * total
        self.embed_KD.copy_(self.embed_sum_KD / smoothed_K.unsqueeze(1))

    @torch.no_grad()
    def reset_(self, entries_E: Tensor, vectors_ED: Tensor, *, cluster_size: float) -> None:
        """Re-initialize entries (E,) to vectors (E, D) with a fresh EMA state N_k, m_k = e_k·N_k."""
        vectors_ED = vectors_ED.to(self.embed_KD)
        self.embed_KD.index_copy_(0, entries_E, vectors_ED)
        self.embed_sum_KD.index_copy_(0, entries_E, vectors_ED * cluster_size)
        self.cluster_size_K.index_fill_(0, entries_E, cluster_size)
