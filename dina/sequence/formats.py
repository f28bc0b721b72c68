"""Sample formats: images, speech and text turned into documents with their loss masks.

Report Table 7 (what each stage trains on), Sec. 2.5.3 (text-guided audio, a delay drawn per
span), Sec. 4.4.2 and Table 8 (the audio formats, and no loss on pure audio in ASR, INTLV and
INTLV-TA); `longcat-next-release.md` §2 (token layouts, chat template) and §8 (generated speech).
Each format is a function `(tok, items, rng) -> Document`; `FORMATS` names them and says which
items they take, `build_document` checks the items and calls one. `rng` makes every choice
(which caption, which QA pairs, the delays), so one seed gives one document.

Layouts (`[...]` = predicted; `img_und` / `img_gen` / `audio` / `textaudio` are the spans of
`DocumentBuilder`: image understanding, image generation, pure audio, text-guided audio):

- `text`:        [text_1 text_2 ...] [</s>]
- `caption`:     img_und [caption] [</s>]
- `vqa`:         img_und question [" answer"] [</s>]
- `t2i`:         prompt [img_gen] [</s>]
- `interleaved`: [caption_1] [img_gen_1] [caption_2] [img_gen_2] ... [</s>]
- `asr`:         <user> "Transcribe the audio." audio <assistant> [transcript] [</s>]
- `tts`:         [textaudio_1] [textaudio_2] ... [</s>]
- `intlv`:       audio_1 [text_2] audio_3 [text_4] ... </s>
- `intlv_ta`:    audio_1 [textaudio_2] audio_3 [textaudio_4] ... </s>
- `pure_audio`:  [audio_1] [audio_2] [</s>]
- chat (SFT, Table 7 stage 4): <system> "You are a helpful assistant." then per turn
  <user> {user} <assistant> [{reply}] [</s>]; only replies and their `</s>` are predicted.
  `chat_vqa` (1-3 QA turns about one image, shown in the first), `chat_caption`, `chat_t2i`
  (the reply is img_gen), `chat_asr`, `chat_tts` ("Say: {text}", the reply is textaudio).

`</s>` is `</longcat_s>`; it is predicted exactly when the span before it is, so `intlv` and
`intlv_ta` with an odd number of items end without loss (they end on pure audio). A document's
first position never has a label (`DocumentBuilder.build`).

Departures: Table 8 names the ASR prompt but not its text nor role tokens; here the release's
ASR layout (§2) carries a fixed instruction. The VQA answer is encoded with its leading space
(" answer"), as the BPE would split "question answer". The instructions and system prompt are
fixed English strings of ours; the paper does not give them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from dina.errors import BadArgument, BadCodes
from dina.sequence.document import IGNORE, Document, DocumentBuilder, check_document, sample_delay
from dina.text.bpe import TextTokenizer

SYSTEM, USER, ASSISTANT, END = "<longcat_system>", "<longcat_user>", "<longcat_assistant>", "</longcat_s>"
SYSTEM_PROMPT = "You are a helpful assistant."
ASR_PROMPT = "Transcribe the audio."
CAPTION_PROMPT = "Describe the image."
TTS_PROMPT = "Say: "
MAX_CHAT_QA = 3


@dataclass(frozen=True, kw_only=True)
class ImageItem:
    """An image as codes with the texts the image formats draw from (each may be empty)."""

    codes: torch.Tensor  # (h, w, Lv) int64
    captions: tuple[str, ...] = ()
    qa: tuple[tuple[str, str], ...] = ()  # (question, answer)
    prompt: str = ""  # text-to-image

    def __post_init__(self) -> None:
        if self.codes.ndim != 3 or self.codes.dtype != torch.int64:
            raise BadCodes(
                f"image codes must be an (h, w, Lv) int64 tensor, got {self.codes.dtype} {tuple(self.codes.shape)}"
            )
        if not all(self.captions) or not all(q and a for q, a in self.qa):
            raise BadArgument("captions, questions and answers must be non-empty")


@dataclass(frozen=True, kw_only=True)
class SpeechItem:
    """An utterance as codes with its transcript (empty when unknown: pure audio only)."""

    codes: torch.Tensor  # (T, La) int64
    text: str = ""

    def __post_init__(self) -> None:
        if self.codes.ndim != 2 or self.codes.dtype != torch.int64:
            raise BadCodes(
                f"audio codes must be a (T, La) int64 tensor, got {self.codes.dtype} {tuple(self.codes.shape)}"
            )


ItemT = TypeVar("ItemT")


def _take(name: str, items: Sequence[ItemT]) -> Sequence[ItemT]:
    """`items` if they are what format `name` takes, in a number it uses."""
    spec = FORMATS[name]
    if isinstance(items, str):
        raise BadArgument(f"{name} takes a sequence of items, not one string")
    lo, hi = spec.n_items
    if not lo <= len(items) <= hi:
        raise BadArgument(f"{name} takes {lo}..{hi} items, got {len(items)}")
    kind = _KINDS[spec.kind]
    if not all(isinstance(x, kind) for x in items):
        raise BadArgument(f"{name} takes {kind.__name__} items, got {sorted({type(x).__name__ for x in items})}")
    return items


def _pick(rng: np.random.Generator, options: Sequence[ItemT], what: str) -> ItemT:
    if not options:
        raise BadArgument(f"an image item without {what}")
    return options[int(rng.integers(len(options)))]


def _need(text: str, what: str) -> str:
    if not text:
        raise BadArgument(f"an item with an empty {what}")
    return text


def _close(b: DocumentBuilder) -> Document:
    """End with `</longcat_s>`, predicted where the span before it is."""
    r = b.rows
    loss = r["lm_labels"][-1] != IGNORE or any(v != IGNORE for v in r["visual_labels"][-1] + r["audio_labels"][-1])
    return b.special(END, loss=loss).build()


def _textaudio(b: DocumentBuilder, item: SpeechItem, rng: np.random.Generator) -> DocumentBuilder:
    ids = b.tok.encode(_need(item.text, "text"))
    return b.text_guided_audio(ids, item.codes, delay=sample_delay(rng, len(ids)))


# ---- pre-training formats -------------------------------------------------------------------
def text(tok: TextTokenizer, items: Sequence[str], rng: np.random.Generator) -> Document:
    body = " ".join(_need(s, "text") for s in _take("text", items))
    return _close(DocumentBuilder(tok, "text").text(body, loss=True))


def caption(tok: TextTokenizer, items: Sequence[ImageItem], rng: np.random.Generator) -> Document:
    (item,) = _take("caption", items)
    b = DocumentBuilder(tok, "caption").image_understanding(item.codes)
    return _close(b.text(_pick(rng, item.captions, "captions"), loss=True))


def vqa(tok: TextTokenizer, items: Sequence[ImageItem], rng: np.random.Generator) -> Document:
    (item,) = _take("vqa", items)
    question, answer = _pick(rng, item.qa, "QA pairs")
    b = DocumentBuilder(tok, "vqa").image_understanding(item.codes).text(question, loss=False)
    return _close(b.text(" " + answer, loss=True))


def t2i(tok: TextTokenizer, items: Sequence[ImageItem], rng: np.random.Generator) -> Document:
    (item,) = _take("t2i", items)
    b = DocumentBuilder(tok, "t2i").text(_need(item.prompt, "prompt"), loss=False)
    return _close(b.image_generation(item.codes, loss=True))


def interleaved(tok: TextTokenizer, items: Sequence[ImageItem], rng: np.random.Generator) -> Document:
    b = DocumentBuilder(tok, "interleaved")
    for item in _take("interleaved", items):
        b.text(_pick(rng, item.captions, "captions"), loss=True).image_generation(item.codes, loss=True)
    return _close(b)


def asr(tok: TextTokenizer, items: Sequence[SpeechItem], rng: np.random.Generator) -> Document:
    (item,) = _take("asr", items)
    b = DocumentBuilder(tok, "asr").special(USER, loss=False).text(ASR_PROMPT, loss=False)
    b.audio(item.codes, loss=False).special(ASSISTANT, loss=False)
    return _close(b.text(_need(item.text, "transcript"), loss=True))


def tts(tok: TextTokenizer, items: Sequence[SpeechItem], rng: np.random.Generator) -> Document:
    b = DocumentBuilder(tok, "tts")
    for item in _take("tts", items):
        _textaudio(b, item, rng)
    return _close(b)


def _interleave(
    name: str, tok: TextTokenizer, items: Sequence[SpeechItem], span: Callable[[DocumentBuilder, SpeechItem], object]
) -> Document:
    """Even items as pure audio without loss (Sec. 4.4.2), odd items through `span`."""
    b = DocumentBuilder(tok, name)
    for i, item in enumerate(_take(name, items)):
        if i % 2 == 0:
            b.audio(item.codes, loss=False)
        else:
            span(b, item)
    return _close(b)


def intlv(tok: TextTokenizer, items: Sequence[SpeechItem], rng: np.random.Generator) -> Document:
    return _interleave("intlv", tok, items, lambda b, item: b.text(_need(item.text, "text"), loss=True))


def intlv_ta(tok: TextTokenizer, items: Sequence[SpeechItem], rng: np.random.Generator) -> Document:
    return _interleave("intlv_ta", tok, items, lambda b, item: _textaudio(b, item, rng))


def pure_audio(tok: TextTokenizer, items: Sequence[SpeechItem], rng: np.random.Generator) -> Document:
    b = DocumentBuilder(tok, "pure_audio")
    for item in _take("pure_audio", items):
        b.audio(item.codes, loss=True)
    return _close(b)


# ---- chat formats (SFT) ---------------------------------------------------------------------
def _chat(tok: TextTokenizer, name: str) -> DocumentBuilder:
    return DocumentBuilder(tok, name).special(SYSTEM, loss=False).text(SYSTEM_PROMPT, loss=False)


def _reply(b: DocumentBuilder) -> DocumentBuilder:
    """Close the user turn; the assistant's content follows, with loss."""
    return b.special(ASSISTANT, loss=False)


