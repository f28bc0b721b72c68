"""Rotary position embeddings, 1-D (text, audio) and 2-D (image patches) (report Sec. 2.2, 2.4; release §3, §5).

A rotary embedding rotates pairs of query/key features by angles proportional to the
token's position, so that q·k depends only on the position *difference*. This file builds
the angles once per forward (`RotaryTables`, reused by every layer) and applies them.

- 1-D: angle_i(p) = p · θ^(−2i/Dh), i < Dh/2.
- 2-D (Qwen2.5-VL vision convention, θ = 10000): the first Dh/4 frequencies rotate by the
  patch row, the next Dh/4 by the patch column; inv_freq_i = θ^(−4i/Dh), i < Dh/4. Half of
  the rotated pairs see the row, half the column, so attention is relative in both axes.
- Pairing: "rotate-half" (feature i pairs with i + Dh/2, as Hugging Face Qwen2.5-VL and
  Llama do; loading Qwen weights requires exactly this) or "interleaved" (feature 2i pairs
  with 2i+1, as the release's pixel decoder does, §5). Both are the same rotation up to a
  fixed permutation of head features.

Shapes: N tokens, H heads, Dh head dim, F = Dh/2 rotation angles per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dina.errors import BadConfig


@dataclass(frozen=True, kw_only=True)
class RotaryTables:
    """cos/sin of the rotation angles of N tokens: `cos_NF`, `sin_NF` with F = Dh/2."""

    cos_NF: torch.Tensor
    sin_NF: torch.Tensor

    def take(self, index_N: torch.Tensor) -> RotaryTables:
        """The tables of a subset / permutation of the tokens."""
        return RotaryTables(cos_NF=self.cos_NF[index_N], sin_NF=self.sin_NF[index_N])


def _inv_freq(n: int, exponent_scale: float, theta: float) -> torch.Tensor:
    return theta ** (-torch.arange(n, dtype=torch.float64) * exponent_scale)


def rope_angles_1d(pos_N: torch.Tensor, head_dim: int, *, theta: float = 10000.0) -> torch.Tensor:
    """(N,) integer/float positions -> (N, Dh/2) angles, frequency i = θ^(−2i/Dh)."""
    if head_dim % 2:
        raise BadConfig(f"1-D rotary needs an even head dim, got {head_dim}")
    inv = _inv_freq(head_dim // 2, 2.0 / head_dim, theta)
    return (pos_N.to(torch.float64)[:, None] * inv[None, :]).float()


def rope_angles_2d(pos_N2: torch.Tensor, head_dim: int, *, theta: float = 10000.0) -> torch.Tensor:
    """(N, 2) (row, col) positions -> (N, Dh/2) angles: [row · inv_freq | col · inv_freq], inv_freq_i = θ^(−4i/Dh)."""
    if head_dim % 4:
        raise BadConfig(f"2-D rotary needs a head dim divisible by 4, got {head_dim}")
    inv = _inv_freq(head_dim // 4, 4.0 / head_dim, theta)
    pos = pos_N2.to(torch.float64)
    return torch.cat([pos[:, :1] * inv[None, :], pos[:, 1:2] * inv[None, :]], dim=1).float()


def rotary_tables(pos: torch.Tensor, head_dim: int, *, theta: float = 10000.0) -> RotaryTables:
    """Tables for (N,) 1-D or (N, 2) 2-D positions (angles computed in fp64, stored fp32)."""
    angles_NF = (
        rope_angles_1d(pos, head_dim, theta=theta) if pos.ndim == 1 else rope_angles_2d(pos, head_dim, theta=theta)
    )
    return RotaryTables(cos_NF=angles_NF.cos(), sin_NF=angles_NF.sin())


def apply_rope(x_NHD: torch.Tensor, rot: RotaryTables, *, interleaved: bool = False) -> torch.Tensor:
    """Rotate (N, H, Dh) queries or keys by each token's angles; returns the same shape and dtype."""
    cos = rot.cos_NF[:, None, :].to(x_NHD.dtype)
    sin = rot.sin_NF[:, None, :].to(x_NHD.dtype)
    if interleaved:
        a, b = x_NHD[..., 0::2], x_NHD[..., 1::2]
        return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(-2)
    a, b = x_NHD.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)
