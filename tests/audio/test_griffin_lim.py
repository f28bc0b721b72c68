import math

import pytest
import torch

from dina.audio.griffin_lim import griffin_lim, mel_to_linear_power, mel_to_wave
from dina.audio.mel import LogMel, MelConfig, slaney_mel_filters
from dina.errors import BadArgument

SR = 16_000


def voiced(seconds: float = 1.0) -> torch.Tensor:
    """A speech-like wave: 19 harmonics of a 140 ± 30 Hz vibrato, amplitude-modulated at 2 Hz."""
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    phase = 2 * math.pi * torch.cumsum(140 + 30 * torch.sin(2 * math.pi * 3 * t), 0) / SR
    wave = sum(torch.sin(k * phase) / k for k in range(1, 20)) * 0.1 * (0.6 + 0.4 * torch.sin(2 * math.pi * 2 * t))
    return wave.float()


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_survives_inversion(n_mels: int) -> None:
    cfg = MelConfig(n_mels=n_mels)
    front = LogMel(cfg)
    mel = front(voiced())[0]
    wave = mel_to_wave(mel, cfg)
    assert wave.shape == (mel.shape[1] * cfg.hop_length,)
    errors = [float((front(mel_to_wave(mel, cfg, gl_iters=n))[0] - mel).abs().mean()) for n in (0, 10, 60)]
    assert errors[0] > errors[1] > errors[2]  # the phase iterations are what recover the spectrum
    assert errors[2] < 0.05  # measured 0.013 (80 bins) and 0.017 (128) in scaled log-mel units


def test_the_mel_inverse_is_non_negative_where_the_pseudo_inverse_explodes() -> None:
    cfg = MelConfig(n_mels=80)
    filters = slaney_mel_filters(SR, cfg.n_fft, cfg.n_mels).double()
    assert torch.linalg.pinv(filters).abs().max() > 1e5  # near-singular: why a plain inverse blows up
    mel = LogMel(cfg)(voiced())[0]
    power = mel_to_linear_power(mel, cfg).double()
    assert torch.isfinite(power).all() and (power >= 0).all()
    target = torch.pow(10.0, mel.double() * cfg.scale - cfg.offset)
    assert (filters @ power - target).norm() / target.norm() < 1e-2


def test_griffin_lim_recovers_a_known_magnitude() -> None:
    cfg = MelConfig()
    wave = voiced(0.5)
    window = torch.hann_window(cfg.n_fft, periodic=True)
    mag = torch.stft(wave, cfg.n_fft, cfg.hop_length, window=window, return_complex=True).abs()[:, :-1]
    rebuilt = griffin_lim(mag, cfg, iters=60)
    mag2 = torch.stft(rebuilt, cfg.n_fft, cfg.hop_length, window=window, return_complex=True).abs()[:, :-1]
    assert (mag2 - mag).norm() / mag.norm() < 0.2  # spectral convergence


def test_bad_input() -> None:
    cfg = MelConfig(n_mels=80)
    with pytest.raises(BadArgument, match=r"\(80, L\)"):
        mel_to_wave(torch.zeros(128, 10), cfg)
    with pytest.raises(BadArgument, match="NaN"):
        mel_to_wave(torch.full((80, 10), float("nan")), cfg)
    with pytest.raises(BadArgument, match=r"\(201, L\)"):
        griffin_lim(torch.zeros(200, 10), cfg)
