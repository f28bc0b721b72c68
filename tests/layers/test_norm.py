import torch

from dina.layers.norm import RMSNorm


def test_rmsnorm_matches_direct_formula() -> None:
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(16))
    x = torch.randn(3, 5, 16) * 7.0
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected, rtol=1e-6, atol=1e-6)


def test_rmsnorm_is_scale_invariant_and_keeps_dtype() -> None:
    x = torch.randn(4, 32)
    norm = RMSNorm(32, eps=0.0)
    torch.testing.assert_close(norm(x), norm(x * 1000.0), rtol=1e-5, atol=1e-5)
    assert norm(x.bfloat16()).dtype == torch.bfloat16
