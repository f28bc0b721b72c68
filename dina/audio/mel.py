"""The audio tokenizer's front end: 16 kHz mono log-mel (report Sec. 2.3, 4.1.2).

The report feeds its audio encoder the Whisper front end (Radford et al. 2022, "Robust Speech
Recognition via Large-Scale Weak Supervision"); this module computes the same features with
torch, written from the published recipe:

1. any rate and channel count -> 16 kHz mono float32 (`dina.io.audio`: channel mean, soxr HQ);
2. STFT: periodic Hann window of n_fft = 400 samples (25 ms), hop 160 (10 ms), centered with
   reflect padding; the last frame is dropped, so a wave of T samples gives T // 160 frames;
3. power |X|² through a Slaney mel filterbank (Slaney scale, area-normalized triangles);
4. log10 of the power clamped at 1e-10, then clamped to (max - 8) (an 80 dB dynamic range
   below the loudest bin), then scaled: (x + 4) / 4.

The release uses 128 mel bins (`MelConfig.n_mels`); Whisper tiny uses 80. With n_mels = 80
the output matches faster-whisper's numpy front end (tests/audio/test_mel.py measures it).

Departures from Whisper:
- A clip shorter than n_fft // 2 + 1 samples (e.g. 10 ms = 160 samples) is zero-padded at
  the end to that length before the reflect padding, which needs more samples than it pads;
  the frames are then cut back to T // 160. Whisper refuses such clips. A clip shorter than one
  hop (160 samples) has no frame and is refused.
- In a batch, the dynamic-range maximum is taken per row (each row is one utterance); for a
  single utterance this is exactly Whisper's per-call maximum.
- `LogMel.forward(..., floor=x)` optionally replaces the per-utterance (max - 8) with a fixed
  floor (see `LogMel.forward`), for windowed and streaming use.

Shapes: B batch, T samples, C channels, K = n_fft // 2 + 1 frequency bins, M mel bins, F frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dina.errors import BadArgument, BadAudio, BadConfig
from dina.io.audio import SAMPLE_RATE, mono_at

# Slaney's mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above, with
# 27 mels per factor 6.4 in frequency, so that the two pieces meet at 1 kHz = 15 mels.
_LINEAR_HZ_PER_MEL = 200.0 / 3.0
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _LINEAR_HZ_PER_MEL
_LOG_MELS_PER_NEPER = 27.0 / math.log(6.4)


def hz_to_slaney_mel(hz: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz -> Slaney mel (float64)."""
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _BREAK_MEL + _LOG_MELS_PER_NEPER * np.log(np.maximum(hz, _BREAK_HZ) / _BREAK_HZ)
    return np.where(hz < _BREAK_HZ, hz / _LINEAR_HZ_PER_MEL, log_part)


