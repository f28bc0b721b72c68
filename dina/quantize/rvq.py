"""Residual vector quantization with EMA codebooks, shared by the vision and audio tokenizers.

Implements report Sec. 2.2.3 eq. (3)-(5) (Sec. 4.1.1 stage 1): r_0 = x; for each level
l, q̂_l = e[argmin_k ‖r_{l−1} − e_k‖²], r_l = r_{l−1} − q̂_l; ẑ = Σ_l q̂_l. Codebooks are
updated by EMA with Laplace smoothing and dead-entry restarts (see `codebook.py`), not by
gradients. Release §3 (vision: 8 × 16384, fp32 argmin) and §7 (audio: 8192, 4096, 2048,
1024 × 5) use the same scheme, so one module serves both through `codebook_sizes`.

Behaviour and departures:
- Loss: the release's "commitment = mean over levels of MSE(x, cumulative quant)", i.e.
  mean_l MSE(x, sg[Σ_{i≤l} q̂_i]) times `commitment_weight` (λ_c of eq. 5, not published).
- Straight-through: the output is q̂ + (x − sg[x]) rather than x + sg[q̂ − x]; both pass
  the gradient 1 to x, but ours equals Σ q̂ bit for bit, so `decode(encode(x))` is exactly
  the forward output (in eval mode; a training forward changes the codebooks after use).
- Updates happen iff `self.training` (also under `torch.no_grad()`); `encode` never updates.
- Initialization (not published by the release): entries start as N(0, 1) from `seed`
  with N_k = 1, so with dead_threshold >= 1 every entry the first batch leaves unused is
  restarted from that batch at once. `kmeans_init` instead re-seeds each level from the
  first batch's residuals plus `kmeans_iters` Lloyd steps; it is off by default because
  on 32-cluster toy data it settled in worse k-means minima (loss 0.47-1.04 vs 0.18-0.50
  after 80 steps) and on Gaussian data it made no difference.
- Restarted entries get N_k = max(1, dead_threshold) and m_k = e_k·N_k.
- `residual_weight_power` α (ours; 0, the report's plain EMA k-means, by default): each
  residual enters its level's EMA statistics with weight w_i = ‖r_i‖^(2α), normalized to mean 1
  over the (global) batch, so the update minimizes Σ w_i ‖r_i − e_k‖² and the level spends more
  entries where residuals are still large. Why, for the vision `tiny` preset (α = 0.5): there
  83% of the tokens are flat background, which plain k-means serves with over half of every
  level's entries although 8 levels leave it 2% of its variance, while the 17% of tokens that
  hold an object or a sign keep 12% of theirs (84.8 of 688). With α = 0.5 they keep 10% (68.6),
  the background 3% (0.30 of 10.5), and held-out usage stays ≥ 0.78 per level (α = 1: 67.5, but
  usage 0.63). The full recipe's commitment loss falls from 0.129 to 0.100, and on 200 held-out
  images objects come back more often (GenEval 0.785 against 0.75) at the same exact-scene rate
  (0.475). The normalization's sums go through `CodebookSync.reduce_stats_`, so data-parallel
  ranks weight as one process would on the union batch. A training forward costs ~4% more.
- The release's codebooks carry one unused extra row (`embed[:-1]`); ours have exactly K.
- Random choices use a generator seeded from (seed, step, level), so runs reproduce and
  resume without saving generator state; data-parallel ranks agree through `CodebookSync`.

Legend: N = vectors (any leading shape is accepted and kept; internally flattened to M),
D = codebook dim, L = levels, K = entries of one level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dina.config_io import ConfigBase
from dina.errors import BadArgument, BadCodes, BadConfig
from dina.quantize.codebook import EMACodebook, assignment_stats
from dina.quantize.sync import CodebookSync, LocalCodebookSync

_INIT, _RESTART = 0, 1  # purposes mixed into the per-step seed


@dataclass(frozen=True, kw_only=True)
class RVQConfig(ConfigBase):
    """Residual VQ: `len(codebook_sizes)` levels over `dim`-dimensional vectors."""

    dim: int
    codebook_sizes: tuple[int, ...]
    decay: float = 0.99  # EMA γ
    eps: float = 1e-5  # Laplace smoothing of cluster sizes
    dead_threshold: float = 1.0  # restart entries whose EMA cluster size N_k < this; 0 disables
    commitment_weight: float = 1.0
    kmeans_init: bool = False  # see the module docstring: restarts already seed from data
    kmeans_iters: int = 2
    residual_weight_power: float = 0.0  # α: EMA statistics weighted by ‖r‖^(2α) (module docstring)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.codebook_sizes, list):
            object.__setattr__(self, "codebook_sizes", tuple(self.codebook_sizes))
        checks = [
            (isinstance(self.dim, int) and self.dim >= 1, f"rvq dim must be a positive int, got {self.dim!r}"),
            (isinstance(self.codebook_sizes, tuple) and len(self.codebook_sizes) >= 1, "rvq needs >= 1 level"),
            (all(isinstance(k, int) and k >= 2 for k in self.codebook_sizes), "rvq codebooks need >= 2 entries"),
            (0.0 < self.decay < 1.0, f"rvq decay must be in (0, 1), got {self.decay}"),
            (self.eps > 0.0, f"rvq eps must be > 0, got {self.eps}"),
            (self.dead_threshold >= 0.0, f"rvq dead_threshold must be >= 0, got {self.dead_threshold}"),
            (self.commitment_weight >= 0.0, f"rvq commitment_weight must be >= 0, got {self.commitment_weight}"),
            (self.kmeans_iters >= 0, f"rvq kmeans_iters must be >= 0, got {self.kmeans_iters}"),
            (
                self.residual_weight_power >= 0.0,
                f"rvq residual_weight_power must be >= 0, got {self.residual_weight_power}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise BadConfig(message)

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    @property
    def restart_cluster_size(self) -> float:
        """N_k given to a (re)initialized entry: one observation, and never born dead."""
        return max(1.0, self.dead_threshold)


@dataclass(frozen=True, kw_only=True)
class RVQOutput:
    """A forward pass. Batch statistics are over this rank's batch, before any update."""

    quantized_ND: Tensor  # (*N, D) in x's dtype: Σ q̂ with a straight-through gradient to x
    codes_NL: Tensor  # (*N, L) int64
    commit_loss: Tensor  # () fp32, already times commitment_weight
    perplexity_L: Tensor  # (L,) exp(entropy) of the batch's code histogram per level
    usage_L: Tensor  # (L,) fraction of each level's entries used by the batch
    restarts_L: Tensor  # (L,) int64 entries re-initialized by this step (0 in eval)
    residual_norm_L: Tensor  # (L,) mean ‖r_l‖ after each level


