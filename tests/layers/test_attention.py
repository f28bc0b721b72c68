import pytest
import torch
import torch.nn.functional as F

from dina.errors import BadArgument
from dina.layers.attention import packed_attention


def _qkv(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, 2, 8, generator=g) for _ in range(3))  # type: ignore[return-value]


def _alone(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), is_causal=causal)
    return out.transpose(0, 1)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("lengths", [[5, 3, 5, 1, 7], [4, 4, 4], [9], [3, 0, 2]])
def test_packed_equals_each_segment_alone(lengths: list[int], causal: bool) -> None:
    q, k, v = _qkv(sum(lengths))
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    out = packed_attention(q, k, v, cu, causal=causal)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        if b > a:
            torch.testing.assert_close(out[a:b], _alone(q[a:b], k[a:b], v[a:b], causal), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lengths", [[5, 3, 5], [4, 4]])
def test_values_narrower_than_keys(lengths: list[int]) -> None:
    """MLA's values (128 wide) are narrower than its queries and keys (192)."""
    q, k, _ = _qkv(sum(lengths))
    v = torch.randn(sum(lengths), 2, 5, generator=torch.Generator().manual_seed(9))
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    out = packed_attention(q, k, v, cu, causal=True)
    assert out.shape == (sum(lengths), 2, 5)
    a, b = cu[1].item(), cu[2].item()
    torch.testing.assert_close(out[a:b], _alone(q[a:b], k[a:b], v[a:b], True), rtol=1e-5, atol=1e-5)


def test_no_leakage_across_segments() -> None:
    q, k, v = _qkv(12)
    cu = torch.tensor([0, 5, 12])
    out = packed_attention(q, k, v, cu)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for t in (q2, k2, v2):
        t[5:] += 10.0 * torch.randn(7, 2, 8)
    out2 = packed_attention(q2, k2, v2, cu)
    assert torch.equal(out[:5], out2[:5])
    assert not torch.allclose(out[5:], out2[5:])


def test_bidirectional_sees_later_tokens_and_causal_does_not() -> None:
    q, k, v = _qkv(6)
    cu = torch.tensor([0, 6])
    k2, v2 = k.clone(), v.clone()
    k2[5] += 3.0
    v2[5] += 3.0
    bi, bi2 = packed_attention(q, k, v, cu), packed_attention(q, k2, v2, cu)
    assert not torch.allclose(bi[0], bi2[0])
    ca, ca2 = packed_attention(q, k, v, cu, causal=True), packed_attention(q, k2, v2, cu, causal=True)
    assert torch.equal(ca[:5], ca2[:5])
    assert not torch.allclose(ca[5], ca2[5])


def test_gradients_flow_through_packed_attention() -> None:
    q, k, v = (t.requires_grad_() for t in _qkv(7))
    packed_attention(q, k, v, torch.tensor([0, 3, 7])).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all() and v.grad is not None and v.grad.abs().sum() > 0


def test_bad_boundaries_are_refused() -> None:
    q, k, v = _qkv(4)
    with pytest.raises(BadArgument):
        packed_attention(q, k, v, torch.tensor([0, 3]))
    with pytest.raises(BadArgument):
        packed_attention(q, k, v, torch.tensor([0, 3, 2, 4]))
