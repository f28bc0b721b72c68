"""Hashed n-gram embeddings: hashes by their formula, contexts reset at documents and non-text
tokens, non-text tokens keep their word embedding, and the release's tables on the meta device."""

import dataclasses

import pytest
import torch

from dina.backbone.ngram import NgramEmbedding
from dina.errors import BadConfig
from dina.presets import longcat_next, tiny

V = 50
CFG = dataclasses.replace(tiny().backbone, dim=48, ngram_vocab_ratio=3, ngram_orders=4, ngram_splits=2)


@pytest.fixture
def emb() -> NgramEmbedding:
    torch.manual_seed(0)
    return NgramEmbedding(CFG, V)


def test_tables_have_odd_moduli_and_split_the_width(emb):
    assert emb.moduli == [151, 153, 155, 157, 159, 161]
    assert [e.weight.shape for e in emb.embedders] == [(m, 8) for m in emb.moduli]


def test_hashes_follow_the_formula_with_resets(emb):
    ids = torch.tensor([3, 7, 11, 60, 5, 9, 4, 2, 8])  # 60 >= V: a non-text token; documents [0, 6) and [6, 9)
    rows = emb.hashed_ids(ids, torch.tensor([0, 6, 9]))

    def expected(t: int, j: int) -> int:
        order, modulus = 2 + j // 2, emb.moduli[j]
        first = max(0 if t < 6 else 6, max([i + 1 for i in range(t + 1) if ids[i] >= V], default=0))
        ctx = [int(ids[t - d]) if t - d >= first else 0 for d in range(order)]
        return sum(c * V**d for d, c in enumerate(ctx)) % modulus

    for j in range(len(emb.moduli)):
        assert rows[j].tolist() == [expected(t, j) for t in range(len(ids))]


def test_non_text_tokens_keep_their_word_embedding_and_text_tokens_average(emb):
    ids = torch.tensor([3, 7, 60, 5])
    word = torch.randn(4, CFG.dim)
    out = emb(ids, word, torch.tensor([0, 4]))
    torch.testing.assert_close(out[2], word[2])
    rows = emb.hashed_ids(ids, torch.tensor([0, 4]))
    parts = [emb.post_projs[j](emb.embedders[j](rows[j][3])) for j in range(6)]
    torch.testing.assert_close(out[3], (word[3] + sum(parts)) / 7)


def test_the_release_tables_on_the_meta_device():
    cfg = longcat_next().backbone
    with torch.device("meta"):
        emb = NgramEmbedding(cfg, 131_072)
    assert emb.moduli[0] == 10_223_617 and len(emb.moduli) == 12
    assert emb.embedders[0].weight.shape == (10_223_617, 256)
    params = sum(p.numel() for p in emb.parameters())
    assert params == sum(m * 256 for m in emb.moduli) + 12 * 256 * 3072  # 31.4 B


def test_off_and_bad_configs():
    with pytest.raises(BadConfig, match="off"):
        NgramEmbedding(tiny().backbone, 4096)
    with pytest.raises(BadConfig, match="tables"):
        NgramEmbedding(dataclasses.replace(CFG, ngram_splits=3), V)  # 9 tables do not split 48