def chat_vqa(tok: TextTokenizer, items: Sequence[ImageItem], rng: np.random.Generator) -> Document:
    (item,) = _take("chat_vqa", items)
    if not item.qa:
        raise BadArgument("an image item without QA pairs")
    n = int(rng.integers(1, min(MAX_CHAT_QA, len(item.qa)) + 1))
    b = _chat(tok, "chat_vqa")
    for turn, j in enumerate(rng.choice(len(item.qa), size=n, replace=False)):
        question, answer = item.qa[int(j)]
        b.special(USER, loss=False)
        if turn == 0:
            b.image_understanding(item.codes)
        _reply(b.text(question, loss=False)).text(answer, loss=True).special(END, loss=True)
    return b.build()


def chat_caption(tok: TextTokenizer, items: Sequence[ImageItem], rng: np.random.Generator) -> Document:
    (item,) = _take("chat_caption", items)
    b = _chat(tok, "chat_caption").special(USER, loss=False).image_understanding(item.codes)
    _reply(b.text(CAPTION_PROMPT, loss=False)).text(_pick(rng, item.captions, "captions"), loss=True)
    return b.special(END, loss=True).build()


def chat_t2i(tok: TextTokenizer, items: Sequence[ImageItem], rng: np.random.Generator) -> Document:
    (item,) = _take("chat_t2i", items)
    b = _chat(tok, "chat_t2i").special(USER, loss=False).text(_need(item.prompt, "prompt"), loss=False)
    _reply(b).image_generation(item.codes, loss=True)
    return b.special(END, loss=True).build()


