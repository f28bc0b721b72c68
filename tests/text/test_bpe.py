"""Text ids: BPE round trips, special tokens at fixed ids after the text ids, save/load, bad files."""

import numpy as np
import pytest

from dina.config import SPECIAL_TOKENS, VocabConfig
from dina.data.speech.sentences import sample_sentence
from dina.errors import BadArgument, BadInputFile
from dina.presets import tiny
from dina.text.bpe import TextTokenizer

VOCAB = tiny().vocab


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    rng = np.random.default_rng(0)
    return TextTokenizer.train([sample_sentence(rng) for _ in range(400)], VOCAB)


def test_round_trip_and_ids_below_the_text_vocabulary(tok):
    for text in ("a big red ball is on the table", "What colour is the cube? Zwölf €!"):
        ids = tok.encode(text)
        assert all(0 <= i < VOCAB.text_vocab_size for i in ids)
        assert tok.decode(ids) == text  # byte-level: any string survives, unseen characters too


def test_special_tokens_sit_right_after_the_text_ids(tok):
    assert tok.special_id("<longcat_system>") == VOCAB.text_vocab_size
    assert tok.special_id("<longcat_img_start>") == VOCAB.text_vocab_size + SPECIAL_TOKENS.index("<longcat_img_start>")
    ids = [*tok.encode("look"), tok.special_id("<longcat_img_start>"), *tok.encode(" here")]
    assert tok.decode(ids) == "look<longcat_img_start> here"
    assert tok.special_name(VOCAB.text_vocab_size + len(SPECIAL_TOKENS)) == f"<reserved_{len(SPECIAL_TOKENS)}>"
    with pytest.raises(BadArgument, match="unknown special"):
        tok.special_id("<nope>")
    with pytest.raises(BadArgument, match="not a special"):
        tok.special_name(VOCAB.audio_offset)


def test_save_load_and_bad_files(tmp_path, tok):
    tok.save(tmp_path)
    again = TextTokenizer.load(tmp_path, VOCAB)
    assert again.encode("a small green star") == tok.encode("a small green star")
    with pytest.raises(BadInputFile, match="does not exist"):
        TextTokenizer.load(tmp_path / "none", VOCAB)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tokenizer.json").write_text("{not json")
    with pytest.raises(BadInputFile, match=r"not a tokenizer\.json"):
        TextTokenizer.load(tmp_path / "bad", VOCAB)
    small = VocabConfig(
        text_vocab_size=300, n_special=64, audio_codebook_sizes=(4,), visual_codebook_sizes=(4,), pad_to_multiple=1
    )
    with pytest.raises(BadInputFile, match="more than the 300"):
        TextTokenizer.load(tmp_path, small)
