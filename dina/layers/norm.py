"""RMSNorm, the normalisation of every dina transformer (report Sec. 2.2, 2.4; release §1, §3),
and `FrameGroupNorm` for causal convolutional stacks (Sec. 2.3).

y = x / sqrt(mean(x^2) + eps) * weight, computed in fp32 whatever the input dtype (a bf16 mean
of squares loses too much precision), returned in the input dtype. No bias and no mean
subtraction, as in Qwen2.5-VL's vision blocks and the LongCat backbone.

Shapes: `x_ND` = N vectors (any leading dims) of D features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square normalisation over the last dimension with a learned gain (starts at 1)."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x_ND: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D)."""
        if x_ND.dtype == torch.float32 and self.weight.dtype == torch.float32:
            # The same formula in one call (no casts to make), a few small ops fewer per decoding step.
            return F.rms_norm(x_ND, self.weight.shape, self.weight, self.eps)
        x32 = x_ND.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.float() * y).to(x_ND.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over the channel groups of each time step alone, for (B, C, T) sequences.

    A plain GroupNorm on a sequence pools statistics over time too, so a late frame changes the
    output at every earlier one; per frame, a causal stack stays causal (the audio decoder and
    mel refiner rely on this for streaming). Parameters and their names are GroupNorm's.
    """

    def forward(self, x_BCT: torch.Tensor) -> torch.Tensor:
        B, C, T = x_BCT.shape
        y = super().forward(x_BCT.transpose(1, 2).reshape(B * T, C, 1))
        return y.reshape(B, T, C).transpose(1, 2)
