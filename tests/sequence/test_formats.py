"""Sample formats: the exact layout and loss mask of every format (`pytest -s` prints each table)."""

import dataclasses

import numpy as np
import pytest
import torch

from dina.config import VocabConfig
from dina.errors import BadArgument, BadCodes
from dina.sequence.document import (
    AUDIO,
    IGNORE,
    IMAGE,
    NO_CODE,
    TEXT,
    Document,
    DocumentBuilder,
    check_document,
    sample_delay,
)
from dina.sequence.formats import (
    ASR_PROMPT,
    CAPTION_PROMPT,
    FORMATS,
    SYSTEM_PROMPT,
    TTS_PROMPT,
    ImageItem,
    SpeechItem,
    build_document,
)
from dina.text.bpe import TextTokenizer

# Two levels per modality keep the printed tables narrow.
VOCAB = VocabConfig(
    text_vocab_size=300, n_special=64, audio_codebook_sizes=(16, 8), visual_codebook_sizes=(16, 16), pad_to_multiple=64
)
SENTENCES = [
    "a red ball is on the left of a blue cube",
    "what colour is the ball? red",
    "draw a green triangle above a red square",
    "the cat sat on the mat and the dog sat too",
    SYSTEM_PROMPT,
    ASR_PROMPT,
    CAPTION_PROMPT,
    TTS_PROMPT + "hello there",
    "0 1 2 3 4 5 6 7 8 9",
]


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer.train(SENTENCES * 4, VOCAB)


def image(seed: int = 0, h: int = 2, w: int = 3) -> ImageItem:
    g = torch.Generator().manual_seed(seed)
    return ImageItem(
        codes=torch.randint(0, 16, (h, w, 2), generator=g),
        captions=("a red ball", "a blue cube on the left"),
        qa=(("what colour is the ball?", "red"), ("what is on the left?", "a cube"), ("how many?", "two")),
        prompt="draw a red ball",
    )


def speech(seed: int = 0, frames: int = 4, text: str = "hello there") -> SpeechItem:
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, 16, (frames,), generator=g), torch.randint(0, 8, (frames,), generator=g)], 1)
    return SpeechItem(codes=codes, text=text)


def items_for(name: str) -> list:
    spec = FORMATS[name]
    n = spec.n_items[1]
    if spec.kind == "text":
        return ["a red ball", "the cat sat"][: max(1, min(n, 2))]
    if spec.kind == "image":
        return [image(i) for i in range(n)]
    return [speech(i, frames=3 + i, text=["hello there", "the cat sat", "a red ball", "two"][i]) for i in range(n)]


# ---- helpers ---------------------------------------------------------------------------------
def sp(tok: TextTokenizer, name: str) -> int:
    return tok.special_id(name)


def name_of(tok: TextTokenizer, i: int) -> str:
    return tok.special_name(i) if i >= VOCAB.text_vocab_size else repr(tok.decode([i]))


def show(doc: Document, tok: TextTokenizer) -> None:
    """Print one row per position (run pytest with -s to see it)."""

    def codes(row: torch.Tensor, none: int) -> str:
        return "-" if bool((row == none).all()) else ",".join("." if v == IGNORE else str(v) for v in row.tolist())

    print(f"\n{doc.format}: {len(doc)} positions, {doc.n_targets} with loss")
    print(f"{'pos':>3} {'token':<26} {'guide':<26} {'vcode':>6} {'acode':>6} {'lm':<26} {'vlab':>6} {'alab':>6} mod")
    for t in range(len(doc)):
        guide = int(doc.guide[t])
        lm = int(doc.lm_labels[t])
        print(
            f"{t:>3} {name_of(tok, int(doc.ids[t])):<26} {name_of(tok, guide) if guide >= 0 else '':<26} "
            f"{codes(doc.visual_codes[t], NO_CODE):>6} {codes(doc.audio_codes[t], NO_CODE):>6} "
            f"{name_of(tok, lm) if lm != IGNORE else '.':<26} {codes(doc.visual_labels[t], IGNORE):>6} "
            f"{codes(doc.audio_labels[t], IGNORE):>6} {'TIA'[int(doc.modality[t])]}"
        )


