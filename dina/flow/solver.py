"""Fixed-step ODE solvers for sampling a flow: dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data).

Release §5 "Refiner": N Euler steps on the grid t_k = k / N (timesteps linspace(0, 1, N+1)[:-1]),
each `x += (t_{k+1} - t_k) · v(x, t_k)`; the audio ConditionalCFM (§7) does the same. We add two
second-order methods with the same grid, for when a few more field evaluations buy fewer steps:

    euler:     x_{k+1} = x_k + h · v(x_k, t_k)                                  (1 eval, error O(h))
    midpoint:  x_{k+1} = x_k + h · v(x_k + h/2 · v(x_k, t_k), t_k + h/2)        (2 evals, error O(h²))
    heun:      x~ = x_k + h · v(x_k, t_k);
               x_{k+1} = x_k + h/2 · (v(x_k, t_k) + v(x~, t_{k+1}))             (2 evals, error O(h²))

Heun evaluates the field at t = 1, where fields like the ideal point-mass field (x1 - x)/(1 - t)
are singular; Euler and midpoint never do. The solvers know nothing about models: the field is
any callable `(x_B*, t_B) -> v_B*`, so the image refiner and the audio mel decoder share them.

Shapes: `x_B*` a batch of B states of any trailing shape; `t_B` one time per sample;
`trajectory_SB*` the S = steps + 1 states on the grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from dina.errors import BadArgument

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Method = Literal["euler", "midpoint", "heun"]
METHODS: tuple[str, ...] = ("euler", "midpoint", "heun")


@dataclass(frozen=True, kw_only=True)
class ODESolution:
    """The final state `x` (B*), the time grid `t_S`, and, if asked for, every state on it (S, B*)."""

    x: torch.Tensor
    t_S: torch.Tensor
    trajectory_SB: torch.Tensor | None = None


def time_grid(steps: int, *, t_start: float = 0.0, t_end: float = 1.0) -> torch.Tensor:
    """(steps + 1,) float64 grid from t_start to t_end inclusive (the release's linspace(0, 1, N+1))."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise BadArgument(f"steps must be a positive integer, got {steps!r}")
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)


def _step(field: VelocityField, x: torch.Tensor, t0: float, t1: float, method: str) -> torch.Tensor:
    """One step of `method` from time t0 to t1."""
    h = t1 - t0
    batch = x.shape[0]

    def v(state: torch.Tensor, t: float) -> torch.Tensor:
        return field(state, torch.full((batch,), t, dtype=x.dtype, device=x.device))

    v0 = v(x, t0)
    if method == "euler":
        return x + h * v0
    if method == "midpoint":
        return x + h * v(x + (h / 2) * v0, t0 + h / 2)
    x_pred = x + h * v0
    return x + (h / 2) * (v0 + v(x_pred, t1))


def solve_ode(
    field: VelocityField,
    x_init: torch.Tensor,
    *,
    steps: int,
    method: Method = "euler",
    t_start: float = 0.0,
    t_end: float = 1.0,
    return_trajectory: bool = False,
) -> ODESolution:
    """Integrate dx/dt = field(x, t) from x_init (B*) at t_start to t_end in `steps` equal steps.

    The field is called with t as a (B,) tensor in x's dtype. Gradients flow through the
    solver unless the caller wraps it in `torch.no_grad()` (samplers do).
    """
    if method not in METHODS:
        raise BadArgument(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if x_init.ndim == 0:
        raise BadArgument("x_init needs a batch dimension")
    grid_S = time_grid(steps, t_start=t_start, t_end=t_end)
    x = x_init
    states = [x] if return_trajectory else []
    for k in range(steps):
        x = _step(field, x, float(grid_S[k]), float(grid_S[k + 1]), method)
        if return_trajectory:
            states.append(x)
    trajectory = torch.stack(states) if return_trajectory else None
    return ODESolution(x=x, t_S=grid_S.to(x_init.dtype), trajectory_SB=trajectory)
