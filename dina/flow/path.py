"""The linear (conditional optimal-transport) probability path of flow matching.

Report Sec. 2.2.4 trains the image refiner, and Sec. 2.3 the audio mel decoder, with a
flow-matching loss; the release (§5 "Refiner", §7 ConditionalCFM) samples both with Euler
steps from t = 0 (noise) to t = 1 (data). Both use the straight path between a noise
sample x0 and a data sample x1:

    x_t  = (1 - t) · x0 + t · x1          (t in [0, 1])
    dx_t = d x_t / dt = x1 - x0           (the conditional target velocity)

A network v(x_t, t) trained to regress dx_t learns the marginal field
v*(x, t) = E[x1 - x0 | x_t = x], whose ODE dx/dt = v*(x, t) carries the noise distribution
at t = 0 onto the data distribution at t = 1 (Lipman et al., 2023; Liu et al., 2023).

Departures: no `sigma_min` (the path ends exactly at x1, as in the release's samplers);
the noise is N(0, scale² I) with a caller-chosen scale (the refiner's "temperature").

Shapes: the path is generic over tensor shapes. `x_B*` is a batch of B samples of any
trailing shape (images (B, 3, H, W), mels (B, M, T), vectors (B, D)); `t_B` one time per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dina.errors import BadArgument


@dataclass(frozen=True, kw_only=True)
class PathSample:
    """One point on the path per sample: state `x_t`, target velocity `dx_t` (both B*), time `t` (B,)."""

    x_t: torch.Tensor
    dx_t: torch.Tensor
    t: torch.Tensor


def expand_time(t_B: torch.Tensor, like_B: torch.Tensor) -> torch.Tensor:
    """(B,) times reshaped to (B, 1, ..., 1) so they broadcast against a (B, *) tensor."""
    if t_B.ndim != 1 or t_B.shape[0] != like_B.shape[0]:
        raise BadArgument(f"t must have shape ({like_B.shape[0]},), got {tuple(t_B.shape)}")
    return t_B.reshape(-1, *([1] * (like_B.ndim - 1)))


class CondOTPath:
    """The straight path x_t = (1 - t)·x0 + t·x1; stateless, so one instance serves every model."""

    def sample(self, x0_B: torch.Tensor, x1_B: torch.Tensor, t_B: torch.Tensor) -> PathSample:
        """The point at time t_B between noise x0_B and data x1_B, with its target velocity x1 - x0."""
        if x0_B.shape != x1_B.shape:
            raise BadArgument(f"x0 and x1 differ in shape: {tuple(x0_B.shape)} vs {tuple(x1_B.shape)}")
        t = expand_time(t_B, x1_B).to(x1_B.dtype)
        return PathSample(x_t=(1 - t) * x0_B + t * x1_B, dx_t=x1_B - x0_B, t=t_B)

    def x1_from_velocity(self, x_t_B: torch.Tensor, v_B: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        """The data point the path would reach if it kept velocity v: x1 = x_t + (1 - t)·v.

        Exact for the conditional velocity; for a learned field it is the model's one-step
        estimate of E[x1 | x_t], useful for previews and x1-space losses.
        """
        return x_t_B + (1 - expand_time(t_B, x_t_B).to(x_t_B.dtype)) * v_B


def sample_noise(like_B: torch.Tensor, *, scale: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """x0 ~ N(0, scale² I) with the shape, dtype and device of `like_B` (scale 0 gives zeros)."""
    if scale < 0:
        raise BadArgument(f"noise scale must be >= 0, got {scale}")
    noise = torch.randn(like_B.shape, generator=generator, dtype=like_B.dtype, device=like_B.device)
    return noise * scale


def sample_time(
    batch: int, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(batch,) training times t ~ U[0, 1), one per sample."""
    if batch <= 0:
        raise BadArgument(f"batch must be positive, got {batch}")
    return torch.rand(batch, generator=generator, device=device)
