import pytest
import torch

from dina.errors import BadConfig
from dina.layers.rope import apply_rope, rope_angles_2d, rotary_tables


def _score(q: torch.Tensor, k: torch.Tensor, pos_q: torch.Tensor, pos_k: torch.Tensor, interleaved: bool) -> float:
    rq = apply_rope(q[None, None], rotary_tables(pos_q[None], q.shape[-1]), interleaved=interleaved)
    rk = apply_rope(k[None, None], rotary_tables(pos_k[None], k.shape[-1]), interleaved=interleaved)
    return float((rq * rk).sum())


@pytest.mark.parametrize("interleaved", [False, True])
def test_2d_rope_score_depends_only_on_position_difference(interleaved: bool) -> None:
    torch.manual_seed(0)
    q, k = torch.randn(32, dtype=torch.float64), torch.randn(32, dtype=torch.float64)
    base = _score(q.float(), k.float(), torch.tensor([3, 5]), torch.tensor([1, 9]), interleaved)
    shifted = _score(q.float(), k.float(), torch.tensor([3 + 11, 5 - 4]), torch.tensor([1 + 11, 9 - 4]), interleaved)
    other = _score(q.float(), k.float(), torch.tensor([3, 5]), torch.tensor([2, 9]), interleaved)
    assert abs(base - shifted) < 1e-4
    assert abs(base - other) > 1e-3  # and it does depend on the difference, in rows ...
    assert abs(base - _score(q.float(), k.float(), torch.tensor([3, 5]), torch.tensor([1, 8]), interleaved)) > 1e-3


def test_1d_rope_is_relative_and_norm_preserving() -> None:
    torch.manual_seed(1)
    q, k = torch.randn(16), torch.randn(16)
    a = _score(q, k, torch.tensor(7), torch.tensor(2), False)
    b = _score(q, k, torch.tensor(107), torch.tensor(102), False)
    assert abs(a - b) < 1e-4
    x = torch.randn(10, 2, 16)
    rot = rotary_tables(torch.arange(10), 16)
    torch.testing.assert_close(apply_rope(x, rot).norm(dim=-1), x.norm(dim=-1))


def test_2d_rope_layout_rows_then_columns() -> None:
    angles = rope_angles_2d(torch.tensor([[2, 0], [0, 3]]), 16)
    assert angles.shape == (2, 8)
    assert torch.all(angles[0, 4:] == 0) and torch.all(angles[1, :4] == 0)
    torch.testing.assert_close(angles[0, :4], 2 * 10000.0 ** (-torch.arange(4) * 4 / 16))


def test_2d_rope_needs_head_dim_divisible_by_4() -> None:
    with pytest.raises(BadConfig):
        rope_angles_2d(torch.zeros(1, 2), 6)
