"""The LongCat-Flash decoder layer: causal, documents independent when packed, the MoE on the shortcut."""

import dataclasses

import pytest
import torch

from dina.backbone.layer import DecoderLayer, GQAttention, MLAttention
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


MLA = dataclasses.replace(
    CFG, attention="mla", q_lora_rank=32, kv_lora_rank=16, qk_nope_dim=16, qk_rope_dim=8, v_head_dim=12
)


def test_mla_is_causal_and_packs_documents():
    torch.manual_seed(0)
    attn = MLAttention(MLA)
    x = torch.randn(11, MLA.dim, generator=torch.Generator().manual_seed(4))
    pos = torch.cat([torch.arange(7), torch.arange(4)])
    rot = rotary_tables(pos, MLA.rope_dim, theta=MLA.rope_theta)
    out = attn(x, torch.tensor([0, 7, 11]), rot)
    alone = attn(x[:7], torch.tensor([0, 7]), rotary_tables(torch.arange(7), MLA.rope_dim, theta=MLA.rope_theta))
    torch.testing.assert_close(out[:7], alone, atol=1e-5, rtol=1e-5)
    changed = x.clone()
    changed[5] += 1.0
    torch.testing.assert_close(attn(changed, torch.tensor([0, 7, 11]), rot)[:5], out[:5])


def test_mla_matches_a_direct_computation():
    """One head, two tokens: scores from the latent path, written out by hand."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(MLA, n_heads=1, n_kv_heads=1)
    attn = MLAttention(cfg)
    x = torch.randn(2, cfg.dim, generator=torch.Generator().manual_seed(5))
    rot = rotary_tables(torch.arange(2), cfg.rope_dim, theta=cfg.rope_theta)
    out = attn(x, torch.tensor([0, 2]), rot)
    q = attn.q_b_proj(attn.q_a_layernorm(attn.q_a_proj(x))) * (cfg.dim / cfg.q_lora_rank) ** 0.5
    ckv = attn.kv_a_proj_with_mqa(x)
    kv = attn.kv_b_proj(attn.kv_a_layernorm(ckv[:, : cfg.kv_lora_rank]) * (cfg.dim / cfg.kv_lora_rank) ** 0.5)
    k_nope, v = kv[:, : cfg.qk_nope_dim], kv[:, cfg.qk_nope_dim :]

    def rotate(t, p):  # pairs (2i, 2i+1) rotated by p · θ^(-2i/r)
        r = t.shape[-1]
        ang = p * cfg.rope_theta ** (-torch.arange(0, r, 2, dtype=torch.float64) / r)
        c, s = ang.cos().float(), ang.sin().float()
        a, b = t[0::2], t[1::2]
        return torch.stack([a * c - b * s, b * c + a * s], dim=-1).flatten()

    qs = [torch.cat([q[i, : cfg.qk_nope_dim], rotate(q[i, cfg.qk_nope_dim :], i)]) for i in range(2)]
    ks = [torch.cat([k_nope[i], rotate(ckv[i, cfg.kv_lora_rank :], i)]) for i in range(2)]
    scale = (cfg.qk_nope_dim + cfg.qk_rope_dim) ** -0.5
    w = torch.softmax(torch.stack([qs[1] @ ks[0], qs[1] @ ks[1]]) * scale, dim=0)
    torch.testing.assert_close(out[0], attn.o_proj(v[0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], attn.o_proj(w[0] * v[0] + w[1] * v[1]), atol=1e-5, rtol=1e-5)


def test_the_layer_builds_with_mla():
    layer = DecoderLayer(MLA)
    x = torch.randn(5, MLA.dim)
    out = layer(x, torch.tensor([0, 5]), rotary_tables(torch.arange(5), MLA.rope_dim, theta=MLA.rope_theta))
    assert out.x_ND.shape == (5, MLA.dim)


def test_decode_is_the_wired_output_and_the_norm_keeps_its_formula(layer):
    x = torch.randn(5, CFG.dim, generator=torch.Generator().manual_seed(4))
    cu = torch.tensor([0, 5])
    rot = rotary_tables(torch.arange(5), CFG.head_dim, theta=CFG.rope_theta)

    def attend(s, y):
        return layer.attns[s](y, cu, rot)

    assert torch.equal(layer.decode(x, attend), layer.wired(x, attend).x_ND)
    norm = layer.input_norms[0]
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    formula = norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps))  # the fp32 fast path
    torch.testing.assert_close(norm(x), formula, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(norm(x.double()), formula.double(), atol=1e-6, rtol=1e-6)  # the cast path
