"""Pre-norm transformer blocks over packed tokens: the body of the SAE encoder, the pixel
decoder and the audio encoder (report Sec. 2.2.2, 2.2.4, 4.1.1; release §3, §5).

Block: x ← x + attn(norm1(x)); x ← x + mlp(norm2(x)), RMSNorm, SwiGLU, rotary positions (1-D
or 2-D, chosen by the shape of the positions). Attention is confined to segments given as
cumulative boundaries (`packed_attention`), bidirectional unless `causal`.

Window attention (Qwen2.5-VL, release §3): when `forward` receives `cu_windows`, the blocks
not listed in `full_attention_blocks` attend within windows instead of whole images; the
caller must have ordered tokens so that each window is contiguous (`cu_windows` refines
`cu_seqlens`). Without `cu_windows` every block attends over its whole segment.

Shapes: N packed tokens, D width, S segments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dina.errors import BadConfig
from dina.layers.attention import SelfAttention
from dina.layers.mlp import SwiGLU
from dina.layers.norm import RMSNorm
from dina.layers.rope import RotaryTables, rotary_tables


@dataclass(frozen=True, kw_only=True)
class ViTConfig:
    """A stack of `depth` pre-norm blocks of width `dim`."""

    dim: int
    depth: int
    heads: int
    mlp_dim: int
    norm_eps: float = 1e-6
    bias: bool = False  # biases on qkv, proj and the MLP (Qwen2.5-VL has them)
    rope_theta: float = 10000.0
    causal: bool = False
    full_attention_blocks: tuple[int, ...] = ()  # only consulted when windows are given

    def __post_init__(self) -> None:
        if min(self.dim, self.depth, self.heads, self.mlp_dim) < 1:
            raise BadConfig(f"ViT sizes must be positive: {self}")
        if self.dim % self.heads:
            raise BadConfig(f"ViT dim {self.dim} must divide by heads {self.heads}")
        if any(not 0 <= i < self.depth for i in self.full_attention_blocks):
            raise BadConfig(f"full_attention_blocks {self.full_attention_blocks} out of range for depth {self.depth}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


class ViTBlock(nn.Module):
    """One pre-norm block; names `norm1`, `attn`, `norm2`, `mlp` follow Qwen2.5-VL."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.causal = cfg.causal
        self.norm1 = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = SelfAttention(cfg.dim, cfg.heads, bias=cfg.bias)
        self.norm2 = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg.dim, cfg.mlp_dim, bias=cfg.bias)

    def forward(self, x_ND: torch.Tensor, cu_seqlens: torch.Tensor, rot: RotaryTables | None) -> torch.Tensor:
        """(N, D) -> (N, D)."""
        x_ND = x_ND + self.attn(self.norm1(x_ND), cu_seqlens, rot=rot, causal=self.causal)
        return x_ND + self.mlp(self.norm2(x_ND))


class ViTStack(nn.Module):
    """`depth` blocks over packed tokens with rotary positions; no final norm (callers add their own)."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(ViTBlock(cfg) for _ in range(cfg.depth))

    def forward(
        self,
        x_ND: torch.Tensor,
        cu_seqlens: torch.Tensor,
        pos: torch.Tensor | None = None,
        *,
        cu_windows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(N, D) tokens, boundaries (S+1,), positions (N,) or (N, 2) or None -> (N, D)."""
        rot = None if pos is None else rotary_tables(pos, self.cfg.head_dim, theta=self.cfg.rope_theta)
        for i, block in enumerate(self.blocks):
            windowed = cu_windows is not None and i not in self.cfg.full_attention_blocks
            x_ND = block(x_ND, cu_windows if windowed else cu_seqlens, rot)
        return x_ND

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """Linear weights ~ N(0, std) truncated at 2σ, biases 0, norm gains 1; the two residual
        output projections (`attn.proj`, `mlp.down_proj`) get std / √(2·depth) so the residual
        stream's variance does not grow with depth (GPT-2 scheme)."""
        out_std = std / math.sqrt(2 * self.cfg.depth)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                s = out_std if name.endswith(("attn.proj", "mlp.down_proj")) else std
                nn.init.trunc_normal_(module.weight, std=s, a=-2 * s, b=2 * s)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
