"""Level-by-level sampling from the DepthTransformer: equal to re-running the head with the codes
drawn so far, consistent with the teacher-forced pass, the end class only where allowed, CFG
rows that share their codes, seeded draws that repeat, and bad arguments refused."""

import pytest
import torch

from dina.backbone.embedding import MultimodalEmbedding
from dina.config import DepthHeadConfig, VocabConfig
from dina.errors import BadArgument, BadCodes
from dina.heads.depth import DepthTransformer
from dina.inference.depth_sampling import level_embedder, sample_levels
from dina.inference.sampling import SamplingConfig, sample

SIZES = (16, 8, 8, 4)
L = len(SIZES)
CFG = DepthHeadConfig(dim=32, n_layers=2, n_heads=4, ffn_scale=2)
M = 24
N = 6
GREEDY = SamplingConfig(temperature=0.0)
RANDOM = SamplingConfig(temperature=1.0)

_g = torch.Generator().manual_seed(1)
TABLES = [torch.randn(k, M, generator=_g) for k in SIZES]  # level l's embedding rows


def embed(level: int, codes_N: torch.Tensor) -> torch.Tensor:
    return TABLES[level][codes_N]


def embed_all(codes_NL: torch.Tensor) -> torch.Tensor:
    """(N, L) codes -> (N, L, M) level embeddings; -1 (never drawn) and end (K_l) read row 0."""
    safe = [torch.where((c >= 0) & (c < k), c, 0) for c, k in zip(codes_NL.T, SIZES, strict=True)]
    return torch.stack([TABLES[lvl][c] for lvl, c in enumerate(safe)], dim=1)


@pytest.fixture
def head() -> DepthTransformer:
    torch.manual_seed(0)
    return DepthTransformer(CFG, M, SIZES).eval()


