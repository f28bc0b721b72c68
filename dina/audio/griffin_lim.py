"""Fallback vocoder: Whisper log-mel -> waveform by a non-negative mel inverse and Griffin-Lim.

Report Sec. 2.3 ends the audio de-tokenizer with a vocoder; the issue allows Griffin-Lim only as
the fallback of a trained neural vocoder, so this module is the reference point the neural
vocoder has to beat, and a vocoder that needs no training.

1. Undo the scaling: log10 power = mel · scale - offset, power = 10^that (`MelConfig`).
2. Mel power -> linear power per frame: min ||W p - m||² subject to p ≥ 0, W the Slaney filters
   (M, K). W has more columns than rows and, at 128 bins with n_fft 400, near-empty low filters,
   so its pseudo-inverse is near-singular and amplifies noise without bound; we solve the
   non-negative problem instead with multiplicative updates (Lee & Seung 2001)
   p ← p · (Wᵀm) / (WᵀW p), which keep p ≥ 0 and never divide by a vanishing singular value.
3. Phase: fast Griffin-Lim (Perraudin et al. 2013, momentum 0.99) from zero phase,
   STFT/iSTFT with the front end's window, hop and centering.

Every step is deterministic (zero initial phase), batched over frames, and runs in torch.

Shapes: M mel bins, K = n_fft // 2 + 1 linear bins, L frames, T samples.
"""

from __future__ import annotations

import torch

from dina.audio.mel import MelConfig, slaney_mel_filters
from dina.errors import BadArgument


def mel_to_linear_power(mel_ML: torch.Tensor, config: MelConfig, iters: int = 100, eps: float = 1e-12) -> torch.Tensor:
    """Scaled log-mel (M, L) -> non-negative linear power spectrogram (K, L)."""
    if mel_ML.ndim != 2 or mel_ML.shape[0] != config.n_mels:
        raise BadArgument(f"expected a ({config.n_mels}, L) log-mel, got {tuple(mel_ML.shape)}")
    filters_MK = slaney_mel_filters(config.sample_rate, config.n_fft, config.n_mels).double()
    power_ML = torch.pow(10.0, mel_ML.double() * config.scale - config.offset)
    numer_KL = filters_MK.T @ power_ML
    gram_KK = filters_MK.T @ filters_MK
    # Start from the transpose, each bin normalized by its filters' total weight; bins that no
    # filter covers stay zero.
    weight_K1 = filters_MK.sum(0)[:, None]
    p_KL = numer_KL / weight_K1.square().clamp_min(eps)
    for _ in range(iters):
        p_KL = p_KL * numer_KL / (gram_KK @ p_KL).clamp_min(eps)
    return p_KL.float()


def griffin_lim(magnitude_KL: torch.Tensor, config: MelConfig, iters: int = 60, momentum: float = 0.99) -> torch.Tensor:
    """Magnitude spectrogram (K, L) -> waveform (L · hop,), fast Griffin-Lim from zero phase."""
    if magnitude_KL.ndim != 2 or magnitude_KL.shape[0] != config.n_fft // 2 + 1:
        raise BadArgument(f"expected a ({config.n_fft // 2 + 1}, L) magnitude, got {tuple(magnitude_KL.shape)}")
    window = torch.hann_window(config.n_fft, periodic=True, dtype=torch.float32)
    length = magnitude_KL.shape[1] * config.hop_length
    # The front end drops the STFT's last frame; give iSTFT one more (silent) frame so the
    # frame count and the wave length agree.
    mag = torch.nn.functional.pad(magnitude_KL.float(), (0, 1))

    def stft(wave_T: torch.Tensor) -> torch.Tensor:
        return torch.stft(wave_T, config.n_fft, config.hop_length, window=window, center=True, return_complex=True)

    def istft(spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(spec, config.n_fft, config.hop_length, window=window, center=True, length=length)

    spec = mag.to(torch.complex64)
    previous = spec
    for _ in range(iters):
        rebuilt = stft(istft(spec))
        accelerated = rebuilt + momentum * (rebuilt - previous)
        previous = rebuilt
        spec = mag * torch.exp(1j * torch.angle(accelerated))
    return istft(spec)


def mel_to_wave(mel_ML: torch.Tensor, config: MelConfig | None = None, *, gl_iters: int = 60) -> torch.Tensor:
    """Scaled log-mel (M, L) -> 16 kHz waveform (L · hop,): non-negative mel inverse, then Griffin-Lim."""
    config = config or MelConfig()
    if not torch.isfinite(mel_ML).all():
        raise BadArgument("log-mel contains NaN or infinite values")
    power_KL = mel_to_linear_power(mel_ML, config)
    return griffin_lim(power_KL.sqrt(), config, iters=gl_iters)
