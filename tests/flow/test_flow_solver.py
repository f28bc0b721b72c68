"""The solvers reach analytic answers with the order of error their method promises."""

from __future__ import annotations

import math

import pytest
import torch

from dina.errors import BadArgument
from dina.flow import solve_ode, time_grid


def _linear_field(a: float):
    return lambda x, t: a * x


def _error(method: str, steps: int, a: float = 1.5) -> float:
    x0 = torch.tensor([[1.0], [-2.0]], dtype=torch.float64)
    sol = solve_ode(_linear_field(a), x0, steps=steps, method=method)  # type: ignore[arg-type]
    return float((sol.x - x0 * math.exp(a)).abs().max())


def test_time_grid_is_the_release_linspace():
    assert torch.equal(time_grid(4), torch.linspace(0, 1, 5, dtype=torch.float64))


def test_constant_field_is_exact_in_one_step():
    v = torch.tensor([[0.5, -3.0]])
    sol = solve_ode(lambda x, t: v.expand_as(x), torch.zeros(1, 2), steps=1)
    assert torch.allclose(sol.x, v)


def test_euler_error_is_first_order():
    errors = [_error("euler", n) for n in (16, 32, 64, 128)]
    ratios = [errors[i] / errors[i + 1] for i in range(3)]
    assert all(1.8 < r < 2.2 for r in ratios), ratios
    assert errors[-1] < 0.1  # ≈ |x0|·e^a·a²·h/2


@pytest.mark.parametrize("method", ["midpoint", "heun"])
def test_second_order_methods_quarter_the_error(method: str):
    errors = [_error(method, n) for n in (16, 32, 64)]
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    assert all(3.6 < r < 4.4 for r in ratios), ratios
    assert errors[-1] < _error("euler", 64) / 50


def test_field_sees_one_time_per_sample_on_the_grid():
    seen: list[torch.Tensor] = []

    def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(t.clone())
        return torch.zeros_like(x)

    solve_ode(field, torch.zeros(3, 2, 2), steps=4)
    assert [tuple(t.shape) for t in seen] == [(3,)] * 4
    assert torch.allclose(torch.stack([t[0] for t in seen]), torch.tensor([0.0, 0.25, 0.5, 0.75]))


def test_trajectory_holds_every_grid_state():
    x0 = torch.ones(2, 3)
    sol = solve_ode(lambda x, t: torch.ones_like(x), x0, steps=5, return_trajectory=True)
    assert sol.trajectory_SB is not None
    assert sol.trajectory_SB.shape == (6, 2, 3)
    assert torch.equal(sol.trajectory_SB[0], x0)
    assert torch.equal(sol.trajectory_SB[-1], sol.x)
    assert torch.allclose(sol.trajectory_SB[:, 0, 0], 1 + sol.t_S)


def test_bad_arguments_are_rejected():
    with pytest.raises(BadArgument):
        solve_ode(lambda x, t: x, torch.zeros(1, 1), steps=0)
    with pytest.raises(BadArgument):
        solve_ode(lambda x, t: x, torch.zeros(1, 1), steps=2, method="rk4")  # type: ignore[arg-type]
