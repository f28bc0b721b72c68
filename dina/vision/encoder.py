"""dNaViT's Semantic-and-Aligned Encoder (SAE) at native resolution (report Sec. 2.2.1-2.2.2,
4.1.1; release §3 "SAE encoder", "Bridge").

The release adopts the Qwen2.5-VL vision transformer as its SAE. This module is that
architecture, sized by `SAEConfig`, over packed images of any resolution:

  patches (N, 588) --patch_embed (Linear, no bias)--> (N, D)
    --ViTStack: pre-norm RMSNorm/SwiGLU blocks, 2-D RoPE on (row, col) patch positions,
      bidirectional attention within each image (or each window, below)-->
    --bridge: RMSNorm per patch, concat the 4 patches of a 2×2 block (4D), Linear–GELU–Linear-->
  features (N/4, out_dim), one per 28-px token, raster order within each image.

Window attention: Qwen2.5-VL attends within 112-px windows (4×4 tokens) in all blocks but
`fullatt_block_indexes`. With `window_tokens > 0` we do the same: patches are permuted once so
each window is contiguous (merge blocks stay whole), windowed blocks use window boundaries,
full blocks use image boundaries (bidirectional attention with explicit RoPE positions does not
depend on token order, so one permutation serves both), and the bridge output is un-permuted
to raster order. `window_tokens = 0` is full attention in every block (our tiny preset: its
images are small and windows would save nothing).

Departures from the release: one frame per patch (588 inputs) instead of a duplicated frame
(1176), exact for the Conv3d kernel summed over time (see `dina.weights.qwen2_5_vl`); the
bridge's output width is not published, `sae_qwen2_5_vl` uses Qwen2.5-VL-7B's merger (3584).

Shapes: N patches, T = N/merge² tokens, D width, P = 3·patch² patch values, O = out_dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dina.errors import BadArgument, BadConfig
from dina.layers.norm import RMSNorm
from dina.layers.vit import ViTConfig, ViTStack
from dina.vision.preprocess import PackedImages


@dataclass(frozen=True, kw_only=True)
class SAEConfig:
    """Sizes of the SAE encoder; `window_tokens` = window side in merged tokens (0 = no windows)."""

    patch_size: int = 14
    merge: int = 2
    dim: int
    depth: int
    heads: int
    mlp_dim: int
    out_dim: int
    norm_eps: float = 1e-6
    bias: bool = False  # qkv / proj / MLP biases (on for Qwen2.5-VL weights)
    rope_theta: float = 10000.0
    window_tokens: int = 0
    full_attention_blocks: tuple[int, ...] = ()
    pixel_path: bool = False  # ours: a linear path from each token's pixels to its feature (see `SemanticEncoder`)

    def __post_init__(self) -> None:
        _ = self.vit  # checks dim / heads / depth / block indexes
        if self.dim // self.heads % 4:
            raise BadConfig(f"SAE head dim {self.dim // self.heads} must divide by 4 (2-D rotary)")
        if self.patch_size < 1 or self.merge < 1 or self.out_dim < 1 or self.window_tokens < 0:
            raise BadConfig(f"bad SAE sizes: {self}")

    @property
    def patch_dim(self) -> int:
        return 3 * self.patch_size**2

    @property
    def merged_dim(self) -> int:
        return self.merge**2 * self.dim

    @property
    def vit(self) -> ViTConfig:
        return ViTConfig(
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            mlp_dim=self.mlp_dim,
            norm_eps=self.norm_eps,
            bias=self.bias,
            rope_theta=self.rope_theta,
            full_attention_blocks=self.full_attention_blocks,
        )


def sae_tiny() -> SAEConfig:
    """~1.3M parameters: trains on a 2-core CPU; full attention (ShapesWorld images are small).
    The bridge keeps half the merged width (512 -> 256), as the release keeps most of it (5120 -> 3584)."""
    return SAEConfig(dim=128, depth=4, heads=4, mlp_dim=352, out_dim=256, pixel_path=True)


def sae_qwen2_5_vl() -> SAEConfig:
    """The release's SAE = Qwen2.5-VL ViT (release §3): 32 × 1280, 16 heads, SwiGLU 3420 with biases,
    RMSNorm eps 1e-6, 112-px windows with full attention in blocks 7, 15, 23, 31 (Qwen2.5-VL's
    published `fullatt_block_indexes`; the release's config value is not published). out_dim 3584 =
    Qwen2.5-VL-7B's merger width (the release's bridge `out_hidden_size` is not published)."""
    return SAEConfig(
        dim=1280,
        depth=32,
        heads=16,
        mlp_dim=3420,
        out_dim=3584,
        bias=True,
        window_tokens=4,
        full_attention_blocks=(7, 15, 23, 31),
    )


@dataclass(frozen=True, kw_only=True)
class EncoderOutput:
    """`features_ND` (T, O): one feature per 28-px token; image i owns rows cu_tokens[i]:cu_tokens[i+1]."""

    features_ND: torch.Tensor
    grid_hw: tuple[tuple[int, int], ...]
    cu_tokens: torch.Tensor


@dataclass(frozen=True, kw_only=True)
class WindowPartition:
    """`perm_N`: packed patch index at each window-ordered slot; `cu_windows`: window boundaries."""

    perm_N: torch.Tensor
    cu_windows: torch.Tensor


def window_partition(grid_hw: tuple[tuple[int, int], ...], window_tokens: int, merge: int) -> WindowPartition:
    """Group each image's patches into square windows of `window_tokens`² tokens (edge windows smaller).

    Windows tile the token grid from the top-left, in raster order, as in Qwen2.5-VL; the 4
    patches of a token stay consecutive.
    """
    perms, lengths, offset, m2 = [], [], 0, merge * merge
    for th, tw in grid_hw:
        r, c = torch.arange(th)[:, None], torch.arange(tw)[None, :]
        window_T = ((r // window_tokens) * math.ceil(tw / window_tokens) + c // window_tokens).reshape(-1)
        order_T = torch.argsort(window_T, stable=True)
        perms.append(offset + (order_T[:, None] * m2 + torch.arange(m2)).reshape(-1))
        lengths.append(torch.bincount(window_T) * m2)
        offset += th * tw * m2
    cu = torch.cat([torch.zeros(1, dtype=torch.long), torch.cat(lengths).cumsum(0)])
    return WindowPartition(perm_N=torch.cat(perms), cu_windows=cu.to(torch.int32))


class Bridge(nn.Module):
    """RMSNorm per patch -> concat 2×2 patches (merge²·D) -> Linear–GELU–Linear -> O (release `ln_q`, `mlp.0`, `mlp.2`)."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.fc1 = nn.Linear(cfg.merged_dim, cfg.merged_dim)
        self.fc2 = nn.Linear(cfg.merged_dim, cfg.out_dim)
        self.merged_dim = cfg.merged_dim

    def forward(self, x_ND: torch.Tensor) -> torch.Tensor:
        """(N, D) patches in merge-block order -> (N/merge², O)."""
        x = self.norm(x_ND).reshape(-1, self.merged_dim)
        return self.fc2(F.gelu(self.fc1(x)))


