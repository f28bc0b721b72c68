"""`dina eval model`: what a trained native model can do, judged on held-out ShapesWorld and
SpeechWorld rows (the report's benchmarks, Sec. 5, at the scale of the worlds, and the parallel
vs serial comparison of Sec. 3.2.4).

Each figure runs one pipeline of `dina.inference.pipelines` and scores its output with a judge
that shares nothing with the model:

- `caption_attribute_accuracy`: `see([image])` (the default question: describe the image). An
  object counts as described when the caption holds its color word immediately followed by its
  shape word, singular or plural ("a small red star", "two red stars"), as every ShapesWorld
  caption writes it. The score is the fraction of an image's objects described, averaged over
  images. Binding the two words is stricter than finding each anywhere (a caption that swaps
  two objects' colors scores 0 on both); `caption_attributes` also gives the unbound color and
  shape recalls. Multiplicity is not checked: "a red star" describes both of two red stars.
- `vqa_accuracy`: every QA pair of a row except the sign ones, `see([image], question)`, exact
  match after `normalize_answer` (lowercase, punctuation and articles dropped, number words as
  digits); also per question kind.
- `ocr_accuracy`: rows with a sign, `see([image], "What does the sign say?")` against the sign's
  word, both through `dina.data.shapes.ocr.normalize_text`.
- `geneval`, `geneval_overall`: `paint(prompt, h, w)` at the token grid the vision tokenizer gives
  the row's own image (`smart_resize`; height // 28 × width // 28 for ShapesWorld's sizes), each
  side capped at `max_side_tokens`. The ShapesWorld judge parses the picture and scores it
  against the row's scene per GenEval category (`score_image`'s two steps, `parse_image` and
  `score_scene`, so the examples can show what it found); regions are named, so a capped
  picture is judged the same way.
- `asr_wer`: `hear(wave)` against the transcript.
- `tts_judge_wer`: `speak(text)` in parallel mode (delay 0), transcribed by the Whisper tiny.en
  judge (`AsrJudge`), against the requested text. `parallel_vs_serial` adds `delay=None`
  (serial: the whole text first, then the speech). Speech that `max_new_tokens` cut before its
  first frame is empty and counts as every word deleted.
- `speaker_similarity`: `speak(text, reference=clip)`, the reference being the next other clip
  of the row's voice in its manifest; the cosine of Resemblyzer d-vectors of generated speech
  and reference (`dina.audio.evaluate.speaker_similarity`); null with a note when Resemblyzer is
  not installed. Two baselines frame it: the row's own clip against the same reference (a
  perfect clone) and the uncloned parallel speech against it.

All WERs are corpus WERs on `dina.data.speech.textnorm`'s normalized words.

Settings: text, including the text stream that guides speech, is greedy (`GREEDY`); images and
speech codes use the release's samplers (`IMAGE_DEFAULT`, `AUDIO_DEFAULT`), row i of a section
seeded `seed + i`, so a run repeats exactly. CFG defaults to 1 (none): fine-tuning never drops
the prompt, so the unconditional row that guidance needs is a context the model never saw;
`cfg_scale` turns it on anyway. Answers get 48 new tokens, captions 128, speech 200 (16 s at
12.5 frames/s, several times a held-out sentence's 2-4 s).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dina.audio.evaluate import speaker_similarity
from dina.data.shapes.judge import parse_image, score_scene
from dina.data.shapes.ocr import normalize_text as normalize_sign
from dina.data.shapes.scene import Scene
from dina.data.shapes.text import SIGN_WORD_QUESTION, plural
from dina.data.speech.asr import AsrConfig, AsrJudge
from dina.data.speech.textnorm import corpus_wer, normalize_text
from dina.errors import BadArgument, BadInputFile, BadManifest
from dina.inference.engine import GenerationConfig
from dina.inference.pipelines import Pipelines
from dina.inference.sampling import AUDIO_DEFAULT, GREEDY, IMAGE_DEFAULT
from dina.io.audio import SAMPLE_RATE, load_audio
from dina.io.images import load_image
from dina.io.manifest import read_manifest
from dina.vision.preprocess import PreprocessConfig

MANIFEST_NAME = "manifest.jsonl"
OCR_QUESTION = SIGN_WORD_QUESTION  # as ShapesWorld's QA asks it
N_EXAMPLES = 3  # per section, kept in the result to read next to the numbers
GENEVAL = ("object", "count", "color", "position")


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """How much each pipeline may generate, and the image guidance."""

    answer_tokens: int = 48
    caption_tokens: int = 128
    speech_tokens: int = 200
    max_side_tokens: int = 16  # 16 × 17 image steps; ShapesWorld's largest images are 16 × 16
    cfg_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("answer_tokens", "caption_tokens", "speech_tokens", "max_side_tokens"):
            if getattr(self, name) < 1:
                raise BadArgument(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.cfg_scale >= 0:
            raise BadArgument(f"cfg_scale must be >= 0, got {self.cfg_scale}")


# ---- held-out data ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ImageRow:
    path: str
    image: np.ndarray  # (H, W, 3) uint8
    scene: Scene
    qa: tuple[tuple[str, str, str], ...]  # (question, answer, kind)
    prompt: str


@dataclass(frozen=True, kw_only=True)
class SpeechRow:
    path: str
    wave: np.ndarray  # (T,) float32 at 16 kHz
    text: str
    reference: np.ndarray | None  # another clip of the same voice (cloning), None if the voice has one clip


@dataclass(frozen=True, kw_only=True)
class HeldOut:
    images: tuple[ImageRow, ...]
    speech: tuple[SpeechRow, ...]

    def sections(self) -> tuple[tuple[str, Sequence[Any]], ...]:
        return (("ShapesWorld", self.images), ("SpeechWorld", self.speech))


def _manifest_path(data: Path) -> Path:
    if not data.exists():
        raise BadInputFile(f"data {data} does not exist")
    path = data / MANIFEST_NAME if data.is_dir() else data
    if not path.is_file():
        raise BadInputFile(f"{data} holds no {MANIFEST_NAME}")
    return path


def _image_row(row: dict, index: int, manifest: Path) -> ImageRow:
    try:
        qa = tuple((str(q["question"]), str(q["answer"]), str(q["kind"])) for q in row["qa"])
        scene, prompt, path = Scene.from_dict(row["scene"]), str(row["prompt"]), str(row["path"])
    except (BadManifest, KeyError, TypeError, ValueError) as e:
        raise BadManifest(f"{manifest}, entry {index + 1}: not a ShapesWorld row ({e})") from e
    return ImageRow(path=path, image=load_image(manifest.parent / path), scene=scene, qa=qa, prompt=prompt)


def _speech_rows(rows: list[dict], limit: int | None, manifest: Path) -> list[SpeechRow]:
    """The first `limit` rows; each one's reference is the next other row of its voice (cyclically)."""
    by_voice: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        if "path" not in row or "text" not in row:
            raise BadManifest(f"{manifest}, entry {index + 1}: a SpeechWorld row needs 'path' and 'text'")
        if "voice" in row:
            by_voice[str(row["voice"])].append(index)
    out = []
    for i, row in enumerate(rows[:limit]):
        others = [j for j in by_voice.get(str(row.get("voice")), []) if j != i] if "voice" in row else []
        ref = next((j for j in others if j > i), others[0] if others else None)
        out.append(
            SpeechRow(
                path=str(row["path"]),
                wave=load_audio(manifest.parent / str(row["path"])),
                text=str(row["text"]),
                reference=None if ref is None else load_audio(manifest.parent / str(rows[ref]["path"])),
            )
        )
    return out


