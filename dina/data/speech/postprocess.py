"""Make engines comparable: trim leading and trailing silence, then normalize loudness.

Engines differ in how much silence they pad (espeak-ng almost none, festival ~0.2 s)
and in level (flite peaks near full scale, hibari ~-10 dBFS). A model that learns
from several engines should not be able to tell them apart by padding or level, so every
utterance is cut to its speech plus a fixed margin and scaled to the same RMS level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class PostprocessConfig:
    """How silence is found and how loud the result is.

    silence_db: a 10 ms frame is silence when its RMS is this far below the loudest frame.
    margin_s: silence kept before the first and after the last speech frame.
    target_rms_db: RMS level of the output, dBFS.
    peak_limit: the scaled wave is scaled down further if its peak would exceed this.
    """

    silence_db: float = 40.0
    margin_s: float = 0.1
    target_rms_db: float = -20.0
    peak_limit: float = 0.95


def _frame_rms(wave: np.ndarray, frame: int) -> np.ndarray:
    """(T,) -> (ceil(T / frame),) RMS per frame."""
    n_frames = -(-wave.size // frame)
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: wave.size] = wave
    return np.sqrt((padded.reshape(n_frames, frame) ** 2).mean(axis=1))


def trim_silence(wave: np.ndarray, sample_rate: int, config: PostprocessConfig = PostprocessConfig()) -> np.ndarray:
    """Cut leading and trailing silence, keeping `margin_s` around the speech; all-silent input is returned as is."""
    frame = max(1, sample_rate // 100)
    rms = _frame_rms(wave, frame)
    if rms.size == 0 or rms.max() <= 0:
        return wave
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-config.silence_db / 20))
    margin = round(config.margin_s * sample_rate)
    start = max(0, int(loud[0]) * frame - margin)
    stop = min(wave.size, (int(loud[-1]) + 1) * frame + margin)
    return wave[start:stop]


def normalize_loudness(wave: np.ndarray, config: PostprocessConfig = PostprocessConfig()) -> np.ndarray:
    """Scale to `target_rms_db` dBFS RMS, then down if the peak would exceed `peak_limit`."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    if rms <= 0:
        return wave.astype(np.float32)
    gain = 10 ** (config.target_rms_db / 20) / rms
    peak = float(np.abs(wave).max()) * gain
    if peak > config.peak_limit:
        gain *= config.peak_limit / peak
    return (wave * gain).astype(np.float32)


def postprocess(wave: np.ndarray, sample_rate: int, config: PostprocessConfig = PostprocessConfig()) -> np.ndarray:
    """Trim, then normalize (so silence does not dilute the RMS)."""
    return normalize_loudness(trim_silence(wave, sample_rate, config), config)