def build(name: str, tok: TextTokenizer, items: list, seed: int = 0) -> Document:
    doc = build_document(name, tok, items, np.random.default_rng(seed))
    show(doc, tok)
    return doc


def has_label(doc: Document) -> torch.Tensor:
    return (doc.lm_labels != IGNORE) | (doc.visual_labels != IGNORE).any(1) | (doc.audio_labels != IGNORE).any(1)


def where(doc: Document, tok: TextTokenizer, name: str) -> list[int]:
    return (doc.ids == sp(tok, name)).nonzero().flatten().tolist()


def assert_no_codes(doc: Document, rows: slice | list[int]) -> None:
    assert (doc.visual_codes[rows] == NO_CODE).all() and (doc.audio_codes[rows] == NO_CODE).all()


def assert_text_loss(doc: Document, lo: int, hi: int) -> None:
    """Positions lo..hi-1 are text whose LM labels are their own ids."""
    assert torch.equal(doc.lm_labels[lo:hi], doc.ids[lo:hi])
    assert (doc.modality[lo:hi] == TEXT).all()


def check_textaudio(
    doc: Document, tok: TextTokenizer, at: int, text_ids: list[int], codes: torch.Tensor, d: int
) -> int:
    """The text-guided span starting at `at` with delay d; returns the position after it."""
    T, tpad = codes.shape[0], sp(tok, "<longcat_audiotext_pad>")
    n = d + 1 + T
    assert int(doc.ids[at]) == sp(tok, "<longcat_audiogen_start>")
    body = slice(at + 1, at + 1 + n)
    expect_ids = [tpad] * d + [sp(tok, "<longcat_audiotext_start>")] + [sp(tok, "<longcat_audio_pad>")] * T
    assert doc.ids[body].tolist() == expect_ids
    stream = text_ids + [tpad] * (n - len(text_ids))
    assert doc.guide[body].tolist() == stream
    assert doc.lm_labels[body].tolist() == stream  # the LM predicts the text stream
    audio = slice(at + 1 + d + 1, at + 1 + n)
    assert torch.equal(doc.audio_codes[audio], codes) and torch.equal(doc.audio_labels[audio], codes)
    assert (doc.audio_labels[at + 1 : at + 2 + d] == IGNORE).all()  # no codes before the delay is over
    end = at + 1 + n
    assert int(doc.ids[end]) == int(doc.lm_labels[end]) == sp(tok, "<longcat_audiogen_end>")
    assert doc.audio_labels[end].tolist() == [VOCAB.audio_codebook_sizes[0], IGNORE]  # the end class
    assert (doc.modality[at : end + 1] == torch.where(doc.audio_codes[at : end + 1, 0] >= 0, AUDIO, TEXT)).all()
    return end + 1


# ---- pre-training formats ----------------------------------------------------------------------
def test_text(tok):
    doc = build("text", tok, ["a red ball", "the cat sat"])
    assert doc.ids.tolist() == [*tok.encode("a red ball the cat sat"), sp(tok, "</longcat_s>")]
    assert int(doc.lm_labels[0]) == IGNORE
    assert_text_loss(doc, 1, len(doc))
    assert_no_codes(doc, slice(None))
    assert (doc.guide == NO_CODE).all()