def load_held_out(data: Iterable[str | os.PathLike], limit: int | None = None) -> HeldOut:
    """The rows of ShapesWorld and SpeechWorld manifests (a directory's manifest.jsonl, or a
    .jsonl file), at most `limit` per manifest, with their images and 16 kHz waves loaded."""
    if limit is not None and limit < 1:
        raise BadArgument(f"limit must be >= 1, got {limit}")
    images: list[ImageRow] = []
    speech: list[SpeechRow] = []
    for d in data:
        manifest = _manifest_path(Path(d))
        rows = read_manifest(manifest, required=("path",))
        is_image = [("width" in r and "height" in r) for r in rows]
        if any(is_image) and not all(is_image):
            raise BadManifest(f"{manifest}: expected only ShapesWorld or only SpeechWorld rows")
        if all(is_image):
            images += [_image_row(r, i, manifest) for i, r in enumerate(rows[:limit])]
        else:
            speech += _speech_rows(rows, limit, manifest)
    if not images and not speech:
        raise BadArgument("no data: give at least one ShapesWorld or SpeechWorld manifest")
    return HeldOut(images=tuple(images), speech=tuple(speech))


# ---- scoring helpers -------------------------------------------------------------------------

_NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip
_DIGITS = {w: str(i) for i, w in enumerate(_NUMBER_WORDS)}
_ARTICLES = frozenset({"a", "an", "the"})


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def normalize_answer(text: str) -> str:
    """A short answer as it is compared: lowercase words, punctuation and articles dropped,
    number words up to twenty as digits ("The Two." -> "2", "top-left" -> "top left")."""
    return " ".join(_DIGITS.get(w, w) for w in _words(text) if w not in _ARTICLES)


