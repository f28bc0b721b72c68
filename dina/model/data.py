"""The native model's training data: the worlds' manifests tokenized once, then seeded mixtures.

Report Sec. 4.1.3 and Table 7 (what each stage reads), Table 8 (the audio formats'
proportions, which our `pretrain` mixture follows within its audio share). Tokenizers are
frozen in every stage (Sec. 4.1), so each image and clip is encoded once, before training,
and the codes are cached under the run directory.

- `load_corpus` reads ShapesWorld manifests (image, captions, VQA pairs, prompt) and
  SpeechWorld manifests (clip, transcript) from any number of directories. A row whose image or
  audio file is missing or unreadable is skipped and counted (`on_missing="skip"`) or stops
  the run before training starts (`"error"`); a corpus with no usable sample is an error.
- `DocumentSampler.batch(step)` draws documents for one step from (seed, stage, step) alone:
  a format by the mixture's weights, its items, its random delays. Documents are added until
  four drawn in a row would overflow the token budget; one longer than the whole budget is
  skipped and counted. The same step therefore always yields the same batch, which is what lets
  `--resume` repeat an uninterrupted run's loss curve exactly.

Shapes: h×w token grid, T audio frames, L levels.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from dina.errors import BadArgument, BadAudio, BadImage, BadInputFile
from dina.io.atomic import atomic_path, write_json
from dina.io.audio import SAMPLE_RATE, load_audio
from dina.io.images import load_image
from dina.io.manifest import read_manifest
from dina.sequence.document import Document
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

# Table 7, at the scale of the worlds: pre-align reads image-caption pairs (both directions)
# and the audio formats; pre-training adds interleaved image-text, VQA (our OCR: the signs)
# and pure text; SFT reads chat turns. Audio weights follow Table 8's proportions. `text` comes
# first: the report pre-aligns to a pretrained language model (LongCat-Flash-Lite), which the
# `tiny` world stands in for with a model trained on its own text.
STAGE_MIXTURES: dict[str, dict[str, float]] = {
    "text": {"text": 1.0},
    "prealign": {
        "caption": 0.25,
        "t2i": 0.25,
        "asr": 0.06,
        "tts": 0.22,
        "intlv": 0.1,
        "intlv_ta": 0.1,
        "pure_audio": 0.02,
    },
    "pretrain": {
        "text": 0.08,
        "caption": 0.1,
        "vqa": 0.1,
        "t2i": 0.14,
        "interleaved": 0.08,
        "asr": 0.06,
        "tts": 0.2,
        "intlv": 0.11,
        "intlv_ta": 0.11,
        "pure_audio": 0.02,
    },
    "sft": {"chat_vqa": 0.25, "chat_caption": 0.15, "chat_t2i": 0.2, "chat_asr": 0.2, "chat_tts": 0.2},
}
STAGES = tuple(STAGE_MIXTURES)


class VisionEncoder(Protocol):
    config: Any  # `.codebook_sizes`

    def encode(self, images: list[np.ndarray]) -> Any: ...  # `.codes`: one (h, w, L) grid per image


class AudioEncoder(Protocol):
    config: Any

    def encode(self, wave: np.ndarray, sr: int) -> Any: ...  # `.codes`: (T, L)


@dataclass(frozen=True, kw_only=True)
class Corpus:
    images: tuple[ImageItem, ...] = ()
    speech: tuple[SpeechItem, ...] = ()
    texts: tuple[str, ...] = ()
    skipped: dict[str, int] = field(default_factory=dict)

    def items(self, kind: str) -> Sequence[Any]:
        return {"image": self.images, "speech": self.speech, "text": self.texts}[kind]


def _manifest(directory: Path) -> Path:
    path = directory / "manifest.jsonl" if directory.is_dir() else directory
    if not path.is_file():
        raise BadInputFile(f"{directory}: no manifest.jsonl")
    return path


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]


def _encode_images(rows: list[dict], root: Path, vision: VisionEncoder, skip: Callable[[str, str], None]) -> list:
    grids: list[torch.Tensor | None] = []
    chunk: list[np.ndarray] = []
    slots: list[int] = []

    def flush() -> None:
        for slot, grid in zip(slots, vision.encode(chunk).codes, strict=True):
            grids[slot] = grid
        chunk.clear()
        slots.clear()

    for row in rows:
        grids.append(None)
        try:
            chunk.append(load_image(root / row["path"]))
            slots.append(len(grids) - 1)
        except (BadImage, BadInputFile) as e:
            skip("image", f"{root / row['path']}: {e}")
        if len(chunk) == 32:
            flush()
    if chunk:
        flush()
    return grids


def _encode_speech(rows: list[dict], root: Path, audio: AudioEncoder, skip: Callable[[str, str], None]) -> list:
    codes: list[torch.Tensor | None] = []
    for row in rows:
        try:
            codes.append(audio.encode(load_audio(root / row["path"]), SAMPLE_RATE).codes)
        except (BadAudio, BadInputFile) as e:
            skip("audio", f"{root / row['path']}: {e}")
            codes.append(None)
    return codes


def load_corpus(
    dirs: Iterable[str | Path],
    *,
    vision: VisionEncoder | None,
    audio: AudioEncoder | None,
    cache: Path | None = None,
    cache_key: str = "",
    reuse: Sequence[Path] = (),
    on_missing: str = "skip",
    log: Callable[[str], None] = print,
) -> Corpus:
    """Every usable row of the manifests in `dirs`, with its codes (module docstring).

    `cache_key` names the tokenizers; a cache entry (in `cache`, or in a `reuse` directory such
    as the `--init` run's) is used only for the same manifest bytes and key."""
    if on_missing not in ("skip", "error"):
        raise BadArgument(f"on_missing must be 'skip' or 'error', got {on_missing!r}")
    images: list[ImageItem] = []
    speech: list[SpeechItem] = []
    texts: list[str] = []
    skipped: Counter[str] = Counter()

    def skip(kind: str, why: str) -> None:
        if on_missing == "error":
            raise BadInputFile(f"unusable {kind}: {why}")
        skipped[f"missing_{kind}"] += 1

    for d in dirs:
        path = _manifest(Path(d))
        rows, root = read_manifest(path), path.parent
        is_image = [("width" in r and "height" in r) for r in rows]
        if not rows or (not all(is_image) and any(is_image)):
            raise BadInputFile(f"{path}: expected only ShapesWorld or only SpeechWorld rows, and at least one")
        kind = "image" if is_image[0] else "speech"
        for r in rows:
            if kind == "speech" and not ("text" in r and "path" in r):
                raise BadInputFile(f"{path}: a SpeechWorld row needs 'path' and 'text'")
            if kind == "image" and not ("path" in r and r.get("captions")):
                raise BadInputFile(f"{path}: a ShapesWorld row needs 'path' and 'captions'")
        encoder = vision if kind == "image" else audio
        if encoder is None:
            raise BadArgument(
                f"{path} holds {kind} rows: pass the {'vision' if kind == 'image' else 'audio'} tokenizer"
            )
        name = f"{kind}-{_digest(path.read_bytes(), cache_key.encode())}.safetensors"
        entry = cache / name if cache else None
        found = next((c / name for c in (cache, *reuse) if c is not None and (c / name).is_file()), None)
        if found is not None:
            stored = load_file(str(found))
            codes: list[torch.Tensor | None] = [stored.get(str(i)) for i in range(len(rows))]
            for r, c in zip(rows, codes, strict=True):
                if c is None:
                    skip(kind, f"{root / r['path']} could not be read when the codes were cached")
        else:
            encode = _encode_images if kind == "image" else _encode_speech
            log(f"[data] encoding {len(rows)} {kind} rows of {path}")
            codes = encode(rows, root, encoder, skip)  # type: ignore[arg-type]
        if entry is not None and found != entry:
            with atomic_path(entry) as tmp:
                save_file({str(i): c.contiguous() for i, c in enumerate(codes) if c is not None}, str(tmp))
        for r, c in zip(rows, codes, strict=True):
            if kind == "image":
                texts.extend([*r["captions"], r.get("prompt", "")])
                texts.extend(f"{q['question']} {q['answer']}" for q in r.get("qa", []))
            else:
                texts.append(r["text"])
            if c is None:
                continue
            if kind == "image":
                qa = tuple((q["question"], q["answer"]) for q in r.get("qa", []))
                images.append(ImageItem(codes=c, captions=tuple(r["captions"]), qa=qa, prompt=r.get("prompt", "")))
            else:
                speech.append(SpeechItem(codes=c, text=r["text"]))
    if not images and not speech:
        raise BadInputFile("no usable samples in the data directories")
    corpus = Corpus(
        images=tuple(images), speech=tuple(speech), texts=tuple(t for t in texts if t), skipped=dict(skipped)
    )
    if cache is not None:
        write_json(cache / "corpus.json", {"images": len(images), "speech": len(speech), "skipped": corpus.skipped})
    return corpus


class DocumentSampler:
    """Seeded batches of documents of a stage's mixture, packed up to `budget` tokens."""

    def __init__(
        self, corpus: Corpus, tok: TextTokenizer, mixture: dict[str, float], *, budget: int, seed: int, stage: str
    ) -> None:
        unknown = set(mixture) - set(FORMATS)
        if unknown:
            raise BadArgument(f"unknown formats {sorted(unknown)}; known: {', '.join(FORMATS)}")
        usable = {
            f: w for f, w in mixture.items() if w > 0 and len(corpus.items(FORMATS[f].kind)) >= FORMATS[f].n_items[0]
        }
        if not usable:
            raise BadInputFile(
                f"no format of the {stage} mixture has data: need {sorted({FORMATS[f].kind for f in mixture})}"
            )
        self.corpus, self.tok, self.budget = corpus, tok, budget
        self.formats = tuple(usable)
        self.p = np.array([usable[f] for f in self.formats]) / sum(usable.values())
        self.seed, self.stage = seed, STAGES.index(stage) if stage in STAGES else len(STAGES)
        self.skipped = 0

    def document(self, rng: np.random.Generator) -> Document:
        name = self.formats[int(rng.choice(len(self.formats), p=self.p))]
        spec = FORMATS[name]
        pool = self.corpus.items(spec.kind)
        lo, hi = spec.n_items
        n = int(rng.integers(lo, min(hi, len(pool)) + 1))
        picks = rng.choice(len(pool), size=n, replace=False)
        return build_document(name, self.tok, [pool[int(i)] for i in picks], rng)

    def batch(self, step: int) -> tuple[list[Document], int]:
        """The documents of `step` and how many drawn ones were longer than the budget."""
        rng = np.random.default_rng([self.seed, self.stage, step])
        docs: list[Document] = []
        used, too_long, misses = 0, 0, 0
        for _ in range(256):
            doc = self.document(rng)
            if len(doc) > self.budget:
                too_long += 1
            elif used + len(doc) > self.budget:
                misses += 1
                if misses == 4:
                    break
            else:
                docs.append(doc)
                used += len(doc)
        if not docs:
            raise BadInputFile(f"no document of the {self.formats} mixture fits the budget of {self.budget} tokens")
        return docs, too_long


def corpus_texts(corpus: Corpus) -> list[str]:
    """The text a BPE is trained on: captions, questions and answers, prompts, transcripts."""
    return [*corpus.texts, ASR_PROMPT, CAPTION_PROMPT, TTS_PROMPT, SYSTEM_PROMPT]