def test_caption(tok):
    item = image()
    doc = build("caption", tok, [item])
    h, w, _ = item.codes.shape
    pads = slice(1, 1 + h * w)
    assert int(doc.ids[0]) == sp(tok, "<longcat_img_start>") and int(doc.ids[1 + h * w]) == sp(tok, "<longcat_img_end>")
    assert (doc.ids[pads] == sp(tok, "<longcat_img_pad>")).all() and (doc.modality[pads] == IMAGE).all()
    assert torch.equal(doc.visual_codes[pads], item.codes.reshape(-1, 2))  # row-major, no newlines
    assert_no_codes(doc, slice(1 + h * w, None))
    assert (doc.visual_labels == IGNORE).all() and (doc.audio_labels == IGNORE).all()
    assert (doc.lm_labels[: 2 + h * w] == IGNORE).all()  # the image is input only
    cap = slice(2 + h * w, len(doc) - 1)
    assert tok.decode(doc.ids[cap].tolist()) in item.captions
    assert_text_loss(doc, cap.start, len(doc))  # caption and </longcat_s>
    assert int(doc.ids[-1]) == sp(tok, "</longcat_s>")


def test_vqa(tok):
    item = image()
    doc = build("vqa", tok, [item])
    after = where(doc, tok, "<longcat_img_end>")[0] + 1
    question, answer = next(qa for qa in item.qa if tok.decode(doc.ids[after:-1].tolist()) == " ".join(qa))
    nq = len(tok.encode(question))
    assert doc.ids[after : after + nq].tolist() == tok.encode(question)
    assert doc.ids[after + nq : -1].tolist() == tok.encode(" " + answer)
    assert (doc.lm_labels[: after + nq] == IGNORE).all()  # image and question: no loss
    assert_text_loss(doc, after + nq, len(doc))  # " answer" and </longcat_s>


def test_t2i(tok):
    item = image(h=2, w=3)
    doc = build("t2i", tok, [item])
    h, w, _ = item.codes.shape
    np_ = len(tok.encode(item.prompt))
    assert doc.ids[:np_].tolist() == tok.encode(item.prompt) and (doc.lm_labels[:np_] == IGNORE).all()
    open_, close = where(doc, tok, "<longcat_img_token_size>")[0], where(doc, tok, "</longcat_img_token_size>")[0]
    assert open_ == np_ and tok.decode(doc.ids[open_ + 1 : close].tolist()) == f"{h} {w}"
    assert int(doc.ids[close + 1]) == sp(tok, "<longcat_img_start>")
    pads = where(doc, tok, "<longcat_img_pad>")
    first, end = pads[0], where(doc, tok, "<longcat_img_end>")[0]
    assert first == close + 2 and end - first + 1 == h * (w + 1)
    assert where(doc, tok, "<longcat_img_newline>") == [first + (y + 1) * (w + 1) - 1 for y in range(h - 1)]
    is_pad = doc.ids == sp(tok, "<longcat_img_pad>")
    assert torch.equal(doc.visual_codes[is_pad], item.codes.reshape(-1, 2))
    assert torch.equal(doc.visual_labels[is_pad], item.codes.reshape(-1, 2))
    assert (doc.visual_labels[~is_pad] == IGNORE).all() and (doc.visual_codes[~is_pad] == NO_CODE).all()
    assert torch.equal(doc.lm_labels[np_:], doc.ids[np_:])  # size tag .. </longcat_s> all predicted
    assert (doc.modality == torch.where(is_pad, IMAGE, TEXT)).all()
    assert int(doc.ids[-1]) == sp(tok, "</longcat_s>") and end == len(doc) - 2


def test_interleaved(tok):
    items = [image(0, 2, 2), image(1, 1, 3)]
    doc = build("interleaved", tok, items)
    starts = where(doc, tok, "<longcat_img_token_size>")
    ends = where(doc, tok, "<longcat_img_end>")
    assert len(starts) == len(ends) == 2
    assert tok.decode(doc.ids[: starts[0]].tolist()) in items[0].captions
    assert tok.decode(doc.ids[ends[0] + 1 : starts[1]].tolist()) in items[1].captions
    is_pad = doc.ids == sp(tok, "<longcat_img_pad>")
    codes = torch.cat([it.codes.reshape(-1, 2) for it in items])
    assert torch.equal(doc.visual_labels[is_pad], codes)
    assert torch.equal(doc.lm_labels[1:], doc.ids[1:])  # everything is predicted
    assert ends[1] == len(doc) - 2