class ResidualVQ(nn.Module):
    """L EMA codebooks applied to successive residuals; `forward` trains, `encode`/`decode` serve."""

    initialized: Tensor
    steps: Tensor

    def __init__(self, config: RVQConfig) -> None:
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(config.seed)
        self.codebooks = nn.ModuleList(
            EMACodebook(n_codes=k, dim=config.dim, generator=generator) for k in config.codebook_sizes
        )
        self.register_buffer("initialized", torch.tensor(not config.kmeans_init))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.sync: CodebookSync = LocalCodebookSync()

    def set_sync(self, sync: CodebookSync | None) -> None:
        """Install the hook that reduces statistics across ranks (None: back to single-process)."""
        self.sync = LocalCodebookSync() if sync is None else sync

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return self.config.codebook_sizes

    def _books(self) -> list[EMACodebook]:
        return [book for book in self.codebooks if isinstance(book, EMACodebook)]

    def forward(self, x_ND: Tensor) -> RVQOutput:
        """Quantize (*N, D) -> RVQOutput; in training mode also update the codebooks."""
        x_MD = self._flatten(x_ND)
        update = self.training
        if update and x_MD.shape[0] == 0:
            raise BadArgument("a training step of ResidualVQ needs at least one vector")
        init = update and not bool(self.initialized)
        x32_MD = x_MD.float()
        r_MD = x32_MD.detach()
        q_sum_MD = torch.zeros_like(r_MD)
        codes, losses, perplexity, usage, restarts, norms = [], [], [], [], [], []
        for level, book in enumerate(self._books()):
            weights_M = self._weights(r_MD) if update else None  # one all-reduce per level, shared by init and EMA
            if init:
                self._init_level(book, r_MD, weights_M, level)
            codes_M = book.nearest(r_MD)
            q_MD = book.lookup(codes_M)  # a copy: the update below cannot change it
            counts_K = torch.bincount(codes_M, minlength=book.n_codes).float()
            perplexity.append(_perplexity(counts_K))
            usage.append((counts_K > 0).float().mean())
            restarts.append(self._update_level(book, r_MD, weights_M, codes_M, level) if update else 0)
            q_sum_MD = q_sum_MD + q_MD
            r_MD = r_MD - q_MD
            losses.append(_mean_or_zero(F.mse_loss(x32_MD, q_sum_MD, reduction="none")))
            norms.append(_mean_or_zero(r_MD.norm(dim=1)))
            codes.append(codes_M)
        if update:
            self.initialized.fill_(True)
            self.steps.add_(1)
        # q̂ + (x − sg[x]): value exactly Σ q̂, gradient exactly 1 w.r.t. x.
        quantized_MD = q_sum_MD + (x32_MD - x32_MD.detach())
        lead = x_ND.shape[:-1]
        return RVQOutput(
            quantized_ND=quantized_MD.to(x_ND.dtype).reshape(x_ND.shape),
            codes_NL=torch.stack(codes, dim=1).reshape(*lead, self.levels),
            commit_loss=self.config.commitment_weight * torch.stack(losses).mean(),
            perplexity_L=torch.stack(perplexity),
            usage_L=torch.stack(usage),
            restarts_L=torch.tensor(restarts, dtype=torch.long),
            residual_norm_L=torch.stack(norms),
        )

    @torch.no_grad()
    def encode(self, x_ND: Tensor) -> Tensor:
        """Codes of (*N, D) vectors -> (*N, L) int64. Never updates, whatever the mode."""
        r_MD = self._flatten(x_ND).float()
        codes = []
        for book in self._books():
            codes_M = book.nearest(r_MD)
            r_MD = r_MD - book.lookup(codes_M)
            codes.append(codes_M)
        return torch.stack(codes, dim=1).reshape(*x_ND.shape[:-1], self.levels)

    @torch.no_grad()
    def embed_codes(self, codes_NL: Tensor) -> Tensor:
        """Per-level entries of (*N, L) codes -> (*N, L, D) fp32."""
        flat_ML = self._check_codes(codes_NL)
        per_level = [book.lookup(flat_ML[:, level]) for level, book in enumerate(self._books())]
        return torch.stack(per_level, dim=1).reshape(*codes_NL.shape, self.config.dim)

    @torch.no_grad()
    def decode(self, codes_NL: Tensor) -> Tensor:
        """Σ of the level entries of (*N, L) codes -> (*N, D) fp32 (summed in level order, as forward)."""
        flat_ML = self._check_codes(codes_NL)
        total_MD = torch.zeros(flat_ML.shape[0], self.config.dim, device=flat_ML.device)
        for level, book in enumerate(self._books()):
            total_MD = total_MD + book.lookup(flat_ML[:, level])
        return total_MD.reshape(*codes_NL.shape[:-1], self.config.dim)

    def _flatten(self, x_ND: Tensor) -> Tensor:
        if not isinstance(x_ND, Tensor) or not x_ND.is_floating_point():
            raise BadArgument("ResidualVQ expects a floating-point tensor")
        if x_ND.ndim < 1 or x_ND.shape[-1] != self.config.dim:
            raise BadArgument(f"ResidualVQ expects (..., {self.config.dim}) vectors, got {tuple(x_ND.shape)}")
        return x_ND.reshape(-1, self.config.dim)

    def _check_codes(self, codes_NL: Tensor) -> Tensor:
        """Validate ids and levels; return them flattened to (M, L) on the codebooks' device."""
        if not isinstance(codes_NL, Tensor) or codes_NL.is_floating_point() or codes_NL.is_complex():
            raise BadCodes("codes must be an integer tensor")
        if codes_NL.ndim < 1 or codes_NL.shape[-1] != self.levels:
            raise BadCodes(f"codes need {self.levels} levels in the last dim, got shape {tuple(codes_NL.shape)}")
        flat_ML = codes_NL.reshape(-1, self.levels).long().to(self.steps.device)
        for level, size in enumerate(self.codebook_sizes):
            ids_M = flat_ML[:, level]
            bad_M = (ids_M < 0) | (ids_M >= size)
            if bool(bad_M.any()):
                value = int(ids_M[bad_M][0])
                raise BadCodes(f"code {value} at level {level} is outside [0, {size})")
        return flat_ML

    def _generator(self, level: int, purpose: int) -> torch.Generator:
        """Same stream on every rank and after a resume: a function of (seed, step, level, purpose)."""
        key = f"{self.config.seed},{int(self.steps)},{level},{purpose}".encode()
        seed = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1
        return torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def _weights(self, r_MD: Tensor) -> Tensor | None:
        """Per-residual weights ‖r‖^(2α) / their mean over all ranks' rows; None when α = 0."""
        power = self.config.residual_weight_power
        if power == 0.0:
            return None
        w_M = r_MD.float().square().sum(dim=1).pow(power)
        # The global mean is a count and a sum: the same all-reduce as the codebook statistics.
        count_1, total_11 = torch.full((1,), float(w_M.numel()), device=w_M.device), w_M.sum().reshape(1, 1)
        self.sync.reduce_stats_(count_1, total_11)
        mean = total_11[0, 0] / count_1[0].clamp(min=1.0)
        return w_M / mean if mean > 0 else torch.ones_like(w_M)

    @torch.no_grad()
    def _update_level(
        self, book: EMACodebook, r_MD: Tensor, weights_M: Tensor | None, codes_M: Tensor, level: int
    ) -> int:
        """EMA update from this level's residual inputs (weighted by `_weights`), then restart dead
        entries; returns restarts."""
        stats = assignment_stats(r_MD, codes_M, book.n_codes, weights_M)
        self.sync.reduce_stats_(stats.counts_K, stats.sums_KD)
        book.ema_update_(stats.counts_K, stats.sums_KD, decay=self.config.decay, eps=self.config.eps)
        # N_k is identical on every rank after the reduction, so all ranks agree on `dead`.
        dead_E = (book.cluster_size_K < self.config.dead_threshold).nonzero().squeeze(1)
        if dead_E.numel() == 0:
            return 0
        vectors_ED = self.sync.choose_rows(r_MD, dead_E.numel(), self._generator(level, _RESTART))
        book.reset_(dead_E, vectors_ED, cluster_size=self.config.restart_cluster_size)
        return dead_E.numel()

    @torch.no_grad()
    def _init_level(self, book: EMACodebook, r_MD: Tensor, weights_M: Tensor | None, level: int) -> None:
        """Seed a level from the batch's residuals, then refine with (weighted) Lloyd steps."""
        all_K = torch.arange(book.n_codes, device=r_MD.device)
        size = self.config.restart_cluster_size
        book.reset_(all_K, self.sync.choose_rows(r_MD, book.n_codes, self._generator(level, _INIT)), cluster_size=size)
        for _ in range(self.config.kmeans_iters):
            stats = assignment_stats(r_MD, book.nearest(r_MD), book.n_codes, weights_M)
            self.sync.reduce_stats_(stats.counts_K, stats.sums_KD)
            means_KD = stats.sums_KD / stats.counts_K.clamp(min=torch.finfo(torch.float32).tiny).unsqueeze(1)
            # Entries no vector chose keep their seed vector (the restarts handle them later).
            book.reset_(all_K, torch.where(stats.counts_K.unsqueeze(1) > 0, means_KD, book.embed_KD), cluster_size=size)


