"""load_audio: any rate and channel count in, 16 kHz mono float32 out; broken audio is a BadAudio."""

import numpy as np
import pytest
import soundfile as sf

from dina.errors import BadAudio, BadInputFile
from dina.io.audio import load_audio, resample, save_wav


def _tone(sr, seconds=0.5, freq=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stereo_44k_is_converted(tmp_path):
    stereo = np.stack([_tone(44100), _tone(44100)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 44100, subtype="PCM_24")
    wave = load_audio(tmp_path / "s.wav")
    assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) == 8000
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 440) < 5  # the tone survives resampling


def test_round_trip_16k(tmp_path):
    wave = _tone(16000)
    save_wav(tmp_path / "t.wav", wave)
    assert np.allclose(load_audio(tmp_path / "t.wav"), wave, atol=1e-4)


def test_resample_identity_and_length():
    wave = _tone(16000)
    assert resample(wave, 16000) is not None and np.array_equal(resample(wave, 16000), wave)
    assert len(resample(_tone(24000), 24000)) == 8000


def test_bad_audio(tmp_path):
    with pytest.raises(BadInputFile):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "c.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(BadAudio, match="corrupt"):
        load_audio(tmp_path / "c.wav")
    sf.write(tmp_path / "e.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(BadAudio, match="empty"):
        load_audio(tmp_path / "e.wav")
    nan = _tone(16000)
    nan[100] = np.nan
    sf.write(tmp_path / "n.wav", nan, 16000, subtype="FLOAT")
    with pytest.raises(BadAudio, match="NaN"):
        load_audio(tmp_path / "n.wav")
    inf = _tone(16000)
    inf[5] = np.inf
    sf.write(tmp_path / "i.wav", inf, 16000, subtype="FLOAT")
    with pytest.raises(BadAudio, match="infinite"):
        load_audio(tmp_path / "i.wav")