def test_asr(tok):
    item = speech(frames=5)
    doc = build("asr", tok, [item])
    T = item.codes.shape[0]
    prompt = [sp(tok, "<longcat_user>"), *tok.encode(ASR_PROMPT), sp(tok, "<longcat_audio_start>")]
    head = [
        *prompt,
        *[sp(tok, "<longcat_audio_pad>")] * T,
        sp(tok, "<longcat_audio_end>"),
        sp(tok, "<longcat_assistant>"),
    ]
    transcript = tok.encode(item.text)
    assert doc.ids.tolist() == [*head, *transcript, sp(tok, "</longcat_s>")]
    pads = slice(len(prompt), len(prompt) + T)
    assert torch.equal(doc.audio_codes[pads], item.codes) and (doc.modality[pads] == AUDIO).all()
    assert (doc.audio_labels == IGNORE).all()  # no loss on pure audio in ASR
    assert (doc.lm_labels[: len(head)] == IGNORE).all()
    assert_text_loss(doc, len(head), len(doc))


def test_tts_layout_with_the_sampled_delays(tok):
    items = [speech(0, 4, "hello there"), speech(1, 3, "the cat sat")]
    seed = 3
    doc = build("tts", tok, items, seed=seed)
    rng = np.random.default_rng(seed)
    at = 0
    for item in items:
        ids = tok.encode(item.text)
        d = max(sample_delay(rng, len(ids)), len(ids) - 1 - item.codes.shape[0])
        at = check_textaudio(doc, tok, at, ids, item.codes, d)
    assert at == len(doc) - 1 and int(doc.ids[at]) == int(doc.lm_labels[at]) == sp(tok, "</longcat_s>")
    assert (doc.visual_codes == NO_CODE).all()


def textaudio_doc(tok: TextTokenizer, text: str, frames: int, delay: int) -> tuple[Document, list[int], SpeechItem]:
    item, ids = speech(0, frames, text), tok.encode(text)
    doc = DocumentBuilder(tok, "tts").text_guided_audio(ids, item.codes, delay=delay).special("</longcat_s>", loss=True)
    built = doc.build()
    show(built, tok)
    return built, ids, item


def test_text_guided_audio_parallel_serial_and_raised_delays(tok):
    # parallel (d = 0): the text leads the audio by one position
    doc, ids, item = textaudio_doc(tok, "the cat sat", 6, 0)
    check_textaudio(doc, tok, 0, ids, item.codes, 0)
    assert int(doc.ids[1]) == sp(tok, "<longcat_audiotext_start>") and int(doc.guide[1]) == ids[0]
    assert torch.equal(doc.audio_codes[2], item.codes[0]) and int(doc.guide[2]) == ids[1]
    # serial (d >= m): the whole text precedes the first audio code
    for d in (len(ids), len(ids) + 2):
        doc, ids, item = textaudio_doc(tok, "the cat sat", 3, d)
        check_textaudio(doc, tok, 0, ids, item.codes, d)
        first_audio = int((doc.audio_codes[:, 0] != NO_CODE).nonzero()[0])
        last_text = int((doc.guide == torch.tensor(ids)[-1]).nonzero()[-1])
        assert last_text < first_audio
    # a text longer than the delayed audio raises the delay so that it fits (m <= d + 1 + T)
    doc, ids, item = textaudio_doc(tok, "the cat sat on the mat and the dog sat too", 2, 0)
    check_textaudio(doc, tok, 0, ids, item.codes, len(ids) - 1 - 2)


