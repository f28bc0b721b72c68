"""Loading user audio: any rate and channel count in, 16 kHz mono float32 out.

Accepted and converted: stereo and multi-channel (averaged), integer or float WAV/FLAC/OGG
at any sample rate (resampled with soxr's high-quality filter). Refused with `BadAudio`:
missing, empty or corrupt files, and NaN or infinite samples.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from dina.errors import BadAudio, BadInputFile
from dina.io.atomic import atomic_path

SAMPLE_RATE = 16_000


def resample(wave: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float waveform; identity when the rates match."""
    wave = np.asarray(wave, dtype=np.float32)
    if sr_in == sr_out:
        return wave
    if sr_in <= 0:
        raise BadAudio(f"sample rate must be positive, got {sr_in}")
    return soxr.resample(wave, sr_in, sr_out, quality="HQ").astype(np.float32)


def to_mono(wave: np.ndarray) -> np.ndarray:
    """(T,) or (T, C) -> (T,) float32, averaging channels."""
    wave = np.asarray(wave, dtype=np.float32)
    return wave.mean(axis=1) if wave.ndim == 2 else wave


def check_wave(wave: np.ndarray, where: str = "audio") -> np.ndarray:
    """Refuse empty audio and NaN/inf samples; returns the wave unchanged."""
    if wave.size == 0:
        raise BadAudio(f"{where} is empty (0 samples)")
    if not np.isfinite(wave).all():
        raise BadAudio(f"{where} contains NaN or infinite samples")
    return wave


def mono_at(wave: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE, where: str = "audio") -> np.ndarray:
    """(T,) or (T, C) float samples at `sr_in` -> checked mono float32 (T',) at `sr_out`.

    Refused with `BadAudio`: other shapes, integer samples (scale PCM first), empty audio,
    NaN or infinite samples, a non-positive rate."""
    wave = np.asarray(wave)
    if wave.ndim not in (1, 2):
        raise BadAudio(f"{where}: expected a wave of shape (T,) or (T, C), got {wave.shape}")
    if not np.issubdtype(wave.dtype, np.floating):
        raise BadAudio(f"{where}: expected float samples in [-1, 1], got dtype {wave.dtype} (scale integer PCM first)")
    mono = check_wave(to_mono(wave), where)
    return check_wave(resample(mono, sr_in, sr_out), where)


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at `sr` Hz, shape (T,)."""
    path = Path(path)
    if not path.exists():
        raise BadInputFile(f"audio {path} does not exist")
    if not path.is_file():
        raise BadInputFile(f"audio {path} is not a file")
    try:
        data, sr_in = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise BadAudio(f"audio {path} is corrupt or in an unsupported format: {e}") from e
    return mono_at(data, sr_in, sr, where=f"audio {path}")


def save_wav(path: str | os.PathLike, wave: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write mono float audio as 16-bit PCM WAV, atomically."""
    wave = check_wave(np.asarray(wave, dtype=np.float32), where=f"audio for {path}")
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(str(tmp), np.clip(wave, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
