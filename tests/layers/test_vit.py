import pytest
import torch

from dina.errors import BadConfig
from dina.layers.vit import ViTConfig, ViTStack


def _stack(**kw: object) -> ViTStack:
    torch.manual_seed(0)
    return ViTStack(ViTConfig(dim=32, depth=2, heads=2, mlp_dim=48, bias=True, **kw))  # type: ignore[arg-type]


def _grid(h: int, w: int) -> torch.Tensor:
    return torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1).reshape(-1, 2)


def test_packed_stack_equals_each_image_alone() -> None:
    vit = _stack()
    pos = torch.cat([_grid(3, 4), _grid(2, 2), _grid(5, 1)])
    x = torch.randn(len(pos), 32)
    cu = torch.tensor([0, 12, 16, 21])
    out = vit(x, cu, pos)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        alone = vit(x[a:b], torch.tensor([0, b - a]), pos[a:b])
        torch.testing.assert_close(out[a:b], alone, rtol=1e-5, atol=1e-5)


def test_permuting_tokens_with_their_positions_permutes_the_output() -> None:
    # Why window attention may reorder tokens: bidirectional attention with explicit positions is order-free.
    vit = _stack()
    pos, x = _grid(3, 3), torch.randn(9, 32)
    perm = torch.randperm(9)
    cu = torch.tensor([0, 9])
    torch.testing.assert_close(vit(x, cu, pos)[perm], vit(x[perm], cu, pos[perm]), rtol=1e-5, atol=1e-5)


def test_windowed_blocks_confine_attention_and_full_blocks_do_not() -> None:
    x, pos = torch.randn(8, 32), _grid(2, 4)
    cu, windows = torch.tensor([0, 8]), torch.tensor([0, 4, 8])
    x2 = x.clone()
    x2[6] += 1.0
    windowed = _stack()
    assert torch.equal(windowed(x, cu, pos, cu_windows=windows)[:4], windowed(x2, cu, pos, cu_windows=windows)[:4])
    mixed = _stack(full_attention_blocks=(1,))
    assert not torch.allclose(mixed(x, cu, pos, cu_windows=windows)[:4], mixed(x2, cu, pos, cu_windows=windows)[:4])


def test_causal_stack_is_causal() -> None:
    vit = _stack(causal=True)
    x = torch.randn(6, 32)
    x2 = x.clone()
    x2[4] += 1.0
    cu = torch.tensor([0, 6])
    a, b = vit(x, cu, torch.arange(6)), vit(x2, cu, torch.arange(6))
    assert torch.equal(a[:4], b[:4]) and not torch.allclose(a[4:], b[4:])


def test_config_checks() -> None:
    with pytest.raises(BadConfig):
        ViTConfig(dim=30, depth=1, heads=4, mlp_dim=8)
    with pytest.raises(BadConfig):
        ViTConfig(dim=32, depth=2, heads=2, mlp_dim=8, full_attention_blocks=(2,))