def test_intlv(tok):
    items = [speech(0, 3), speech(1, 2, "the cat sat"), speech(2, 4), speech(3, 2, "a red ball")]
    doc = build("intlv", tok, items)
    assert (doc.audio_labels == IGNORE).all() and (doc.guide == NO_CODE).all()
    starts, ends = where(doc, tok, "<longcat_audio_start>"), where(doc, tok, "<longcat_audio_end>")
    assert starts == [0, ends[0] + 1 + len(tok.encode("the cat sat"))]
    for (s, e), item in zip(zip(starts, ends, strict=True), items[::2], strict=True):
        assert torch.equal(doc.audio_codes[s + 1 : e], item.codes)
        assert (doc.lm_labels[s : e + 1] == IGNORE).all()
    assert tok.decode(doc.ids[ends[0] + 1 : starts[1]].tolist()) == "the cat sat"
    assert_text_loss(doc, ends[0] + 1, starts[1])
    assert_text_loss(doc, ends[1] + 1, len(doc))  # "a red ball" and </longcat_s>
    # an odd count ends on pure audio, so </longcat_s> has no loss either
    odd = build("intlv", tok, items[:3])
    assert int(odd.ids[-2]) == sp(tok, "<longcat_audio_end>") and int(odd.lm_labels[-1]) == IGNORE


def test_intlv_ta(tok):
    items = [speech(0, 3), speech(1, 3, "the cat sat"), speech(2, 2), speech(3, 2, "two")]
    seed = 1
    doc = build("intlv_ta", tok, items, seed=seed)
    rng = np.random.default_rng(seed)
    starts, ends = where(doc, tok, "<longcat_audio_start>"), where(doc, tok, "<longcat_audio_end>")
    for (s, e), item in zip(zip(starts, ends, strict=True), items[::2], strict=True):
        assert torch.equal(doc.audio_codes[s + 1 : e], item.codes)
        assert not has_label(doc)[s : e + 1].any()  # pure audio: no loss at all
    for item, at, nxt in ((items[1], ends[0] + 1, starts[1]), (items[3], ends[1] + 1, len(doc) - 1)):
        ids = tok.encode(item.text)
        d = max(sample_delay(rng, len(ids)), len(ids) - 1 - item.codes.shape[0])
        assert check_textaudio(doc, tok, at, ids, item.codes, d) == nxt  # loss on text and audio
    assert int(doc.lm_labels[-1]) == sp(tok, "</longcat_s>")


def test_pure_audio(tok):
    items = [speech(0, 3), speech(1, 2)]
    doc = build("pure_audio", tok, items)
    is_pad = doc.ids == sp(tok, "<longcat_audio_pad>")
    codes = torch.cat([it.codes for it in items])
    assert torch.equal(doc.audio_codes[is_pad], codes) and torch.equal(doc.audio_labels[is_pad], codes)
    assert (doc.audio_labels[~is_pad] == IGNORE).all()
    assert torch.equal(doc.lm_labels[1:], doc.ids[1:])
    assert int(doc.ids[-1]) == sp(tok, "</longcat_s>")


# ---- chat formats ------------------------------------------------------------------------------
def chat_turns(doc: Document, tok: TextTokenizer) -> list[tuple[int, int]]:
    """Check the chat mask; return each turn's (first reply position, its </longcat_s>)."""
    system = [sp(tok, "<longcat_system>"), *tok.encode(SYSTEM_PROMPT), sp(tok, "<longcat_user>")]
    assert doc.ids[: len(system)].tolist() == system
    users, assistants = where(doc, tok, "<longcat_user>"), where(doc, tok, "<longcat_assistant>")
    ends = where(doc, tok, "</longcat_s>")
    assert len(users) == len(assistants) == len(ends) and ends[-1] == len(doc) - 1
    in_reply = torch.zeros(len(doc), dtype=torch.bool)
    for u, a, e in zip(users, assistants, ends, strict=True):
        assert u < a < e
        in_reply[a + 1 : e + 1] = True
    assert torch.equal(has_label(doc), in_reply)  # labels on every reply position, nowhere else
    assert int(doc.lm_labels[ends[-1]]) == sp(tok, "</longcat_s>")
    return [(a + 1, e) for a, e in zip(assistants, ends, strict=True)]