def chat_asr(tok: TextTokenizer, items: Sequence[SpeechItem], rng: np.random.Generator) -> Document:
    (item,) = _take("chat_asr", items)
    b = _chat(tok, "chat_asr").special(USER, loss=False).text(ASR_PROMPT, loss=False)
    _reply(b.audio(item.codes, loss=False)).text(_need(item.text, "transcript"), loss=True)
    return b.special(END, loss=True).build()


def chat_tts(tok: TextTokenizer, items: Sequence[SpeechItem], rng: np.random.Generator) -> Document:
    (item,) = _take("chat_tts", items)
    b = _chat(tok, "chat_tts").special(USER, loss=False).text(TTS_PROMPT + _need(item.text, "text"), loss=False)
    _textaudio(_reply(b), item, rng)
    return b.special(END, loss=True).build()


# ---- registry -------------------------------------------------------------------------------
FormatFn = Callable[[TextTokenizer, Sequence[Any], np.random.Generator], Document]


@dataclass(frozen=True, kw_only=True)
class FormatSpec:
    fn: FormatFn
    kind: str  # the items it takes: "text" (str), "image" (ImageItem), "speech" (SpeechItem)
    n_items: tuple[int, int]  # (min, max) items it uses


_KINDS: dict[str, type] = {"text": str, "image": ImageItem, "speech": SpeechItem}

FORMATS: dict[str, FormatSpec] = {
    "text": FormatSpec(fn=text, kind="text", n_items=(1, 4)),
    "caption": FormatSpec(fn=caption, kind="image", n_items=(1, 1)),
    "vqa": FormatSpec(fn=vqa, kind="image", n_items=(1, 1)),
    "t2i": FormatSpec(fn=t2i, kind="image", n_items=(1, 1)),
    "interleaved": FormatSpec(fn=interleaved, kind="image", n_items=(2, 3)),
    "asr": FormatSpec(fn=asr, kind="speech", n_items=(1, 1)),
    "tts": FormatSpec(fn=tts, kind="speech", n_items=(1, 3)),
    "intlv": FormatSpec(fn=intlv, kind="speech", n_items=(2, 4)),
    "intlv_ta": FormatSpec(fn=intlv_ta, kind="speech", n_items=(2, 4)),
    "pure_audio": FormatSpec(fn=pure_audio, kind="speech", n_items=(1, 2)),
    "chat_vqa": FormatSpec(fn=chat_vqa, kind="image", n_items=(1, 1)),
    "chat_caption": FormatSpec(fn=chat_caption, kind="image", n_items=(1, 1)),
    "chat_t2i": FormatSpec(fn=chat_t2i, kind="image", n_items=(1, 1)),
    "chat_asr": FormatSpec(fn=chat_asr, kind="speech", n_items=(1, 1)),
    "chat_tts": FormatSpec(fn=chat_tts, kind="speech", n_items=(1, 1)),
}


def build_document(
    name: str,
    tok: TextTokenizer,
    items: Sequence[ImageItem] | Sequence[SpeechItem] | Sequence[str],
    rng: np.random.Generator,
) -> Document:
    """The document of format `name` from `items` (checked: kind, count, ids and codes in range)."""
    if name not in FORMATS:
        raise BadArgument(f"unknown sample format {name!r}; known: {', '.join(FORMATS)}")
    doc = FORMATS[name].fn(tok, items, rng)
    check_document(doc, tok.vocab)
    return doc