def check_level_ids(codes_NL: Tensor, codebook_sizes: Sequence[int], where: str = "", first_level: int = 0) -> None:
    """Refuse ids outside [0, K_l) at any level l (the last dim); `where` prefixes the message, and
    the levels are numbered from `first_level` (a slice of the levels)."""
    for i, k in enumerate(codebook_sizes):
        level, ids = first_level + i, codes_NL[..., i]
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= k):
            raise BadCodes(f"{where}level {level}: ids must be in [0, {k}), got [{int(ids.min())}, {int(ids.max())}]")


def code_usage(codes_NL: Tensor, codebook_sizes: Sequence[int]) -> tuple[list[float], list[float]]:
    """Per level over (N, L) codes: the fraction of its K_l codes that occur, and the perplexity
    (exp entropy) of its histogram, in float64."""
    usage, perplexity = [], []
    for level, k in enumerate(codebook_sizes):
        counts_K = torch.bincount(codes_NL[:, level], minlength=k).double()
        usage.append(float((counts_K > 0).double().mean()))
        perplexity.append(float(_perplexity(counts_K)))
    return usage, perplexity


def _perplexity(counts_K: Tensor) -> Tensor:
    """exp(entropy) of a code histogram: 1 when one code takes all, K when uniform."""
    probs_K = counts_K / counts_K.sum().clamp(min=1.0)
    entropy = -(probs_K * torch.log(probs_K.clamp(min=1e-30))).sum()
    return entropy.exp()


def _mean_or_zero(values: Tensor) -> Tensor:
    """Mean that is 0 (not NaN) over an empty batch."""
    return values.mean() if values.numel() > 0 else values.new_zeros(())
