import math

import numpy as np
import pytest
import soxr
import torch

from dina.audio.mel import LogMel, MelConfig, hz_to_slaney_mel, log_mel, slaney_mel_filters, slaney_mel_to_hz
from dina.errors import BadArgument, BadAudio, BadConfig

SR = 16_000


def chirp_plus_noise(num_samples: int, seed: int = 0) -> np.ndarray:
    """A 100 Hz -> 6 kHz linear chirp at 0.5 plus seeded white noise at 0.01, 16 kHz float32."""
    t = np.arange(num_samples) / SR
    duration = num_samples / SR
    phase = 2 * np.pi * (100 * t + (6000 - 100) * t**2 / (2 * duration))
    noise = np.random.default_rng(seed).standard_normal(num_samples)
    return (0.5 * np.sin(phase) + 0.01 * noise).astype(np.float32)


def test_slaney_scale_hand_values() -> None:
    # Linear below 1 kHz (3 mels per 200 Hz), then 27 mels per factor 6.4.
    assert hz_to_slaney_mel(500.0) == pytest.approx(7.5)
    assert hz_to_slaney_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_slaney_mel(6400.0) == pytest.approx(42.0)
    hz = np.array([0.0, 300.0, 999.0, 1000.0, 2500.0, 8000.0])
    np.testing.assert_allclose(slaney_mel_to_hz(hz_to_slaney_mel(hz)), hz, atol=1e-9)


