import torch
import torch.nn.functional as F

from dina.layers.mlp import SwiGLU


def test_swiglu_matches_formula_and_has_biases_on_request() -> None:
    torch.manual_seed(0)
    mlp = SwiGLU(8, 12, bias=True)
    x = torch.randn(5, 8)
    gate = x @ mlp.gate_proj.weight.T + mlp.gate_proj.bias
    up = x @ mlp.up_proj.weight.T + mlp.up_proj.bias
    expected = (F.silu(gate) * up) @ mlp.down_proj.weight.T + mlp.down_proj.bias
    torch.testing.assert_close(mlp(x), expected)
    assert SwiGLU(8, 12).gate_proj.bias is None