def caption_attributes(caption: str, objects: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Fractions of the (color, shape) objects a caption describes: `pair` (the color word right
    before the shape word, singular or plural), `color` and `shape` (each word anywhere).
    An image without objects scores 1 (nothing to miss)."""
    if not objects:
        return {"pair": 1.0, "color": 1.0, "shape": 1.0}
    words = _words(caption)
    bigrams, vocab = set(itertools.pairwise(words)), set(words)
    hits = {"pair": 0, "color": 0, "shape": 0}
    for color, shape in objects:
        forms = {shape, plural(shape)}
        hits["pair"] += any((color, f) in bigrams for f in forms)
        hits["color"] += color in vocab
        hits["shape"] += bool(forms & vocab)
    return {k: v / len(objects) for k, v in hits.items()}


def paint_grid(height: int, width: int, pre: PreprocessConfig, max_side: int) -> tuple[int, int]:
    """(h, w) tokens: the grid the vision tokenizer gives a height × width image, each side capped."""
    h_px, w_px = pre.resized_size(height, width)
    return min(h_px // pre.token_px, max_side), min(w_px // pre.token_px, max_side)


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if len(values) else None


def _wer(pairs: Sequence[tuple[str, str]]) -> float | None:
    return round(corpus_wer(pairs), 4) if pairs else None


def _transcribe(judge: AsrJudge, wave: np.ndarray, seed: int) -> str:
    """The judge's normalized transcript; empty speech is heard as nothing.

    Whisper falls back to sampling (temperatures 0.2 ... 1) when its beam-search text looks
    degenerate, as it often does on unintelligible speech; seeding CTranslate2 first makes that
    draw, and so the WER, repeat from run to run."""
    if not wave.size:
        return ""
    import ctranslate2  # faster-whisper's engine: present whenever the judge loaded

    ctranslate2.set_random_seed(seed)
    return normalize_text(judge.transcribe_wave(wave))


def _bar(rows: Sequence[Any], desc: str, progress: bool) -> tqdm:
    return tqdm(rows, desc=desc, disable=not progress, leave=False)


# ---- sections --------------------------------------------------------------------------------


def _answer_gen(tokens: int) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=tokens, text=GREEDY)


def _understanding(pipes: Pipelines, rows: Sequence[ImageRow], cfg: EvalConfig, progress: bool) -> dict[str, Any]:
    """Captions, VQA and OCR: `see` on every image."""
    answer, caption = _answer_gen(cfg.answer_tokens), _answer_gen(cfg.caption_tokens)
    attrs: dict[str, list[float]] = defaultdict(list)
    vqa: dict[str, list[float]] = defaultdict(list)
    ocr: list[float] = []
    examples: dict[str, list[dict]] = defaultdict(list)
    for row in _bar(rows, "see", progress):
        said = pipes.see([row.image], gen=caption)
        for k, v in caption_attributes(said, [(o.color, o.shape) for o in row.scene.objects]).items():
            attrs[k].append(v)
        examples["caption"].append({"path": row.path, "caption": said, "pair_recall": attrs["pair"][-1]})
        for question, truth, kind in row.qa:
            if kind != "sign":
                got = pipes.see([row.image], question, gen=answer)
                vqa[kind].append(float(normalize_answer(got) == normalize_answer(truth)))
                examples["vqa"].append({"question": question, "answer": truth, "got": got})
        sign = row.scene.sign
        if sign is not None and sign.text:
            read = pipes.see([row.image], OCR_QUESTION, gen=answer)
            ocr.append(float(normalize_sign(read) == normalize_sign(sign.text)))
            examples["ocr"].append({"sign": sign.text, "got": read})
    return {
        "caption_attribute_accuracy": _mean(attrs["pair"]),
        "caption_attributes": {k: _mean(attrs[k]) for k in ("pair", "color", "shape")},
        "vqa_accuracy": _mean([s for scores in vqa.values() for s in scores]),
        "vqa_accuracy_by_kind": {kind: _mean(scores) for kind, scores in sorted(vqa.items())},
        "ocr_accuracy": _mean(ocr),
        "counts": {
            "images": len(rows),
            "caption_objects": sum(len(r.scene.objects) for r in rows),
            "vqa": sum(len(s) for s in vqa.values()),
            "ocr": len(ocr),
        },
        "examples": {k: v[:N_EXAMPLES] for k, v in examples.items()},
    }


def _generation(
    pipes: Pipelines, rows: Sequence[ImageRow], cfg: EvalConfig, seed: int, progress: bool
) -> dict[str, Any]:
    """GenEval: `paint` every prompt at its image's grid, judge the picture against the scene."""
    scores: dict[str, list[float]] = defaultdict(list)
    examples = []
    for i, row in enumerate(_bar(rows, "paint", progress)):
        h, w = paint_grid(row.scene.height, row.scene.width, pipes.vision.config.preprocess, cfg.max_side_tokens)
        gen = GenerationConfig(
            max_new_tokens=h * (w + 1) + 1, text=GREEDY, image=IMAGE_DEFAULT, cfg_scale=cfg.cfg_scale, seed=seed + i
        )
        parsed = parse_image(pipes.paint(row.prompt, h, w, gen).image, read_text=False)  # as `score_image`
        judged = score_scene(parsed, row.scene)
        for k, v in judged.items():
            scores[k].append(v)
        found = [o.name for o in parsed.objects]
        examples.append({"prompt": row.prompt, "grid": f"{h}x{w}", "found": found, "overall": judged["overall"]})
    return {
        "geneval": {k: _mean(scores[k]) for k in GENEVAL},
        "geneval_overall": _mean(scores["overall"]),
        "counts": {"geneval": len(rows)},
        "examples": {"paint": examples[:N_EXAMPLES]},
    }


def _asr(pipes: Pipelines, rows: Sequence[SpeechRow], cfg: EvalConfig, progress: bool) -> dict[str, Any]:
    gen = _answer_gen(cfg.answer_tokens)
    pairs = [
        (normalize_text(r.text), normalize_text(pipes.hear(r.wave, SAMPLE_RATE, gen)))
        for r in _bar(rows, "hear", progress)
    ]
    return {
        "asr_wer": _wer(pairs),
        "counts": {"asr": len(pairs), "asr_words": sum(len(ref.split()) for ref, _ in pairs)},
        "examples": {"asr": [{"reference": r, "hypothesis": h} for r, h in pairs[:N_EXAMPLES]]},
    }


def _speech_gen(cfg: EvalConfig, delay: int | None, seed: int) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=cfg.speech_tokens, text=GREEDY, audio=AUDIO_DEFAULT, delay=delay, seed=seed)


