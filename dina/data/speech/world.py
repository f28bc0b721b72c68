"""SpeechWorld: spoken sentences with exact transcripts, from several offline TTS engines.

`generate(out_dir, n, seed)` draws n (sentence, voice) pairs from one seeded generator,
synthesizes each distinct pair once (two worker threads; cached across runs), brings
the audio to 16 kHz mono float32, trims silence, normalizes loudness, and writes

    out_dir/wavs/000000.wav ...   16-bit PCM, 16 kHz mono
    out_dir/manifest.jsonl        {"path", "text", "voice", "engine", "seconds"} per line

The engine is drawn uniformly first and the voice within it second, so an engine with
many voices (espeak-ng) does not crowd out one with few (hibari); per-engine WER is
then measured on similar numbers of utterances. Same seed and same installed voices
give the same manifest and the same WAV bytes.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dina.data.speech.cache import SynthCache, default_cache_dir
from dina.data.speech.engines import ENGINES, Voice, select_voices
from dina.data.speech.postprocess import postprocess
from dina.data.speech.sentences import sample_sentence
from dina.errors import BadArgument, BadInputFile
from dina.io.atomic import ensure_dir, write_jsonl
from dina.io.audio import SAMPLE_RATE, check_wave, resample, save_wav

WORKERS = 2


@dataclass(frozen=True, kw_only=True)
class SpeechWorld:
    """What `generate_world` wrote and how it went."""

    manifest: Path
    n: int
    seconds_audio: float
    synthesized: int  # distinct utterances the engines were called for
    cached: int  # distinct utterances read from the cache
    wall_seconds: float
    voices: tuple[str, ...]
    warnings: tuple[str, ...]


def plan_utterances(n: int, seed: int, voices: tuple[Voice, ...]) -> list[tuple[str, Voice]]:
    """n (sentence, voice) pairs: engine uniform, then voice uniform within it, then a sentence."""
    rng = np.random.default_rng(seed)
    by_engine: dict[str, list[Voice]] = {}
    for voice in voices:
        by_engine.setdefault(voice.engine, []).append(voice)
    engines = sorted(by_engine)
    plan = []
    for _ in range(n):
        engine_voices = by_engine[engines[int(rng.integers(len(engines)))]]
        voice = engine_voices[int(rng.integers(len(engine_voices)))]
        plan.append((sample_sentence(rng), voice))
    return plan


def synthesize(voice: Voice, text: str) -> np.ndarray:
    """One utterance, ready to save: (T,) float32 at 16 kHz, trimmed and loudness-normalized."""
    raw = ENGINES[voice.engine].synthesize(voice.name, text)
    wave = check_wave(raw.wave, where=f"{voice.id} output for {text!r}")
    wave = resample(wave, raw.sample_rate, SAMPLE_RATE)
    return check_wave(postprocess(wave, SAMPLE_RATE), where=f"{voice.id} output for {text!r}")


def _synthesize_all(pairs: list[tuple[str, Voice]], cache: SynthCache) -> tuple[dict[str, np.ndarray], int]:
    """Waves for the distinct (text, voice) pairs, keyed by cache key; also how many were synthesized."""
    jobs = {}
    for text, voice in pairs:
        version = ENGINES[voice.engine].version()
        jobs[cache.key(engine=voice.engine, voice=voice.name, text=text, engine_version=version)] = (text, voice)
    waves = {key: wave for key in jobs if (wave := cache.get(key)) is not None}
    missing = [key for key in jobs if key not in waves]

    def work(key: str) -> tuple[str, np.ndarray]:
        text, voice = jobs[key]
        wave = synthesize(voice, text)
        cache.put(key, wave)
        return key, wave

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        waves.update(pool.map(work, missing))
    return waves, len(missing)


def _check_args(out_dir: str | os.PathLike, n: int, seed: int) -> Path:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise BadArgument(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise BadArgument(f"seed must be an integer in [0, 2**32), got {seed!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputFile(f"output directory {out_dir} is a file")
    return ensure_dir(out_dir)


def _remove_stale_wavs(wav_dir: Path, n: int) -> None:
    """Drop WAVs left by an earlier, larger run so the folder matches the manifest."""
    for path in wav_dir.glob("*.wav"):
        if path.stem.isdigit() and int(path.stem) >= n:
            path.unlink()


def generate_world(
    out_dir: str | os.PathLike,
    n: int,
    seed: int,
    voices: list[str] | tuple[str, ...] | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> SpeechWorld:
    """Write n utterances and their manifest under out_dir; see the module docstring."""
    start = time.perf_counter()
    out_dir = _check_args(out_dir, n, seed)
    selection = select_voices(voices)
    plan = plan_utterances(n, seed, selection.voices)
    cache = SynthCache(cache_dir if cache_dir is not None else default_cache_dir(out_dir))
    waves, synthesized = _synthesize_all(plan, cache)

    wav_dir = ensure_dir(out_dir / "wavs")
    rows, seconds = [], 0.0
    for i, (text, voice) in enumerate(plan):
        version = ENGINES[voice.engine].version()
        wave = waves[cache.key(engine=voice.engine, voice=voice.name, text=text, engine_version=version)]
        rel = f"wavs/{i:06d}.wav"
        save_wav(out_dir / rel, wave)
        duration = round(wave.size / SAMPLE_RATE, 4)
        seconds += duration
        rows.append({"path": rel, "text": text, "voice": voice.id, "engine": voice.engine, "seconds": duration})
    _remove_stale_wavs(wav_dir, n)
    manifest = out_dir / "manifest.jsonl"
    write_jsonl(manifest, rows)
    return SpeechWorld(
        manifest=manifest,
        n=n,
        seconds_audio=seconds,
        synthesized=synthesized,
        cached=len(waves) - synthesized,
        wall_seconds=time.perf_counter() - start,
        voices=tuple(v.id for v in selection.voices),
        warnings=selection.warnings,
    )


def generate(
    out_dir: str | os.PathLike,
    n: int,
    seed: int,
    voices: list[str] | tuple[str, ...] | None = None,
) -> Path:
    """Write SpeechWorld (n utterances, seeded) under out_dir; returns the manifest's path."""
    return generate_world(out_dir, n, seed, voices).manifest