def principal_directions(x_NV: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k principal components of N samples x (float64): variances (k,), largest first,
    and unit directions as rows (k, V)."""
    x = x_NV.double()
    x = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(x.T @ x / max(1, x.shape[0] - 1))
    order = torch.argsort(evals, descending=True)[:k]
    return evals[order], evecs[:, order].T


def principal_rows(
    x_NV: torch.Tensor, k: int, *, whiten: float, eps: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k principal directions of x as (k, V) rows, row i scaled so that its output has
    variance λ_i^(1 - whiten) (λ floored at eps · the largest): whiten 1 gives unit-variance
    outputs, 0 keeps x's variances. Returns the rows and those output variances (k,)."""
    evals, rows = principal_directions(x_NV, k)
    lam = evals.clamp_min(eps * max(float(evals[0]), eps))
    gain = lam.pow(-whiten / 2)
    return rows * gain[:, None], lam * gain**2


class SemanticEncoder(nn.Module):
    """The SAE: packed image patches -> one semantic feature per 28-px token.

    `pixel_path` (ours, on in `sae_tiny`, off for Qwen2.5-VL weights): z_p = bridge(x_L) + W·p,
    p the token's 2×2 patches. The report explains why a ViT's features can be decoded to pixels
    at all by eq. 7, z_p = x_0 + Σ F_l(x_{l-1}): the patch embedding x_0 reaches z_p through the
    residual stream. That holds for a wide pre-trained ViT (Qwen2.5-VL: 1,176 patch values into
    a 1,280-wide stream); our tiny SAE's stream is 4.6× narrower than a patch (588 -> 128) and
    its bridge halves it again, so after a few CPU-minutes of training its features keep much
    less pixel detail than a linear map of the same width could (a linear probe reads the
    token's pixels at MSE 0.030 after 400 steps without W, 0.015 with). W makes the x_0 term
    explicit at the feature; it starts at the tokens' principal directions, not whitened, so
    distances between features start as pixel distances within that subspace
    (`init_from_patches`), and trains with the rest.
    """

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Linear(cfg.patch_dim, cfg.dim, bias=False)
        self.vit = ViTStack(cfg.vit)
        self.bridge = Bridge(cfg)
        self.pixel_path = nn.Linear(cfg.merge**2 * cfg.patch_dim, cfg.out_dim, bias=False) if cfg.pixel_path else None
        self.init_weights()

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """How every tensor starts (fresh training; loaded checkpoints overwrite all of them):
        - `patch_embed.weight` ~ N(0, std) truncated at 2σ (inputs are CLIP-normalized, ~unit variance);
        - ViT blocks: see `ViTStack.init_weights` (N(0, std), residual outputs std/√(2·depth), biases 0, gains 1);
        - `bridge.norm.weight` = 1; `bridge.fc1/fc2.weight` ~ N(0, std) truncated, biases 0;
        - `pixel_path.weight` = 0 (`init_from_patches` gives it a data-dependent start)."""
        nn.init.trunc_normal_(self.patch_embed.weight, std=std, a=-2 * std, b=2 * std)
        self.vit.init_weights(std)
        nn.init.ones_(self.bridge.norm.weight)
        for fc in (self.bridge.fc1, self.bridge.fc2):
            nn.init.trunc_normal_(fc.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(fc.bias)
        if self.pixel_path is not None:
            nn.init.zeros_(self.pixel_path.weight)

    @torch.no_grad()
    def init_from_patches(self, patches_NP: torch.Tensor, eps: float = 1e-3) -> None:
        """Data-dependent start (ours) from training patches (N, P) in merge-block order:
        `patch_embed` rows = the patches' whitened principal directions (when dim > P the
        remaining rows keep their random start), and `pixel_path` (if any) = the principal
        directions of whole tokens (merge² patches), all scaled by one factor (not whitened).

        Why: the report's SAE is a pre-trained ViT whose residual stream carries the pixels to
        z_p (eq. 7); ours starts from scratch with an embedding 4.6× narrower than its input, so a
        random start already throws detail away. The principal subspace keeps the most pixel
        variance a linear map of that width can (on ShapesWorld, PCA-128 per 28-px token
        reconstructs at 31.8 dB).
        """
        cfg = self.cfg
        rows, _ = principal_rows(patches_NP, min(cfg.dim, cfg.patch_dim), whiten=1.0, eps=eps)
        self.patch_embed.weight[: rows.shape[0]] = rows.to(self.patch_embed.weight.dtype)
        if self.pixel_path is not None:
            tokens = patches_NP.reshape(-1, cfg.merge**2 * cfg.patch_dim)
            rows, var = principal_rows(tokens, min(cfg.out_dim, tokens.shape[1]), whiten=0.0, eps=eps)
            rows = rows / var[0].sqrt()  # one factor: the first output has unit variance
            self.pixel_path.weight.zero_()
            self.pixel_path.weight[: rows.shape[0]] = rows.to(self.pixel_path.weight.dtype)

    def _check(self, packed: PackedImages) -> None:
        cfg = self.cfg
        if (packed.patch_size, packed.merge) != (cfg.patch_size, cfg.merge):
            raise BadArgument(
                f"images were patchified with patch {packed.patch_size} / merge {packed.merge}, "
                f"the encoder expects {cfg.patch_size} / {cfg.merge}"
            )
        if packed.patches_NP.ndim != 2 or packed.patches_NP.shape[1] != cfg.patch_dim:
            raise BadArgument(f"patches must be (N, {cfg.patch_dim}), got {tuple(packed.patches_NP.shape)}")

    def forward(self, packed: PackedImages) -> EncoderOutput:
        """PackedImages with N patches -> EncoderOutput with (N/merge², out_dim) features."""
        self._check(packed)
        device = self.patch_embed.weight.device
        x_ND = self.patch_embed(packed.patches_NP.to(device=device, dtype=self.patch_embed.weight.dtype))
        pos_N2 = packed.positions().to(device)
        cu = packed.cu_patches.to(device)
        if self.cfg.window_tokens:
            win = window_partition(packed.grid_hw, self.cfg.window_tokens, self.cfg.merge)
            perm = win.perm_N.to(device)
            x_ND = self.vit(x_ND[perm], cu, pos_N2[perm], cu_windows=win.cu_windows.to(device))
            x_ND = x_ND[torch.argsort(perm)]
        else:
            x_ND = self.vit(x_ND, cu, pos_N2)
        features = self.bridge(x_ND)
        if self.pixel_path is not None:
            pixels = packed.patches_NP.to(device=device, dtype=features.dtype)
            features = features + self.pixel_path(pixels.reshape(features.shape[0], -1))
        return EncoderOutput(features_ND=features, grid_hw=packed.grid_hw, cu_tokens=packed.cu_tokens)
