"""Sentences, the text normalizer and WER (checked against jiwer)."""

from __future__ import annotations

import re

import jiwer
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dina.data.speech.sentences import COLORS, POSITIONS, SHAPES, SIZES, sample_sentence, vocabulary
from dina.data.speech.textnorm import (
    corpus_wer,
    normalize_text,
    number_to_words,
    utterance_wer,
    word_errors,
)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (42, "forty two"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (999, "nine hundred ninety nine"),
        (1250, "one thousand two hundred fifty"),
        (2_000_001, "two million one"),
    ],
)
def test_number_to_words(value, words):
    assert number_to_words(value) == words


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Forty-two.", "forty two"),
        ("42", "forty two"),
        ("There are 7 red circles!", "there are seven red circles"),
        ("1,250 people", "one thousand two hundred fifty people"),
        ("3.5", "three point five"),
        ("One hundred and five", "one hundred five"),
        ("rock and roll", "rock and roll"),
        ("What colour is the grey square in the centre?", "what color is the gray square in the center"),
        ("  Turn   LEFT,  please ", "turn left please"),
        ("What's that", "whats that"),
        ("", ""),
    ],
)
def test_normalize_text(raw, normalized):
    assert normalize_text(raw) == normalized


def test_normalizer_is_idempotent_on_sentences():
    rng = np.random.default_rng(0)
    for _ in range(200):
        sentence = sample_sentence(rng)
        assert normalize_text(sentence) == sentence


def test_sentences_are_reproducible_and_use_the_vocabulary():
    a = [sample_sentence(np.random.default_rng(3)) for _ in range(5)]
    b = [sample_sentence(np.random.default_rng(3)) for _ in range(5)]
    assert a == b
    rng = np.random.default_rng(1)
    sentences = [sample_sentence(rng) for _ in range(500)]
    vocab = vocabulary()
    for s in sentences:
        assert re.fullmatch(r"[a-z]+( [a-z]+)*", s), s
        assert set(s.split()) <= vocab, s
        assert " a o" not in f" {s}" and not s.startswith("a o"), s  # "an orange", never "a orange"
    text = " ".join(sentences)
    for word in (*SHAPES, *COLORS, "in the top left", "at the bottom", "on the left", "turn left"):
        assert word in text
    assert len(set(sentences)) > 200


def test_vocabulary_matches_shapesworld():
    from dina.data.shapes import scene, text

    assert set(SHAPES) == set(scene.SHAPES)
    assert set(COLORS) == set(scene.PALETTE)
    assert set(SIZES) == set(scene.SIZES)
    assert tuple(POSITIONS) == scene.REGIONS
    assert all(POSITIONS[r] == text.region_phrase(r) for r in scene.REGIONS)


def _w(text: str) -> list[str]:
    return text.split()


def test_word_errors_counts_edits():
    assert word_errors(_w("a b c"), _w("a b c")) == 0
    assert word_errors(_w("a b c"), _w("a x c")) == 1
    assert word_errors(_w("a b c"), _w("a c")) == 1
    assert word_errors(_w("a b c"), _w("a b c d e")) == 2
    assert word_errors([], _w("a b")) == 2
    assert utterance_wer("", "") == 0.0
    assert utterance_wer("", "x") == 1.0


_words = st.lists(st.sampled_from(["red", "blue", "circle", "star", "a", "the"]), min_size=0, max_size=8)


@settings(max_examples=200, deadline=None)
@given(ref=_words.filter(bool), hyp=_words)
def test_utterance_wer_matches_jiwer(ref, hyp):
    reference, hypothesis = " ".join(ref), " ".join(hyp)
    assert utterance_wer(reference, hypothesis) == pytest.approx(jiwer.wer(reference, hypothesis))


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.tuples(_words.filter(bool), _words.filter(bool)), min_size=1, max_size=5))
def test_corpus_wer_matches_jiwer(pairs):
    refs = [" ".join(r) for r, _ in pairs]
    hyps = [" ".join(h) for _, h in pairs]
    assert corpus_wer(zip(refs, hyps, strict=True)) == pytest.approx(jiwer.wer(refs, hyps))
