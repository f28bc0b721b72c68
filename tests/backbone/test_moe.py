"""The LongCat-Flash MoE: zero experts are scaled identities, the correction bias chooses but never
weighs, counters add up, the output equals a token-by-token computation, and balancing balances."""

import pytest
import torch
import torch.nn.functional as F

import dina.backbone.moe as moe_module
from dina.backbone.moe import MoE, MoEConfig
from dina.errors import BadArgument, BadConfig

CFG = MoEConfig(dim=16, n_experts=6, expert_hidden=8, n_zero_experts=3, top_k=3, routed_scaling=6.0)


@pytest.fixture
def moe() -> MoE:
    torch.manual_seed(0)
    return MoE(CFG).eval()


def _x(n: int = 20) -> torch.Tensor:
    return torch.randn(n, CFG.dim, generator=torch.Generator().manual_seed(1))


def test_output_equals_a_token_by_token_computation(moe):
    x = _x()
    out = moe(x)
    scores = F.linear(x, moe.router.weight).softmax(-1)
    ex = moe.experts
    for n in range(x.shape[0]):
        expected = torch.zeros(CFG.dim)
        for e in scores[n].topk(CFG.top_k).indices.tolist():
            w = 6.0 * scores[n, e]
            if e >= CFG.n_experts:
                expected += w * x[n]
            else:
                h = F.silu(x[n] @ ex.gate_EDH[e]) * (x[n] @ ex.up_EDH[e])
                expected += w * (h @ ex.down_EHD[e])
        torch.testing.assert_close(out.out_ND[n], expected, atol=1e-5, rtol=1e-5)


def test_zero_experts_are_identities_scaled_by_the_routed_scaling(moe):
    moe.router.correction_bias_X[CFG.n_experts :] = 100.0  # every token picks the three zero experts
    x = _x()
    out = moe(x)
    scores = F.linear(x, moe.router.weight).softmax(-1)
    expected = x * (6.0 * scores[:, CFG.n_experts :].sum(-1, keepdim=True))
    torch.testing.assert_close(out.out_ND, expected)
    assert out.zero_share == 1.0


def test_the_correction_bias_changes_selection_but_not_weights(moe):
    x = _x()
    plain = moe.router(x)
    moe.router.correction_bias_X[2] = 100.0  # expert 2 is now always chosen
    biased = moe.router(x)
    assert (biased.indices_NK == 2).any(dim=1).all() and not (plain.indices_NK == 2).any(dim=1).all()
    torch.testing.assert_close(biased.scores_NX, plain.scores_NX)  # the bias never enters the scores
    torch.testing.assert_close(biased.weights_NK, 6.0 * plain.scores_NX.gather(1, biased.indices_NK))


def test_counters_add_up(moe):
    out = moe(_x(50))
    assert int(out.tokens_per_expert_X.sum()) == 50 * CFG.top_k
    zero = int(out.tokens_per_expert_X[CFG.n_experts :].sum())
    assert out.zero_share == pytest.approx(zero / (50 * CFG.top_k))


def test_bias_updates_balance_the_experts():
    torch.manual_seed(0)
    moe = MoE(MoEConfig(dim=16, n_experts=6, expert_hidden=8, n_zero_experts=3, top_k=2, bias_update_rate=1e-3))
    with torch.no_grad():
        moe.router.weight[0] += moe.router.weight[0].norm()  # a router that favours expert 0
    gen = torch.Generator().manual_seed(2)
    held_out = torch.randn(2000, 16, generator=gen)
    before = moe.eval()(held_out).tokens_per_expert_X.float()
    moe.train()
    for _ in range(400):  # fresh batches, as in training
        moe(torch.randn(200, 16, generator=gen))
    after = moe.eval()(held_out).tokens_per_expert_X.float()
    assert after.std() < 0.3 * before.std(), (before, after)  # measured: 148 -> 26
    assert after[0] < 0.7 * before[0]
    assert not moe.router.correction_bias_X.requires_grad


def test_gradients_reach_router_and_experts(moe):
    moe.train()
    moe(_x()).out_ND.square().sum().backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
    assert moe.experts.gate_EDH.grad is not None and moe.experts.gate_EDH.grad.abs().sum() > 0


def test_bad_config_and_input(moe):
    with pytest.raises(BadConfig, match="top_k"):
        MoEConfig(dim=8, n_experts=2, expert_hidden=4, n_zero_experts=1, top_k=4)
    with pytest.raises(BadArgument, match="MoE expects"):
        moe(torch.zeros(3, 7))


def test_presets_derive_their_moe():
    from dina.presets import longcat_next, tiny

    release = longcat_next().backbone.moe
    assert (release.n_experts, release.n_zero_experts, release.top_k, release.expert_hidden) == (256, 128, 12, 1024)
    assert release.routed_scaling == 6.0 and release.total_experts == 384
    small = tiny().backbone.moe
    out = MoE(small)(torch.randn(5, small.dim))
    assert out.out_ND.shape == (5, small.dim) and int(out.tokens_per_expert_X.sum()) == 5 * small.top_k


def test_the_dense_path_for_a_few_tokens_computes_the_same_sum(moe, monkeypatch):
    torch.manual_seed(3)
    x = torch.randn(6, moe.cfg.dim)  # 6 tokens x 3 slots >= 6 experts: the dense path
    routing = moe.router(x)
    dense = moe.experts(x, routing.indices_NK, routing.weights_NK)
    monkeypatch.setattr(moe_module, "DENSE_MAX_TOKENS", 0)  # force the per-expert loop
    looped = moe.experts(x, routing.indices_NK, routing.weights_NK)
    assert bool((routing.indices_NK >= moe.cfg.n_experts).any())  # zero experts are among the picks
    torch.testing.assert_close(dense, looped, atol=1e-5, rtol=1e-5)


def test_mix_is_the_forward_output_without_counters(moe):
    x = _x()
    assert torch.equal(moe.mix(x), moe(x).out_ND)
