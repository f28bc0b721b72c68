"""The DepthTransformer: causal over levels, position-specific feed-forward, an end class, and a
teacher-forced multi-level loss that falls."""

import pytest
import torch
import torch.nn.functional as F

from dina.config import DepthHeadConfig
from dina.errors import BadArgument
from dina.heads.depth import DepthTransformer, PositionFFN, multi_level_loss

SIZES = (16, 8, 8, 4)
CFG = DepthHeadConfig(dim=32, n_layers=2, n_heads=4, ffn_scale=2)
M = 24


@pytest.fixture
def head() -> DepthTransformer:
    torch.manual_seed(0)
    return DepthTransformer(CFG, M, SIZES).eval()


def _inputs(n: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, M, generator=g), torch.randn(n, len(SIZES), M, generator=g)


def test_logits_per_level_include_the_end_class(head):
    logits = head(*_inputs())
    assert [lg.shape for lg in logits] == [(5, k + 1) for k in SIZES]
    assert head.end_class == SIZES


def test_level_l_depends_only_on_h_and_the_codes_before_it(head):
    h, emb = _inputs()
    base = head(h, emb)
    for j in range(len(SIZES)):
        changed = emb.clone()
        changed[:, j] += 1.0  # the code of level j
        out = head(h, changed)
        for level in range(len(SIZES)):
            same = torch.allclose(out[level], base[level])
            assert same == (level <= j), (j, level)  # level l reads codes 0 .. l-1 only
    assert not torch.allclose(head(h + 1.0, emb)[0], base[0])


def test_position_specific_feed_forward_matches_a_direct_computation():
    torch.manual_seed(0)
    ffn = PositionFFN(dim=6, hidden=12, levels=3)
    x = torch.randn(2, 3, 6)
    out = ffn(x)
    for level in range(3):
        w1 = ffn.linear1.weight.view(4, 3, 6)[:, level]  # (F/L, D)
        w2 = ffn.linear2.weight.view(6, 3, 4)[:, level]  # (D, F/L)
        torch.testing.assert_close(out[:, level], F.gelu(x[:, level] @ w1.T) @ w2.T)


def test_teacher_forced_training_lowers_the_multi_level_loss():
    torch.manual_seed(0)
    head = DepthTransformer(CFG, M, SIZES)
    table = [torch.randn(k, M) for k in SIZES]  # stand-ins for the backbone's level embeddings
    h = torch.randn(64, M)
    codes = torch.stack([torch.randint(0, k, (64,)) for k in SIZES], dim=1)
    emb = torch.stack([table[i][codes[:, i]] for i in range(len(SIZES))], dim=1)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss, per_level = multi_level_loss(head(h, emb), codes, weights=[2, 1, 1, 1])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(per_level)
    assert (losses[-1] < 0.5 * losses[0]).all(), (losses[0], losses[-1])


def test_loss_weights_and_bad_input(head):
    h, emb = _inputs()
    logits = head(h, emb)
    codes = torch.zeros(5, len(SIZES), dtype=torch.long)
    loss, per_level = multi_level_loss(logits, codes, weights=[1, 0, 0, 0])
    torch.testing.assert_close(loss, per_level[0])
    with pytest.raises(BadArgument, match="level weights"):
        multi_level_loss(logits, codes, weights=[1, 1])
    with pytest.raises(BadArgument, match="level embeddings"):
        head(h, emb[:, :3])


def test_stepping_level_by_level_equals_the_teacher_forced_forward(head):
    h, emb = _inputs(seed=1)
    full = head(h, emb)
    cache = head.new_cache()
    prefix = torch.zeros_like(h)
    for level in range(len(head.codebook_sizes)):
        x = h if level == 0 else prefix
        torch.testing.assert_close(head.step(cache, x), full[level], atol=1e-5, rtol=1e-5)
        prefix = prefix + emb[:, level]
    with pytest.raises(BadArgument, match="decoded already"):
        head.step(cache, h)