def _h(n: int = N, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, M, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def brute_force(head, h, *, end_at_level0=False, history=None, cfg=GREEDY):
    """The release's loop, literally: re-run the head on all L positions with the codes so far
    (code 0 for the levels not drawn yet) and draw level l from position l."""
    codes = torch.zeros(h.shape[0], L, dtype=torch.long)
    for lvl in range(L):
        logits = head(h, embed_all(codes))[lvl]
        allowed = torch.ones(SIZES[lvl] + 1, dtype=torch.bool)
        allowed[-1] = end_at_level0 and lvl == 0
        codes[:, lvl] = sample(logits, cfg, history=None if history is None else history[lvl], mask_BV=allowed)
    return codes


def test_greedy_equals_rerunning_the_head_with_the_codes_so_far(head):
    h = _h()
    drawn = sample_levels(head, embed, h, GREEDY)
    assert drawn.codes_NL.dtype == torch.long and drawn.codes_NL.shape == (N, L)
    assert torch.equal(drawn.codes_NL, brute_force(head, h))
    assert not drawn.ended_N.any()
    assert [lg.shape for lg in drawn.logits] == [(N, k + 1) for k in SIZES]


def test_the_logits_of_each_level_are_those_of_the_teacher_forced_pass(head):
    h = _h()
    drawn = sample_levels(head, embed, h, RANDOM, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        forced = head(h, embed_all(drawn.codes_NL))
    for lvl in range(L):  # the level cache computes what the full causal pass does
        torch.testing.assert_close(drawn.logits[lvl], forced[lvl], atol=1e-5, rtol=1e-5, msg=str(lvl))


def test_per_level_histories_reach_the_repetition_penalty(head):
    h = _h()
    g = torch.Generator().manual_seed(4)
    history = [[torch.randint(0, k, (3,), generator=g) for _ in range(N)] for k in SIZES]
    cfg = SamplingConfig(temperature=0.0, repetition_penalty=50.0)
    drawn = sample_levels(head, embed, h, cfg, history=history)
    assert torch.equal(drawn.codes_NL, brute_force(head, h, history=history, cfg=cfg))
    assert not torch.equal(drawn.codes_NL, sample_levels(head, embed, h, cfg).codes_NL)


def _favour_end(head, levels, bias=100.0):
    with torch.no_grad():
        for lvl in range(L):
            head.heads[lvl].bias[-1] = bias if lvl in levels else -bias


def test_images_never_draw_the_end_class(head):
    _favour_end(head, range(L))
    drawn = sample_levels(head, embed, _h(), RANDOM, generator=torch.Generator().manual_seed(0))
    assert not drawn.ended_N.any()
    for lvl, k in enumerate(SIZES):
        assert int(drawn.codes_NL[:, lvl].min()) >= 0 and int(drawn.codes_NL[:, lvl].max()) < k


def test_audio_may_end_at_level_0_only(head):
    _favour_end(head, range(L))
    drawn = sample_levels(head, embed, _h(), RANDOM, allow_end="level0")
    assert drawn.ended_N.all()
    assert (drawn.codes_NL[:, 0] == SIZES[0]).all() and (drawn.codes_NL[:, 1:] == -1).all()
    assert len(drawn.logits) == 1  # nothing left to draw

    _favour_end(head, range(1, L))
    drawn = sample_levels(head, embed, _h(), RANDOM, allow_end="level0", generator=torch.Generator().manual_seed(0))
    assert not drawn.ended_N.any()
    assert all(int(drawn.codes_NL[:, lvl].max()) < k for lvl, k in enumerate(SIZES))


def test_positions_that_end_leave_the_others_untouched(head):
    with torch.no_grad():  # the end logit's sign follows the row: some positions end, some go on
        head.heads[0].bias[-1] = 0.0
        head.heads[0].weight[-1] = 50.0 * torch.randn(CFG.dim, generator=torch.Generator().manual_seed(2))
    h = _h(12)
    drawn = sample_levels(head, embed, h, GREEDY, allow_end="level0")
    ref = brute_force(head, h, end_at_level0=True)
    ended = ref[:, 0] == SIZES[0]
    assert 0 < int(ended.sum()) < 12
    assert torch.equal(drawn.ended_N, ended)
    assert (drawn.codes_NL[ended, 0] == SIZES[0]).all() and (drawn.codes_NL[ended, 1:] == -1).all()
    assert torch.equal(drawn.codes_NL[~ended], ref[~ended])


def _emb_inputs(head, monkeypatch):
    """Record the input of every decoding step after the first (the code embeddings so far)."""
    seen: list[torch.Tensor] = []
    real_step = head.step

    def step(cache, x):
        if cache.level:
            seen.append(x.clone())
        return real_step(cache, x)

    monkeypatch.setattr(head, "step", step)
    return seen


def test_guidance_combines_cond_and_uncond_and_feeds_both_the_same_code(head, monkeypatch):
    h_c, h_u, s = _h(seed=0), _h(seed=1), 3.0
    seen = _emb_inputs(head, monkeypatch)
    drawn = sample_levels(head, embed, torch.cat([h_c, h_u]), GREEDY, cfg_scale=s)
    monkeypatch.undo()
    assert drawn.codes_NL.shape == (N, L)
    assert len(seen) == L - 1 and all(torch.equal(e[:N], e[N:]) for e in seen)  # rows share every code
    with torch.no_grad():
        forced = head(torch.cat([h_c, h_u]), embed_all(drawn.codes_NL.repeat(2, 1)))
    for lvl in range(L):
        c, u = forced[lvl][:N], forced[lvl][N:]
        torch.testing.assert_close(drawn.logits[lvl], u + s * (c - u))
        assert torch.equal(drawn.codes_NL[:, lvl], drawn.logits[lvl][:, :-1].argmax(-1))
    assert not torch.equal(drawn.codes_NL, sample_levels(head, embed, h_c, GREEDY).codes_NL)


def test_guidance_at_scale_1_or_with_equal_rows_is_no_guidance(head):
    h = _h()
    plain = sample_levels(head, embed, h, GREEDY)
    at_one = sample_levels(head, embed, h, GREEDY, cfg_scale=1.0)
    same_rows = sample_levels(head, embed, torch.cat([h, h]), GREEDY, cfg_scale=3.0)
    for other in (at_one, same_rows):
        assert torch.equal(other.codes_NL, plain.codes_NL)
        for a, b in zip(other.logits, plain.logits, strict=True):  # a 2N-row batch may round differently
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_the_same_seed_draws_the_same_codes(head):
    h = _h(16)
    configs = [SamplingConfig(temperature=1.0, top_k=k // 2, top_p=0.9) for k in SIZES]

    def draw(seed: int) -> torch.Tensor:
        return sample_levels(head, embed, h, configs, generator=torch.Generator().manual_seed(seed)).codes_NL

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_bad_arguments_are_refused(head):
    h = _h()
    with pytest.raises(BadArgument, match="odd"):
        sample_levels(head, embed, h[:5], GREEDY, cfg_scale=2.0)
    with pytest.raises(BadArgument, match="hidden states"):
        sample_levels(head, embed, torch.randn(N, M + 1), GREEDY)
    with pytest.raises(BadArgument, match="hidden states"):
        sample_levels(head, embed, h[0], GREEDY)
    with pytest.raises(BadArgument, match="allow_end"):
        sample_levels(head, embed, h, GREEDY, allow_end="always")
    with pytest.raises(BadArgument, match="sampling config"):
        sample_levels(head, embed, h, [GREEDY] * (L - 1))
    with pytest.raises(BadArgument, match="history"):
        sample_levels(head, embed, h, GREEDY, history=[None] * (L + 1))


def test_level_embedder_reads_the_shared_table():
    vocab = VocabConfig(
        text_vocab_size=32, n_special=64, audio_codebook_sizes=(8, 4), visual_codebook_sizes=(16, 16), pad_to_multiple=8
    )
    torch.manual_seed(0)
    emb = MultimodalEmbedding(vocab, M, 32)
    codes = torch.tensor([[7, 3], [0, 1]])
    for modality in ("audio", "visual"):
        level_embed = level_embedder(emb, modality)
        for lvl in range(2):
            assert torch.equal(level_embed(lvl, codes[:, lvl]), emb.level_embeddings(modality, codes)[:, lvl])
    with pytest.raises(BadCodes):
        level_embedder(emb, "audio")(1, torch.tensor([4]))  # level 1 of audio has 4 codes


def test_the_unchecked_level_embedder_reads_the_same_rows():
    vocab = VocabConfig(
        text_vocab_size=32, n_special=64, audio_codebook_sizes=(8, 4), visual_codebook_sizes=(16, 16), pad_to_multiple=8
    )
    emb = MultimodalEmbedding(vocab, M, 32)
    codes = torch.tensor([[7, 3], [0, 1]])
    for modality in ("audio", "visual"):
        checked, unchecked = level_embedder(emb, modality), level_embedder(emb, modality, checked=False)
        for lvl in range(2):
            assert torch.equal(unchecked(lvl, codes[:, lvl]), checked(lvl, codes[:, lvl]))