def test_chat_vqa(tok):
    item = image()
    doc = build("chat_vqa", tok, [item], seed=2)
    turns = chat_turns(doc, tok)
    assert 1 <= len(turns) <= 3
    assert len(where(doc, tok, "<longcat_img_start>")) == 1  # the image only in the first user turn
    assert where(doc, tok, "<longcat_img_start>")[0] < turns[0][0]
    users = where(doc, tok, "<longcat_user>")
    asked = set()
    for k, (lo, hi) in enumerate(turns):
        answer = tok.decode(doc.ids[lo:hi].tolist())
        start = users[k] + 1 if k else where(doc, tok, "<longcat_img_end>")[0] + 1
        question = tok.decode(doc.ids[start : lo - 1].tolist())
        assert (question, answer) in item.qa
        asked.add(question)
        assert_text_loss(doc, lo, hi + 1)
    assert len(asked) == len(turns)  # no question twice
    assert {len(chat_turns(build("chat_vqa", tok, [item], seed=s), tok)) for s in range(12)} == {1, 2, 3}


def test_chat_caption(tok):
    item = image()
    doc = build("chat_caption", tok, [item])
    ((lo, hi),) = chat_turns(doc, tok)
    img_end = where(doc, tok, "<longcat_img_end>")[0]
    assert doc.ids[img_end + 1 : lo - 1].tolist() == tok.encode(CAPTION_PROMPT)
    assert tok.decode(doc.ids[lo:hi].tolist()) in item.captions
    assert (doc.visual_codes[doc.modality == IMAGE] != NO_CODE).all() and (doc.visual_labels == IGNORE).all()


def test_chat_t2i(tok):
    item = image(h=2, w=2)
    doc = build("chat_t2i", tok, [item])
    ((lo, hi),) = chat_turns(doc, tok)
    user = where(doc, tok, "<longcat_user>")[0]
    assert doc.ids[user + 1 : lo - 1].tolist() == tok.encode(item.prompt)
    assert int(doc.ids[lo]) == sp(tok, "<longcat_img_token_size>") and int(doc.ids[hi - 1]) == sp(
        tok, "<longcat_img_end>"
    )
    is_pad = doc.ids == sp(tok, "<longcat_img_pad>")
    assert torch.equal(doc.visual_labels[is_pad], item.codes.reshape(-1, 2))
    assert torch.equal(doc.lm_labels[lo:], doc.ids[lo:])


def test_chat_asr(tok):
    item = speech(frames=3)
    doc = build("chat_asr", tok, [item])
    ((lo, hi),) = chat_turns(doc, tok)
    user = where(doc, tok, "<longcat_user>")[0]
    assert doc.ids[user + 1 : user + 1 + len(tok.encode(ASR_PROMPT))].tolist() == tok.encode(ASR_PROMPT)
    assert (doc.audio_labels == IGNORE).all()
    assert torch.equal(doc.audio_codes[doc.ids == sp(tok, "<longcat_audio_pad>")], item.codes)
    assert doc.ids[lo:hi].tolist() == tok.encode(item.text)


def test_chat_tts(tok):
    item = speech(frames=5, text="the cat sat")
    seed = 0
    doc = build("chat_tts", tok, [item], seed=seed)
    ((lo, hi),) = chat_turns(doc, tok)
    user = where(doc, tok, "<longcat_user>")[0]
    assert doc.ids[user + 1 : lo - 1].tolist() == tok.encode(TTS_PROMPT + item.text)
    ids = tok.encode(item.text)
    d = sample_delay(np.random.default_rng(seed), len(ids))
    assert check_textaudio(doc, tok, lo, ids, item.codes, d) == hi


# ---- every format --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_is_valid_reproducible_and_ends_with_the_end_token(tok, name):
    items = items_for(name)
    doc = build_document(name, tok, items, np.random.default_rng(7))
    again = build_document(name, tok, items, np.random.default_rng(7))
    for f in dataclasses.fields(Document):
        a, b = getattr(doc, f.name), getattr(again, f.name)
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
    check_document(doc, VOCAB)
    assert doc.format == name and int(doc.ids[-1]) == sp(tok, "</longcat_s>") and doc.n_targets > 0
    assert not has_label(doc)[0]
    assert (doc.ids == sp(tok, "</longcat_s>")).sum() == (
        1 if not name.startswith("chat_") else len(where(doc, tok, "<longcat_user>"))
    )


