"""The flow-matching loss: mean squared error between predicted and target velocity.

Report Sec. 2.2.4 ("a lightweight image refiner trained with a flow-matching objective L_flow")
and Sec. 2.3 (the audio decoder's flow-matching head). Conditional flow matching
(Lipman et al., 2023) minimises

    L = E_{t, x0, x1} || v_θ(x_t, t) - dx_t ||²,   x_t, dx_t from `dina.flow.path`,

whose minimiser is the marginal field E[dx_t | x_t], so it is zero exactly when the network
returns the true velocity of every sample. We average over elements (not sum), so the value
does not grow with image or mel size; an optional mask drops padded positions (e.g. mel frames
beyond a clip's end) from both the sum and the count.

Shapes: `v_B*` any batch of velocities; `mask_B*` bool or {0, 1}, broadcastable to v.
"""

from __future__ import annotations

import torch

from dina.errors import BadArgument


def flow_matching_loss(
    v_pred_B: torch.Tensor, dx_t_B: torch.Tensor, *, mask_B: torch.Tensor | None = None
) -> torch.Tensor:
    """Scalar mean of (v_pred - dx_t)² over all (or all masked-in) elements."""
    if v_pred_B.shape != dx_t_B.shape:
        raise BadArgument(f"prediction and target differ in shape: {tuple(v_pred_B.shape)} vs {tuple(dx_t_B.shape)}")
    err_B = (v_pred_B - dx_t_B).square()
    if mask_B is None:
        return err_B.mean()
    weight_B = torch.broadcast_to(mask_B.to(err_B.dtype), err_B.shape)
    # A batch whose mask is all zeros contributes nothing rather than NaN.
    return (err_B * weight_B).sum() / weight_B.sum().clamp_min(1.0)
