"""Packed variable-length self-attention (report Sec. 4.1.1: images of any resolution are
"flattened into a single sequence and processed using variable-length FlashAttention").

Tokens of many segments (images, windows, documents) are concatenated into one (N, H, Dh)
tensor with boundaries `cu_seqlens` = [0, n0, n0+n1, ..., N]. Attention is computed within
each segment only, as if each ran alone: no padding and no (N, N) mask.

How (CPU and GPU alike, no custom kernel): segments of equal length are gathered into one
(S, H, L, Dh) batch and run through one `F.scaled_dot_product_attention` call, so a batch
costs one kernel launch per *distinct* length. Memory is that of the per-segment attention
(Σ L² per head at most, O(L) with a fused kernel), linear in the number of segments and never
quadratic in the packed length N. When every segment has the same length (e.g. equal images,
or all full windows) the gather is a free reshape. Departure from the release: no
FlashAttention-varlen kernel; the result is the same up to float rounding.

Shapes: N packed tokens, H heads, Dh head dim, D = H·Dh model width, S segments, L length.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from dina.errors import BadArgument
from dina.layers.rope import RotaryTables, apply_rope


def _lengths(cu_seqlens: torch.Tensor, n: int) -> list[int]:
    cu = [int(c) for c in cu_seqlens.tolist()]
    if cu_seqlens.ndim != 1 or len(cu) < 2 or cu[0] != 0 or cu[-1] != n:
        raise BadArgument(f"cu_seqlens must run from 0 to {n} tokens, got {cu[:4]}...{cu[-2:]}")
    lengths = [b - a for a, b in itertools.pairwise(cu)]
    if min(lengths) < 0:
        raise BadArgument("cu_seqlens must be non-decreasing")
    return lengths


def _segment_groups(lengths: list[int]) -> dict[int, list[int]]:
    """Length -> start offsets of the segments with that length (empty segments dropped)."""
    groups: dict[int, list[int]] = {}
    start = 0
    for length in lengths:
        if length:
            groups.setdefault(length, []).append(start)
        start += length
    return groups


def _sdpa_SHLD(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """(S, L, H, Dh) x3 -> (S, L, H, Dh) attention within each of the S segments."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
    return out.transpose(1, 2)


def packed_attention(
    q_NHD: torch.Tensor, k_NHD: torch.Tensor, v_NHD: torch.Tensor, cu_seqlens: torch.Tensor, *, causal: bool = False
) -> torch.Tensor:
    """Softmax(q kᵀ / √Dh) v within each segment of `cu_seqlens`; (N, H, Dh) q, k and (N, H, Dv) v -> (N, H, Dv).

    `causal`: a token sees only itself and earlier tokens of its own segment.
    """
    n, h, d = q_NHD.shape
    dv = v_NHD.shape[-1]  # values may be narrower than queries and keys (MLA: 128 vs 192)
    groups = _segment_groups(_lengths(cu_seqlens, n))
    if len(groups) == 1:
        (length,) = groups
        s = len(groups[length])
        if s * length == n:  # all segments equal and contiguous: a reshape, no gather
            shape = (s, length, h, d)
            out = _sdpa_SHLD(q_NHD.reshape(shape), k_NHD.reshape(shape), v_NHD.reshape(s, length, h, dv), causal)
            return out.reshape(n, h, dv)
    order_parts, out_parts = [], []
    for length, starts in groups.items():
        idx_SL = torch.tensor(starts, device=q_NHD.device)[:, None] + torch.arange(length, device=q_NHD.device)
        out_parts.append(_sdpa_SHLD(q_NHD[idx_SL], k_NHD[idx_SL], v_NHD[idx_SL], causal).reshape(-1, h, dv))
        order_parts.append(idx_SL.reshape(-1))
    # Every token belongs to exactly one segment, so the scatter writes each row once.
    return q_NHD.new_zeros(n, h, dv).index_copy(0, torch.cat(order_parts), torch.cat(out_parts))


class SelfAttention(nn.Module):
    """Multi-head self-attention over packed segments with optional rotary positions.

    Parameter names follow Qwen2.5-VL's vision attention: `qkv` (D -> 3D, laid out
    [q heads | k heads | v heads]) and `proj` (D -> D).
    """

    def __init__(self, dim: int, heads: int, *, bias: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(
        self, x_ND: torch.Tensor, cu_seqlens: torch.Tensor, *, rot: RotaryTables | None = None, causal: bool = False
    ) -> torch.Tensor:
        """(N, D) packed tokens -> (N, D)."""
        n = x_ND.shape[0]
        q, k, v = self.qkv(x_ND).view(n, 3, self.heads, self.head_dim).unbind(1)
        if rot is not None:
            q, k = apply_rope(q, rot), apply_rope(k, rot)
        return self.proj(packed_attention(q, k, v, cu_seqlens, causal=causal).reshape(n, -1))
