"""`dina bench audio`: the audio tokenizer's speed against its goals and a peer, in one run.

Report Sec. 2.3 (the 12.5 Hz tokenizer and its de-tokenizer) and the LongCat-Flash-Omni report
§2.2 / §6.2 (streaming speech output); the goals are the audio issue's, for the `tiny` preset:

1. encode real-time factor (audio seconds per compute second) on long clips: goal >= 100×;
2. decode real-time factor (codes -> mel decoder [-> refiner, as the tokenizer's config says] ->
   vocoder -> wave): goal >= 10×; with and without the refiner reported too;
3. first-chunk latency of streaming decode (`dina.audio.evaluate.first_chunk_latency_ms`: the
   first 4 tokens, 320 ms of speech, in; first samples out): goal <= 300 ms;
4. RVQ encode throughput against `vector-quantize-pytorch` at the release's audio codebook
   sizes (`dina.bench.rvq`, setting "audio"): ratio ours / peer, goal >= 2 as for vision.

Without `tokenizer` the weights are untrained (seeded): speed does not depend on them. The input
is a seeded speech-like signal (a gliding harmonic voice with syllable-rate envelope and noise).
Timings: `time.perf_counter`, one warm-up run, then the median of `repeats`; numbers are measured
on the machine that runs the command, on `threads` torch threads; nothing is hard-coded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dina.audio.config import audio_tiny
from dina.audio.evaluate import FIRST_CHUNK_TOKENS, first_chunk_latency_ms
from dina.audio.tokenizer import SAMPLE_RATE, AudioTokenizer
from dina.bench import goal, median_seconds
from dina.bench.rvq import SETTINGS, bench_rvq

ENCODE_RTF_GOAL = 100.0
DECODE_RTF_GOAL = 10.0
FIRST_CHUNK_MS_GOAL = 300.0
RVQ_RATIO_GOAL = 2.0


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """(T,) float32 at 16 kHz: 12 harmonics of an f0 gliding in 90-220 Hz, a 4 Hz syllable envelope, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 155 + 65 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 13))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None)
    wave = 0.1 * envelope * voice + 0.003 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


@torch.no_grad()
def bench_clip(model: AudioTokenizer, seconds: float, repeats: int) -> dict[str, Any]:
    """Encode and decode times of one clip as × real time: decode as configured (`decode_rtf`, the
    goal's), and with and without the mel refiner."""
    wave = speechlike(seconds)
    codes = model.encode(wave, SAMPLE_RATE)
    encode_s = median_seconds(lambda: model.encode(wave, SAMPLE_RATE), repeats)
    decode_s = median_seconds(lambda: model.decode(codes), repeats)
    refined_s = median_seconds(lambda: model.decode(codes, refine=True), repeats)
    plain_s = median_seconds(lambda: model.decode(codes, refine=False), repeats)
    return {
        "audio_seconds": seconds,
        "tokens": int(codes.codes.shape[0]),
        "encode_seconds": round(encode_s, 4),
        "encode_rtf": round(seconds / encode_s, 2),
        "decode_seconds": round(decode_s, 4),
        "decode_rtf": round(seconds / decode_s, 2),
        "decode_refine_rtf": round(seconds / refined_s, 2),
        "decode_no_refine_rtf": round(seconds / plain_s, 2),
    }


def bench_audio(
    *,
    seconds: Sequence[float] = (30.0, 10.0),
    tokenizer: str | Path | None = None,
    threads: int = 1,
    repeats: int = 3,
    rvq: tuple[int, tuple[int, ...], int] = SETTINGS["audio"],
) -> dict[str, Any]:
    """Every figure of `dina bench audio`; `rvq` is (dim, codebook sizes, vectors) of the peer comparison."""
    torch.set_num_threads(threads)
    if tokenizer is None:
        torch.manual_seed(0)
        model, name = AudioTokenizer(audio_tiny()), "tiny (untrained weights)"
    else:
        model, name = AudioTokenizer.from_pretrained(tokenizer), str(tokenizer)
    model.eval()
    clips = [bench_clip(model, s, repeats) for s in seconds]
    longest = max(seconds)
    latency = first_chunk_latency_ms(model, model.encode(speechlike(longest), SAMPLE_RATE), repeats=repeats)
    peer = bench_rvq(*rvq, repeats=repeats)
    ratio = peer["ratio_encode_over_peer"]
    assert isinstance(ratio, float)
    return {
        "tokenizer": name,
        "refine_on_decode": model.config.refine_on_decode,
        "vocoder": model.config.wave_from_mel,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "clips": clips,
        "first_chunk_tokens": FIRST_CHUNK_TOKENS,
        "first_chunk_latency_ms": latency,
        "rvq_vs_vector_quantize_pytorch": peer,
        "goals": {
            "encode_rtf": goal(min(c["encode_rtf"] for c in clips), ENCODE_RTF_GOAL, higher_is_better=True),
            "decode_rtf": goal(min(c["decode_rtf"] for c in clips), DECODE_RTF_GOAL, higher_is_better=True),
            "first_chunk_latency_ms": goal(latency, FIRST_CHUNK_MS_GOAL, higher_is_better=False),
            "rvq_encode_over_peer": goal(ratio, RVQ_RATIO_GOAL, higher_is_better=True),
        },
    }