def test_sample_delay_distribution():
    rng = np.random.default_rng(0)
    m = 5
    d = np.array([sample_delay(rng, m) for _ in range(4000)])
    assert 0.45 < (d == 0).mean() < 0.55  # parallel half the time
    assert set(d[d > 0].tolist()) == set(range(1, m + 1))  # otherwise uniform in [1, m]
    assert np.abs(np.bincount(d[d > 0])[1:] / (d > 0).sum() - 1 / m).max() < 0.03
    assert sample_delay(rng, 0) == 0


def test_check_document_refuses_out_of_range_ids_and_codes(tok):
    doc = build_document("caption", tok, [image()], np.random.default_rng(0))
    check_document(doc, VOCAB)
    ids = doc.ids.clone()
    ids[-1] = VOCAB.audio_offset  # the first audio code id is not a main-stream id
    with pytest.raises(BadCodes, match="ids"):
        check_document(dataclasses.replace(doc, ids=ids), VOCAB)
    for level, bad in ((0, 16), (1, 16), (1, -3)):
        codes = doc.visual_codes.clone()
        codes[1, level] = bad
        with pytest.raises(BadCodes, match="visual"):
            check_document(dataclasses.replace(doc, visual_codes=codes), VOCAB)
    loud = speech()
    loud = SpeechItem(codes=loud.codes + torch.tensor([0, 8]), text=loud.text)  # level 1 has 8 codes
    with pytest.raises(BadCodes, match="audio"):
        build_document("asr", tok, [loud], np.random.default_rng(0))


def test_crop_keeps_the_head(tok):
    doc = build_document("t2i", tok, [image()], np.random.default_rng(0))
    head = doc.crop(7)
    assert len(head) == 7 and head.format == "t2i"
    for f in dataclasses.fields(Document):
        if f.name != "format":
            assert torch.equal(getattr(head, f.name), getattr(doc, f.name)[:7])
    assert len(doc.crop(10_000)) == len(doc)


def test_bad_input_is_refused(tok):
    rng = np.random.default_rng(0)
    with pytest.raises(BadArgument, match=r"unknown sample format 'ocr'.*caption"):
        build_document("ocr", tok, [image()], rng)
    with pytest.raises(BadArgument, match=r"1\.\.1 items, got 2"):
        build_document("caption", tok, [image(), image(1)], rng)
    with pytest.raises(BadArgument, match=r"2\.\.4 items, got 1"):
        build_document("intlv", tok, [speech()], rng)
    with pytest.raises(BadArgument, match="takes ImageItem"):
        build_document("caption", tok, [speech()], rng)
    with pytest.raises(BadArgument, match="not one string"):
        build_document("text", tok, "ab", rng)
    bare = ImageItem(codes=image().codes)
    for name in ("caption", "vqa", "t2i", "chat_vqa", "chat_caption", "chat_t2i"):
        with pytest.raises(BadArgument):
            build_document(name, tok, [bare], rng)
    for name in ("asr", "tts", "chat_asr", "chat_tts"):
        with pytest.raises(BadArgument, match="empty"):
            build_document(name, tok, [SpeechItem(codes=speech().codes)], rng)
    build_document("pure_audio", tok, [SpeechItem(codes=speech().codes)], rng)  # needs no text
    with pytest.raises(BadCodes):
        ImageItem(codes=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(BadCodes):
        SpeechItem(codes=torch.zeros(4, 2))  # float
    with pytest.raises(BadArgument):
        ImageItem(codes=image().codes, captions=("",))
    with pytest.raises(BadCodes):  # three levels for a two-level vocabulary
        build_document("caption", tok, [ImageItem(codes=torch.zeros(2, 2, 3, dtype=torch.long), captions=("a",))], rng)