def test_filters_are_area_normalized_triangles() -> None:
    # A fine grid (0.25 Hz bins) so that each row's sum times the bin width is its area in Hz.
    sr, n_fft, n_mels = 16_000, 64_000, 80
    filters = slaney_mel_filters(sr, n_fft, n_mels).double().numpy()
    assert filters.shape == (n_mels, n_fft // 2 + 1)
    assert (filters >= 0).all()
    np.testing.assert_allclose(filters.sum(axis=1) * (sr / n_fft), 1.0, atol=1e-3)
    peaks = filters.argmax(axis=1)
    assert (np.diff(peaks) > 0).all()  # centers increase
    for row in filters[::10]:  # one bump: rises to its peak, then falls, zero elsewhere
        nz = np.flatnonzero(row)
        peak = row.argmax()
        assert (np.diff(row[nz[0] : peak + 1]) >= 0).all() and (np.diff(row[peak : nz[-1] + 1]) <= 0).all()
        assert nz[-1] - nz[0] + 1 == len(nz)
    # Height of the first filter: 2 / (f_hi - f_lo), with edges 2 steps of 45.2456/81 mel apart.
    f_hi = slaney_mel_to_hz(2 * hz_to_slaney_mel(8000.0) / (n_mels + 1))
    assert filters[0].max() == pytest.approx(2 / f_hi, rel=1e-3)


def test_filters_refuse_bad_arguments() -> None:
    with pytest.raises(BadArgument):
        slaney_mel_filters(16_000, 400, 80, fmax=9000.0)
    with pytest.raises(BadArgument):
        slaney_mel_filters(16_000, 400, 0)


def test_matches_faster_whisper_front_end() -> None:
    from faster_whisper.feature_extractor import FeatureExtractor

    peer = FeatureExtractor(feature_size=80)
    np.testing.assert_array_equal(peer.mel_filters, slaney_mel_filters(SR, 400, 80).numpy())
    wave = chirp_plus_noise(3 * SR + 77)
    # padding=0: faster-whisper's default appends 160 zeros (one frame more than Whisper's T // 160).
    ref_MF = peer(wave, padding=0)
    ours_BMF = LogMel(MelConfig(n_mels=80))(torch.from_numpy(wave))
    assert ours_BMF.dtype == torch.float32 and ours_BMF.shape == (1, 80, (3 * SR + 77) // 160) == (1, *ref_MF.shape)
    diff = np.abs(ours_BMF[0].numpy() - ref_MF)
    assert diff.max() < 1e-4  # measured 1.4e-5 (float32 STFT vs numpy's)
    assert ref_MF.max() - ref_MF.min() == pytest.approx(2.0)  # the 8-decade clamp, scaled by 1/4, is active


def test_release_size_and_frame_count() -> None:
    logmel = LogMel()
    assert logmel(torch.from_numpy(chirp_plus_noise(SR))).shape == (1, 128, 100)
    for num_samples in (160, 161, 199, 200, 201, 319, 320, 401, 4001, 16_123):
        mel_BMF = logmel(torch.from_numpy(chirp_plus_noise(num_samples, seed=num_samples)))
        assert mel_BMF.shape == (1, 128, num_samples // 160), num_samples
        assert torch.isfinite(mel_BMF).all()
    assert LogMel().state_dict() == {}  # window and filters are derived, not saved


def test_batch_rows_are_independent_utterances() -> None:
    a, b = chirp_plus_noise(8000, seed=1), 0.01 * chirp_plus_noise(8000, seed=2)
    batch_BMF = LogMel()(torch.from_numpy(np.stack([a, b])))
    torch.testing.assert_close(batch_BMF[0], LogMel()(torch.from_numpy(a))[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(batch_BMF[1], LogMel()(torch.from_numpy(b))[0], atol=1e-6, rtol=0)


def test_fixed_floor_makes_windows_match_the_whole_wave() -> None:
    quiet = 0.001 * chirp_plus_noise(SR, seed=3)
    whole = np.concatenate([quiet, 0.9 * chirp_plus_noise(SR, seed=4)])
    inner = SR // 160 - 2  # the last two frames of the window see past its end (reflect padding)
    logmel = LogMel()
    window_fixed = logmel(torch.from_numpy(quiet), floor=-10.0)[..., :inner]
    whole_fixed = logmel(torch.from_numpy(whole), floor=-10.0)[..., :inner]
    torch.testing.assert_close(window_fixed, whole_fixed, atol=1e-5, rtol=0)
    # With Whisper's per-utterance max, the quiet window alone is clamped differently.
    diff = (logmel(torch.from_numpy(quiet))[..., :inner] - logmel(torch.from_numpy(whole))[..., :inner]).abs()
    assert diff.max() > 0.5


def test_any_rate_and_channels_are_converted_first() -> None:
    # A tone pair and a chirp, all under 8 kHz, evaluated exactly at both rates.
    def signal(sr: int, gain: float) -> np.ndarray:
        t = np.arange(int(2.0 * sr)) / sr
        chirp = np.sin(2 * np.pi * (200 * t + 1900 * t**2 / 2.0))
        return (gain * (0.3 * chirp + 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t))).astype(
            np.float32
        )

    stereo_TC = np.stack([signal(44_100, 0.6), signal(44_100, 1.4)], axis=1)  # mean of the channels = gain 1
    from_stereo = log_mel(stereo_TC, sr=44_100)
    reference = log_mel(signal(SR, 1.0), sr=SR)
    assert from_stereo.shape == reference.shape == (1, 128, 200)
    diff = (from_stereo - reference)[..., 3:-3].abs()  # the resampler's filter rings at both ends
    assert diff.max() < 5e-4 and diff.mean() < 1e-5  # measured 6.7e-5 and 4.3e-7
    # A torch tensor in, and resampling done by the same helper as file loading.
    resampled = soxr.resample(stereo_TC.mean(axis=1), 44_100, SR, quality="HQ").astype(np.float32)
    torch.testing.assert_close(log_mel(torch.from_numpy(stereo_TC), 44_100), LogMel()(torch.from_numpy(resampled)))


@pytest.mark.parametrize(
    "wave",
    [
        np.zeros(0, np.float32),
        np.full(1600, np.nan, np.float32),
        np.array([0.0] * 800 + [math.inf] + [0.0] * 799, np.float32),
        np.zeros((2, 1600, 1), np.float32),
        np.zeros((2, 1600), np.float32),  # (C, T): channels must come last
        np.zeros(159, np.float32),  # shorter than one hop
        np.zeros(1600, np.int16),
    ],
    ids=["empty", "nan", "inf", "3-D", "channels-first", "under-10ms", "int16"],
)
def test_bad_waves_are_refused(wave: np.ndarray) -> None:
    with pytest.raises(BadAudio):
        log_mel(wave, sr=SR)


def test_logmel_refuses_bad_tensors() -> None:
    logmel = LogMel()
    for wave in (torch.zeros(1, 2, 1600), torch.zeros(0), torch.full((1600,), math.nan), torch.zeros(1600) * 1j):
        with pytest.raises(BadAudio):
            logmel(wave)
    with pytest.raises(BadAudio):
        log_mel(np.zeros(1600, np.float32), sr=0)
    with pytest.raises(BadConfig):
        MelConfig(hop_length=0)


def test_silence_and_clipping_give_finite_features() -> None:
    silence = LogMel()(torch.zeros(SR))
    torch.testing.assert_close(silence, torch.full_like(silence, (-10.0 + 4.0) / 4.0))  # all at the 1e-10 floor
    clipped = np.clip(4.0 * chirp_plus_noise(SR), -1.0, 1.0)
    assert torch.isfinite(log_mel(clipped, sr=SR)).all()
