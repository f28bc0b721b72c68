"""dNaViT's pixel decoder (report Sec. 2.2.4 and 4.1.1 "Stage 2"; release §5 "Pixel decoder").

Summed code embeddings, one per 28-px token, back to pixels at native resolution:

  codes' embeddings (T, C) --post_quant (Linear)--> RMSNorm --patch un-merger: RMSNorm,
    Linear(D, 4D)–GELU–Linear(4D, 4D), split into the 4 patches of each 2×2 block--> (4T, D)
    --ViTStack: pre-norm blocks, 2-D RoPE on (row, col) patch positions, bidirectional
      attention within each image--> RMSNorm --head: Linear–GELU–Linear--> (4T, 3·14·14)
  patches, CLIP-normalized, un-patchified and de-normalized by the caller.

Departures from the release:
- the release generates RoPE positions in raster order although its tokens are in merge-block
  order (its quirk (a)); we give every patch its true (row, col);
- `shortcut` (ours, on in the tiny preset, off in `longcat_next` so the release's keys load):
  a zero-initialized Linear from each token's code embedding straight to its four patches, added
  to the head's output. Why, measured on ShapesWorld with ideal inputs (PCA-128 coefficients of
  each 28-px token, whose *linear* inverse gives 31.8 dB and the judge's exact scene on 95% of
  images), 700 CPU steps: the release's path alone reached 25.0 dB / 8% (its RMSNorms on the
  code projection discard each token's magnitude, and a ViT learns the near-linear part of the
  map slowly); with the shortcut added, 31.6 dB / 90%. The ViT then learns what a per-token linear
  map cannot (edges across tokens, sharpening).

The training objective L_dec = λ1 L_pixel + λ2 L_percep + λ3 L_align (eq. 6) lives in
`dina.vision.losses`.

Shapes: T tokens, N = 4T patches, C code dim, D width, P = 3·patch² patch values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dina.errors import BadConfig
from dina.layers.norm import RMSNorm
from dina.layers.vit import ViTConfig, ViTStack
from dina.vision.preprocess import patch_positions


@dataclass(frozen=True, kw_only=True)
class PixelDecoderConfig:
    """Sizes of the pixel decoder; `code_dim` is the quantizer's codebook dimension."""

    code_dim: int
    dim: int
    depth: int
    heads: int
    mlp_dim: int
    head_dim: int = 0  # hidden width of the pixel head; 0 = 2·dim
    shortcut: bool = False  # a linear path from each code embedding to its patches (see the module doc)
    patch_size: int = 14
    merge: int = 2
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if min(self.code_dim, self.dim, self.depth, self.heads, self.mlp_dim) < 1:
            raise BadConfig(f"pixel decoder sizes must be positive: {self}")

    @property
    def patch_dim(self) -> int:
        return 3 * self.patch_size**2

    @property
    def vit(self) -> ViTConfig:
        return ViTConfig(dim=self.dim, depth=self.depth, heads=self.heads, mlp_dim=self.mlp_dim, norm_eps=self.norm_eps)


class PixelDecoder(nn.Module):
    """Code embeddings of packed images -> CLIP-normalized patches of the same images."""

    def __init__(self, cfg: PixelDecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        m2, d = cfg.merge**2, cfg.dim
        self.post_quant = nn.Linear(cfg.code_dim, d)
        self.post_quant_norm = RMSNorm(d, eps=cfg.norm_eps)
        self.unmerge_norm = RMSNorm(d, eps=cfg.norm_eps)
        self.unmerge_fc1 = nn.Linear(d, m2 * d)
        self.unmerge_fc2 = nn.Linear(m2 * d, m2 * d)
        self.norm_in = RMSNorm(d, eps=cfg.norm_eps)
        self.vit = ViTStack(cfg.vit)
        self.norm_out = RMSNorm(d, eps=cfg.norm_eps)
        hidden = cfg.head_dim or 2 * d
        self.head_fc1 = nn.Linear(d, hidden)
        self.head_fc2 = nn.Linear(hidden, cfg.patch_dim)
        self.shortcut = nn.Linear(cfg.code_dim, m2 * cfg.patch_dim) if cfg.shortcut else None
        self.init_weights()

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """Linear weights ~ N(0, std) truncated at 2σ with zero biases; norm gains 1; the ViT as in
        `ViTStack.init_weights`; the last head layer and the shortcut start at zero so the first
        output is the mean image (0 in CLIP-normalized space) and early training is stable."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        self.vit.init_weights(std)
        nn.init.zeros_(self.head_fc2.weight)
        if self.shortcut is not None:
            nn.init.zeros_(self.shortcut.weight)

    def forward(self, codes_TC: torch.Tensor, grid_hw: Sequence[tuple[int, int]]) -> torch.Tensor:
        """(T, C) summed code embeddings of images with token grids `grid_hw` -> (4T, P) patches."""
        m2, d = self.cfg.merge**2, self.cfg.dim
        x = self.post_quant_norm(self.post_quant(codes_TC))
        x = self.unmerge_fc2(F.gelu(self.unmerge_fc1(self.unmerge_norm(x))))
        x_ND = self.norm_in(x.reshape(-1, d))  # the 2×2 patches of each token, consecutive
        counts = [th * tw * m2 for th, tw in grid_hw]
        cu = torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()], dtype=torch.int32)
        pos = patch_positions(grid_hw, merge=self.cfg.merge)
        x_ND = self.vit(x_ND, cu, pos)
        out_NP = self.head_fc2(F.gelu(self.head_fc1(self.norm_out(x_ND))))
        if self.shortcut is not None:
            out_NP = out_NP + self.shortcut(codes_TC).reshape(-1, self.cfg.patch_dim)
        return out_NP