def slaney_mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Slaney mel -> frequency in Hz (float64); the inverse of `hz_to_slaney_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    log_part = _BREAK_HZ * np.exp((np.maximum(mel, _BREAK_MEL) - _BREAK_MEL) / _LOG_MELS_PER_NEPER)
    return np.where(mel < _BREAK_MEL, mel * _LINEAR_HZ_PER_MEL, log_part)


def slaney_mel_filters(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> torch.Tensor:
    """Triangular mel filters over the rfft bins, shape (M, K) float32.

    Band edges are n_mels + 2 points equally spaced in Slaney mel between fmin and fmax
    (default Nyquist); filter m rises from edge m to edge m+1 and falls to edge m+2, and is
    scaled by 2 / (f_hi - f_lo) so that its area over Hz is 1 (Slaney normalization).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if sample_rate <= 0 or n_fft < 2 or n_mels < 1:
        raise BadArgument(f"need sample_rate > 0, n_fft >= 2, n_mels >= 1; got {sample_rate}, {n_fft}, {n_mels}")
    if not 0.0 <= fmin < fmax <= sample_rate / 2:
        raise BadArgument(f"need 0 <= fmin < fmax <= {sample_rate / 2} Hz, got fmin={fmin}, fmax={fmax}")
    edges_hz = slaney_mel_to_hz(np.linspace(hz_to_slaney_mel(fmin), hz_to_slaney_mel(fmax), n_mels + 2))
    bins_hz = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)  # (K,)
    lo, center, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]  # (M, 1) each
    rising = (bins_hz - lo) / (center - lo)
    falling = (hi - bins_hz) / (hi - center)
    tri_MK = np.clip(np.minimum(rising, falling), 0.0, None)
    return torch.from_numpy(tri_MK * (2.0 / (hi - lo))).to(torch.float32)


@dataclass(frozen=True, kw_only=True)
class MelConfig:
    """Whisper's log-mel recipe; every field at Whisper's value except n_mels (the release's 128).

    The log10 power is clamped below at `log_floor`, then at (max - `dynamic_range`) where max
    is the loudest value of the utterance (per call, as in Whisper), then mapped to
    (x + `offset`) / `scale`. Because the max is per utterance, the same audio cut into windows
    can come out differently in quiet frames, depending on how loud each window is; pass a fixed
    `floor` to `LogMel.forward` for windowed or streaming use.
    """

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 128
    log_floor: float = 1e-10
    dynamic_range: float = 8.0  # in log10 units of power: 80 dB
    offset: float = 4.0
    scale: float = 4.0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft < 2 or self.hop_length < 1 or self.n_mels < 1:
            raise BadConfig(f"bad mel sizes: {self}")
        if self.log_floor <= 0 or self.dynamic_range <= 0 or self.scale <= 0:
            raise BadConfig(f"log_floor, dynamic_range and scale must be positive: {self}")

    @property
    def frame_rate(self) -> float:
        """Mel frames per second (100 at Whisper's settings)."""
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames for a wave of `num_samples` samples: T // hop."""
        return num_samples // self.hop_length


class LogMel(torch.nn.Module):
    """16 kHz waves -> Whisper-scaled log-mel features, (B, T) or (T,) -> (B, M, F) float32."""

    window_N: torch.Tensor
    filters_MK: torch.Tensor

    def __init__(self, config: MelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MelConfig()
        window = torch.hann_window(config.n_fft, periodic=True, dtype=torch.float32)
        filters = slaney_mel_filters(config.sample_rate, config.n_fft, config.n_mels)
        # Derived from the config, so not saved in checkpoints.
        self.register_buffer("window_N", window, persistent=False)
        self.register_buffer("filters_MK", filters, persistent=False)

    def forward(self, wave: torch.Tensor, floor: float | None = None) -> torch.Tensor:
        """Log-mel of one wave (T,) or a batch of equal-length waves (B, T), at `config.sample_rate`.

        `floor`: None clamps each utterance at (its max - dynamic_range), as Whisper does, so a
        frame's value depends on the loudest frame of the call. A number is used instead as a
        fixed lower clamp in log10 power units (before scaling; e.g. -8.0 for a peak near 0),
        which makes each frame depend only on the samples under its window, so a wave cut into
        windows gives the same frames as the whole wave, except the frames whose 25 ms window
        crosses a cut (reflect padding there).
        """
        wave_BT = self._checked(wave)
        cfg = self.config
        num_frames = cfg.num_frames(wave_BT.shape[1])
        min_len = cfg.n_fft // 2 + 1  # reflect padding by n_fft // 2 needs more samples than that
        if wave_BT.shape[1] < min_len:
            wave_BT = torch.nn.functional.pad(wave_BT, (0, min_len - wave_BT.shape[1]))
        spec_BKF = torch.stft(
            wave_BT,
            cfg.n_fft,
            hop_length=cfg.hop_length,
            window=self.window_N,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power_BKF = spec_BKF[..., :num_frames].abs().square()  # drops the last frame, as Whisper
        log_BMF = torch.clamp(self.filters_MK @ power_BKF, min=cfg.log_floor).log10()
        if floor is None:
            low_B11 = log_BMF.amax(dim=(1, 2), keepdim=True) - cfg.dynamic_range
            log_BMF = torch.maximum(log_BMF, low_B11)
        else:
            log_BMF = log_BMF.clamp(min=floor)
        return (log_BMF + cfg.offset) / cfg.scale

    def _checked(self, wave: torch.Tensor) -> torch.Tensor:
        """(T,) or (B, T) real samples -> (B, T) float32 on the filters' device, or BadAudio."""
        if not isinstance(wave, torch.Tensor):
            raise BadAudio(f"LogMel expects a torch.Tensor wave, got {type(wave).__name__}")
        if wave.ndim not in (1, 2):
            raise BadAudio(f"LogMel expects a wave of shape (T,) or (B, T), got {tuple(wave.shape)}")
        if wave.is_complex() or wave.dtype == torch.bool:
            raise BadAudio(f"LogMel expects real samples, got dtype {wave.dtype}")
        if wave.numel() == 0:
            raise BadAudio(f"audio is empty (shape {tuple(wave.shape)})")
        wave_BT = wave.reshape(-1, wave.shape[-1]).to(self.filters_MK.device, torch.float32)
        if not torch.isfinite(wave_BT).all():
            raise BadAudio("audio contains NaN or infinite samples")
        if wave_BT.shape[1] < self.config.hop_length:
            raise BadAudio(
                f"audio of {wave_BT.shape[1]} samples is shorter than one {self.config.hop_length}-sample hop "
                f"({1000 * self.config.hop_length / self.config.sample_rate:g} ms) and has no mel frame"
            )
        return wave_BT


def log_mel(wave: np.ndarray | torch.Tensor, sr: int, config: MelConfig | None = None) -> torch.Tensor:
    """One wave (T,) or (T, C) at `sr` Hz -> (1, M, F) log-mel, converted to mono at `config.sample_rate` first.

    Samples must be floats (nominally in [-1, 1]); integer PCM is refused rather than guessed.
    """
    config = config or MelConfig()
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().numpy()
    wave = np.asarray(wave)
    if wave.ndim == 2 and wave.shape[1] > wave.shape[0]:
        raise BadAudio(f"log_mel expects (T, C) with samples first, got {wave.shape}: transpose a (C, T) wave")
    mono_T = mono_at(wave, sr, config.sample_rate)
    return LogMel(config)(torch.from_numpy(mono_T))  # building it costs ~0.1 ms: no cache needed
