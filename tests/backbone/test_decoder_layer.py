"""The LongCat-Flash decoder layer: causal, documents independent when packed, the MoE on the shortcut."""

import dataclasses

import pytest
import torch

from dina.backbone.layer import DecoderLayer, GQAttention
from dina.errors import BadConfig
from dina.layers.rope import rotary_tables
from dina.presets import tiny

CFG = tiny().backbone


@pytest.fixture
def layer() -> DecoderLayer:
    torch.manual_seed(0)
    return DecoderLayer(CFG).eval()


def _run(layer, x, lengths):
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    pos = torch.cat([torch.arange(n) for n in lengths])
    return layer(x, cu, rotary_tables(pos, CFG.head_dim, theta=CFG.rope_theta))


def test_the_layer_is_causal(layer):
    x = torch.randn(12, CFG.dim, generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[7:] += 1.0
    a, b = _run(layer, x, [12]).x_ND, _run(layer, changed, [12]).x_ND
    torch.testing.assert_close(a[:7], b[:7])
    assert not torch.allclose(a[7:], b[7:])


def test_packed_documents_equal_documents_alone(layer):
    x = torch.randn(15, CFG.dim, generator=torch.Generator().manual_seed(2))
    packed = _run(layer, x, [9, 6]).x_ND
    torch.testing.assert_close(packed[:9], _run(layer, x[:9], [9]).x_ND, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[9:], _run(layer, x[9:], [6]).x_ND, atol=1e-5, rtol=1e-5)


def test_the_moe_reads_the_first_sublayers_normed_output_and_joins_at_the_end(layer, monkeypatch):
    x = torch.randn(6, CFG.dim, generator=torch.Generator().manual_seed(3))
    seen = {}
    real_moe = layer.moe.forward

    def spy(u):
        seen["u"] = u
        return real_moe(u)

    monkeypatch.setattr(layer.moe, "forward", spy)
    out = _run(layer, x, [6])
    rot = rotary_tables(torch.arange(6), CFG.head_dim, theta=CFG.rope_theta)
    cu = torch.tensor([0, 6])
    h = x + layer.attns[0](layer.input_norms[0](x), cu, rot)
    u = layer.post_attention_norms[0](h)
    torch.testing.assert_close(seen["u"], u)
    h = h + layer.mlps[0](u)
    h = h + layer.attns[1](layer.input_norms[1](h), cu, rot)
    h = h + layer.mlps[1](layer.post_attention_norms[1](h))
    torch.testing.assert_close(out.x_ND, h + out.moe.out_ND)
    assert int(out.moe.tokens_per_expert_X.sum()) == 6 * CFG.top_k


def test_grouped_query_heads_share_keys():
    attn = GQAttention(CFG)
    assert attn.k_proj.out_features == CFG.n_kv_heads * CFG.head_dim < attn.q_proj.out_features


def test_mla_is_refused_until_built():
    with pytest.raises(BadConfig, match="not built yet"):
        DecoderLayer(dataclasses.replace(CFG, attention="mla"))
