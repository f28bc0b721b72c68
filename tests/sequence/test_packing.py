"""Packing: documents never share attention, nothing is lost, and it beats padding."""

import random

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dina.errors import BadArgument, BadInputFile
from dina.sequence import AudioSegment, ImageSegment, Sample, TextSegment, pack_samples, packing_stats
from dina.sequence.packing import PAD_DOC, iterate_packed, pack_lengths


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 64), min_size=1, max_size=40), st.integers(64, 200))
def test_every_document_is_placed_once_and_contiguously(lengths, budget):
    batch = pack_lengths(lengths, budget).batch
    doc = batch.doc_ids_RT
    for i, n in enumerate(lengths):
        where = (doc == i).nonzero()
        assert len(where) == n
        assert where[:, 0].unique().numel() == 1  # one row
        cols = where[:, 1]
        assert (cols.diff() == 1).all()  # contiguous
        assert torch.equal(batch.positions_RT[doc == i], torch.arange(n))  # positions restart per document
    assert sorted(i for row in batch.rows for i in row) == list(range(len(lengths)))


def test_packed_attention_equals_each_document_alone():
    torch.manual_seed(0)
    lengths = [5, 9, 3, 12, 7]
    batch = pack_lengths(lengths, 20).batch
    R, T, D = batch.doc_ids_RT.shape[0], batch.budget, 16
    q, k, v = (torch.randn(R, 1, T, D) for _ in range(3))
    packed = F.scaled_dot_product_attention(q, k, v, attn_mask=batch.attention_mask())
    for r, row in enumerate(batch.rows):
        for i in row:
            sel = batch.doc_ids_RT[r] == i
            alone = F.scaled_dot_product_attention(q[r, :, sel], k[r, :, sel], v[r, :, sel], is_causal=True)
            assert torch.allclose(packed[r, :, sel], alone, atol=1e-6)


def test_cu_seqlens_mark_document_boundaries():
    batch = pack_lengths([4, 3, 2], 10).batch
    assert batch.cu_seqlens(0).tolist() == [0, 4, 7, 9]


def test_oversize_documents_are_skipped_and_counted_or_refused():
    result = pack_lengths([5, 50, 6], 16)
    assert result.skipped == (1,)
    assert 1 not in result.batch.doc_ids_RT
    with pytest.raises(BadInputFile, match="over the budget"):
        pack_lengths([5, 50], 16, oversize="error")
    with pytest.raises(BadArgument):
        pack_lengths([5], 0)


def test_segments_count_tokens_like_the_release():
    assert ImageSegment(width=448, height=224).num_tokens == 16 * 8 + 2
    assert AudioSegment(seconds=2.0).num_tokens == 25 + 2
    assert TextSegment(text="abc").num_tokens == 3
    assert TextSegment(text="abc", ids=(1, 2)).num_tokens == 2
    sample = Sample(segments=(ImageSegment(width=56, height=56), TextSegment(text="red")))
    assert sample.num_tokens == 6 + 3 + 1 and sample.modalities == {"image", "text"}
    with pytest.raises(BadInputFile):
        ImageSegment(width=30, height=56)
    with pytest.raises(BadInputFile):
        AudioSegment(seconds=0.0)


def test_packing_avoids_most_padding_on_mixed_resolutions():
    rng = random.Random(0)
    sides = [56 + 28 * k for k in range(15)]
    samples = [
        Sample(segments=(ImageSegment(width=rng.choice(sides), height=rng.choice(sides)), TextSegment(text="x" * 20)))
        for _ in range(64)
    ]
    stats = packing_stats([s.num_tokens for s in samples], 1024, 8)
    assert stats.packed_fraction < 0.15 < stats.padded_fraction
    assert stats.padding_avoided > 0.6
    assert pack_samples(samples, 1024).batch.padding_fraction == pytest.approx(stats.packed_fraction)


def test_iteration_is_seeded():
    samples = [Sample(segments=(TextSegment(text="y" * n),)) for n in range(1, 40)]
    a = [b.doc_ids_RT for b, _ in iterate_packed(samples, 64, seed=3, window=16, epochs=2)]
    b = [b.doc_ids_RT for b, _ in iterate_packed(samples, 64, seed=3, window=16, epochs=2)]
    c = [b.doc_ids_RT for b, _ in iterate_packed(samples, 64, seed=4, window=16, epochs=2)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=False))
    assert all((x == PAD_DOC).float().mean() < 0.5 for x in a)
