"""Anchored refinement by flow matching with x1-prediction (shared by the image and mel refiners).

Report Sec. 2.2.4 (image refiner) and Sec. 2.3 (the audio decoder's flow-matching stage): a
network refines a coarse reconstruction (the anchor) by a flow from small noise to the clean
target, conditioned on the anchor. Here the flow's data x1 is whatever the caller chooses (the
residual target - anchor, or the target itself); the network predicts x1 and the velocity is
v = (x1_hat - x_t) / max(1 - t, floor), as in x-prediction flow models (Li & He 2025, "Back to
Basics"). The loss is the MSE on x1, i.e. the velocity MSE weighted by (1 - t)², so that the
t ≈ 0 steps that must work from the anchor alone count as much as the easy t ≈ 1 steps (why,
measured: `dina.vision.refiner`). Sampling: Euler (or any `solve_ode` method) from noise of std
noise_scale · temperature at t = 0 to t = 1.

Shapes: `*_B*` any batch of states; `t_B` (B,) times.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from dina.flow.loss import flow_matching_loss
from dina.flow.path import CondOTPath, expand_time, sample_noise, sample_time
from dina.flow.solver import solve_ode

X1Predictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t_B*, t_B) -> x1_hat_B*


def timestep_embedding(t_B: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, dim) sinusoidal features of t · 1000 (so [0, 1] spans the usual diffusion step range)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t_B.device) / half)
    args_BH = (t_B.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(args_BH), torch.sin(args_BH)], dim=1)


def x1_to_velocity(
    x1_hat_B: torch.Tensor, x_t_B: torch.Tensor, t_B: torch.Tensor, min_one_minus_t: float
) -> torch.Tensor:
    """The velocity that reaches x1_hat at t = 1 from x_t: (x1_hat - x_t) / max(1 - t, floor)."""
    one_minus_t = (1 - expand_time(t_B, x_t_B).to(x_t_B.dtype)).clamp_min(min_one_minus_t)
    return (x1_hat_B - x_t_B) / one_minus_t


def anchored_flow_loss(
    predict_x1: X1Predictor, x1_B: torch.Tensor, *, noise_scale: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Scalar x1 loss at one random time and start noise per sample (drawn in that order from `generator`)."""
    t_B = sample_time(x1_B.shape[0], generator=generator, device=x1_B.device).to(x1_B.dtype)
    x0_B = sample_noise(x1_B, scale=noise_scale, generator=generator)
    sample = CondOTPath().sample(x0_B, x1_B, t_B)
    return flow_matching_loss(predict_x1(sample.x_t, t_B), x1_B)


def anchored_flow_sample(
    predict_x1: X1Predictor,
    like_B: torch.Tensor,
    *,
    steps: int,
    noise_scale: float,
    min_one_minus_t: float,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x1 sampled in `steps` Euler steps from noise of std noise_scale · temperature shaped like `like_B`."""
    x0_B = sample_noise(like_B, scale=noise_scale * temperature, generator=generator)

    def field(x_B: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        return x1_to_velocity(predict_x1(x_B, t_B), x_B, t_B, min_one_minus_t)

    return solve_ode(field, x0_B, steps=steps).x
