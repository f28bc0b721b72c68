"""SwiGLU feed-forward: down(silu(gate(x)) * up(x)) (report Sec. 2.2, 2.4; release §1, §3).

Parameter names (`gate_proj`, `up_proj`, `down_proj`) follow Hugging Face Qwen2.5-VL and the
LongCat release so that checkpoint adapters map names one to one. Biases are optional:
Qwen2.5-VL's vision MLP has them, the LongCat backbone does not.

Shapes: N tokens, D model width, F hidden width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SwiGLU(nn.Module):
    """Gated MLP D -> F -> D with a SiLU gate."""

    def __init__(self, dim: int, hidden_dim: int, *, bias: bool = False) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=bias)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=bias)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x_ND: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D)."""
        return self.down_proj(F.silu(self.gate_proj(x_ND)) * self.up_proj(x_ND))
