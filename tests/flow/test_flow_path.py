"""The linear path's target velocity is exact, and its ideal fields carry noise onto the data."""

from __future__ import annotations

import pytest
import torch

from dina.errors import BadArgument
from dina.flow import CondOTPath, flow_matching_loss, sample_noise, sample_time, solve_ode

PATH = CondOTPath()


def test_endpoints_and_interpolation():
    x0, x1 = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    s = PATH.sample(x0, x1, t)
    assert torch.equal(s.x_t[0], x0[0])
    assert torch.allclose(s.x_t[3], x1[3])
    assert torch.allclose(s.x_t[1], 0.75 * x0[1] + 0.25 * x1[1])
    assert torch.equal(s.t, t)


def test_target_velocity_is_the_time_derivative_of_the_path():
    x0, x1 = torch.randn(3, 7, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    eps = 1e-6
    finite_diff = (PATH.sample(x0, x1, t + eps).x_t - PATH.sample(x0, x1, t - eps).x_t) / (2 * eps)
    assert torch.allclose(finite_diff, PATH.sample(x0, x1, t).dx_t, atol=1e-8)


def test_x1_from_the_conditional_velocity_is_the_data_point():
    x0, x1, t = torch.randn(5, 2), torch.randn(5, 2), torch.rand(5)
    s = PATH.sample(x0, x1, t)
    assert torch.allclose(PATH.x1_from_velocity(s.x_t, s.dx_t, t), x1, atol=1e-6)


@pytest.mark.parametrize("method", ["euler", "midpoint"])
def test_point_mass_field_moves_any_noise_to_the_data_point(method: str):
    x1 = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    # The marginal field when all data sits at x1: E[x1 - x0 | x_t = x] = (x1 - x) / (1 - t).
    field = lambda x, t: (x1 - x) / (1 - t[:, None])  # noqa: E731
    x0 = sample_noise(torch.empty(256, 3, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    sol = solve_ode(field, x0, steps=10, method=method)  # type: ignore[arg-type]
    assert torch.allclose(sol.x, x1.expand(256, 3), atol=1e-9)


def test_gaussian_field_carries_noise_onto_the_data_gaussian():
    mu, s = torch.tensor([3.0, -1.0], dtype=torch.float64), 0.5

    def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # x_t = t·mu + sigma_t·z with sigma_t² = (1-t)² + t²s², so v = mu + sigma_t'/sigma_t · (x - t·mu).
        t = t[:, None]
        var_t = (1 - t) ** 2 + (t * s) ** 2
        return mu + (t * s**2 - (1 - t)) / var_t * (x - t * mu)

    x0 = sample_noise(torch.empty(8000, 2, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
    x = solve_ode(field, x0, steps=100, method="midpoint").x
    assert torch.allclose(x.mean(0), mu, atol=0.02)
    assert torch.allclose(x.std(0), torch.full((2,), s, dtype=torch.float64), atol=0.02)
    # The ideal field is the regression target's conditional mean: it beats a perturbed field.
    t = sample_time(8000, generator=torch.Generator().manual_seed(2)).double()
    x1 = mu + s * sample_noise(x0, generator=torch.Generator().manual_seed(3))
    ps = PATH.sample(x0, x1, t)
    ideal = flow_matching_loss(field(ps.x_t, t), ps.dx_t)
    assert ideal < flow_matching_loss(field(ps.x_t, t) + 0.1, ps.dx_t)
    assert ideal < flow_matching_loss(1.1 * field(ps.x_t, t), ps.dx_t)


def test_noise_is_seeded_and_scaled():
    like = torch.empty(2, 3, 4)
    a = sample_noise(like, scale=0.5, generator=torch.Generator().manual_seed(7))
    b = sample_noise(like, scale=1.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, 0.5 * b)
    assert torch.equal(sample_noise(like, scale=0.0), torch.zeros_like(like))


def test_mismatched_shapes_are_rejected():
    with pytest.raises(BadArgument):
        PATH.sample(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2))
    with pytest.raises(BadArgument):
        PATH.sample(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))