def _tts(
    pipes: Pipelines, rows: Sequence[SpeechRow], judge: AsrJudge, cfg: EvalConfig, seed: int, progress: bool
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Parallel (delay 0) and serial speech of every text, judged; also the parallel waves."""
    modes: dict[str, dict[str, Any]] = {}
    waves: list[np.ndarray] = []
    for name, delay in (("parallel", 0), ("serial", None)):
        judged, stream, empty, samples = [], [], 0, 0
        for i, row in enumerate(_bar(rows, f"speak ({name})", progress)):
            speech = pipes.speak(row.text, _speech_gen(cfg, delay, seed + i))
            ref = normalize_text(row.text)
            judged.append((ref, _transcribe(judge, speech.wave, seed + i)))
            stream.append((ref, normalize_text(speech.text)))
            empty += speech.wave.size == 0
            samples += speech.wave.size
            if delay == 0:
                waves.append(speech.wave)
        modes[name] = {
            "wer": _wer(judged),
            "text_stream_wer": _wer(stream),
            "empty": empty,
            "audio_seconds": round(samples / SAMPLE_RATE / max(len(rows), 1), 3),
            "examples": [{"reference": r, "hypothesis": h} for r, h in judged[:N_EXAMPLES]],
        }
    flat = {f"{m}_{k}": v for m, figures in modes.items() for k, v in figures.items() if k != "examples"}
    return {
        "tts_judge_wer": modes["parallel"]["wer"],
        "parallel_vs_serial": flat,
        "counts": {"tts": len(rows), "tts_words": sum(len(normalize_text(r.text).split()) for r in rows)},
        "examples": {f"tts_{m}": figures["examples"] for m, figures in modes.items()},
    }, waves


def _cloning(
    pipes: Pipelines,
    rows: Sequence[SpeechRow],
    uncloned: Sequence[np.ndarray],
    judge: AsrJudge,
    cfg: EvalConfig,
    seed: int,
    progress: bool,
) -> dict[str, Any]:
    """Voice cloning: speaker similarity to the reference clip, and the judge's WER."""
    empty = {"speaker_similarity": None, "speaker_similarity_baselines": None, "clone_judge_wer": None}
    if importlib.util.find_spec("resemblyzer") is None:
        return {**empty, "counts": {"clone": 0}, "notes": ["speaker_similarity: resemblyzer is not installed"]}
    picked = [(i, r) for i, r in enumerate(rows) if r.reference is not None]
    refs = [r.reference for _, r in picked if r.reference is not None]
    waves, pairs = [], []
    for i, row in _bar(picked, "speak (clone)", progress):
        speech = pipes.speak(row.text, _speech_gen(cfg, 0, seed + i), reference=(row.reference, SAMPLE_RATE))
        waves.append(speech.wave)
        pairs.append((normalize_text(row.text), _transcribe(judge, speech.wave, seed + i)))
    sims, note = speaker_similarity(refs, waves) if picked else ([], "speaker_similarity: no voice has two clips")
    if note is not None:
        return {**empty, "clone_judge_wer": _wer(pairs), "counts": {"clone": len(picked)}, "notes": [note]}
    real, _ = speaker_similarity(refs, [r.wave for _, r in picked])
    plain, _ = speaker_similarity(refs, [uncloned[i] for i, _ in picked])
    return {
        "speaker_similarity": _mean(sims),
        "speaker_similarity_baselines": {"same_voice_real_clip": _mean(real), "uncloned_speech": _mean(plain)},
        "clone_judge_wer": _wer(pairs),
        "counts": {"clone": len(picked)},
        "notes": [],
    }


# ---- the whole evaluation --------------------------------------------------------------------


def _settings(cfg: EvalConfig, seed: int, limit: int | None, threads: int) -> dict[str, Any]:
    return {
        "seed": seed,
        "limit": limit,
        "threads": threads,
        "text": dataclasses.asdict(GREEDY),
        "image": dataclasses.asdict(IMAGE_DEFAULT),
        "audio": dataclasses.asdict(AUDIO_DEFAULT),
        **dataclasses.asdict(cfg),
        "tts_delay": 0,
        "serial_delay": None,
    }


def _empty_figures() -> dict[str, Any]:
    """Every figure, null: a section without data leaves its own figures so."""
    return {
        "caption_attribute_accuracy": None,
        "caption_attributes": dict.fromkeys(("pair", "color", "shape")),
        "vqa_accuracy": None,
        "vqa_accuracy_by_kind": {},
        "ocr_accuracy": None,
        "geneval": dict.fromkeys(GENEVAL),
        "geneval_overall": None,
        "asr_wer": None,
        "tts_judge_wer": None,
        "parallel_vs_serial": {"parallel_wer": None, "serial_wer": None},
        "speaker_similarity": None,
        "speaker_similarity_baselines": None,
        "clone_judge_wer": None,
    }


def evaluate_model(
    model_dir: str | os.PathLike,
    data_dirs: Iterable[str | os.PathLike],
    *,
    limit: int | None = None,
    seed: int = 0,
    threads: int = 2,
    config: EvalConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Every figure of the module docstring on the held-out rows of `data_dirs` (at most `limit`
    per manifest), with counts, seconds per section and the settings used, on `threads` threads
    (restored afterwards)."""
    if threads < 1:
        raise BadArgument(f"threads must be >= 1, got {threads}")
    cfg = config or EvalConfig()
    held = load_held_out(data_dirs, limit)
    pipes = Pipelines.load(model_dir)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            sections = _sections(pipes, held, cfg, seed, threads, progress)
    finally:
        torch.set_num_threads(previous)
    result: dict[str, Any] = {"model": str(model_dir), **_empty_figures()}
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    notes: list[str] = [f"no {kind} data: its figures are null" for kind, rows in held.sections() if not rows]
    examples: dict[str, Any] = {}
    for name, (figures, took) in sections.items():
        counts |= figures.pop("counts")
        examples |= figures.pop("examples", {})
        notes += figures.pop("notes", [])
        result |= figures
        seconds[name] = round(took, 1)
    settings = _settings(cfg, seed, limit, threads)
    return result | {"counts": counts, "seconds": seconds, "settings": settings, "notes": notes, "examples": examples}


def _timed(run: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = run()
    return value, time.perf_counter() - start


def _sections(
    pipes: Pipelines, held: HeldOut, cfg: EvalConfig, seed: int, threads: int, progress: bool
) -> dict[str, tuple[dict[str, Any], float]]:
    """Each section's figures and its wall-clock seconds."""
    out: dict[str, tuple[dict[str, Any], float]] = {}
    if held.images:
        out["understanding"] = _timed(lambda: _understanding(pipes, held.images, cfg, progress))
        out["generation"] = _timed(lambda: _generation(pipes, held.images, cfg, seed, progress))
    if held.speech:
        judge = AsrJudge(AsrConfig(cpu_threads=threads))
        out["asr"] = _timed(lambda: _asr(pipes, held.speech, cfg, progress))
        (tts, uncloned), took = _timed(lambda: _tts(pipes, held.speech, judge, cfg, seed, progress))
        out["tts"] = (tts, took)
        out["cloning"] = _timed(lambda: _cloning(pipes, held.speech, uncloned, judge, cfg, seed, progress))
    return out
