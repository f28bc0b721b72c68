"""The TTS engines: every installed voice speaks, deterministically; voice selection; post-processing."""

from __future__ import annotations

import numpy as np
import pytest

from dina.data.speech import engines as engines_module
from dina.data.speech.engines import ENGINES, Voice, parse_voice, select_voices
from dina.data.speech.postprocess import PostprocessConfig, normalize_loudness, trim_silence
from dina.data.speech.world import synthesize
from dina.errors import BadArgument, MissingDependency
from dina.io.audio import SAMPLE_RATE

INSTALLED = select_voices(None).voices


@pytest.mark.parametrize("voice", INSTALLED, ids=[v.id for v in INSTALLED])
def test_every_installed_voice_speaks_deterministically(voice: Voice):
    text = "a red circle in the top left"
    first = synthesize(voice, text)
    second = synthesize(voice, text)
    assert first.dtype == np.float32 and first.ndim == 1
    # Between ~0.8 s and 5 s of speech at 16 kHz, not silence.
    assert 0.8 * SAMPLE_RATE < first.size < 5 * SAMPLE_RATE, first.size
    assert np.sqrt(np.mean(first**2)) > 0.05
    np.testing.assert_array_equal(first, second)


def test_the_four_engines_are_installed_here():
    # The Makefile installs all of them; a missing one should be noticed, not silently skipped.
    engines = {v.engine for v in INSTALLED}
    assert engines == {"hibari", "flite", "festival", "espeak-ng"}
    assert "festival/cmu_us_slt_arctic_hts" in {v.id for v in INSTALLED}


def test_parse_voice():
    assert parse_voice("flite/slt") == Voice(engine="flite", name="slt")
    with pytest.raises(BadArgument, match="engine/voice"):
        parse_voice("slt")
    with pytest.raises(BadArgument, match="engine/voice"):
        parse_voice("google/wavenet")
    with pytest.raises(BadArgument, match="unknown flite voice"):
        parse_voice("flite/nobody")
    with pytest.raises(BadArgument, match="empty"):
        select_voices([])


def test_missing_engine_is_skipped_with_a_warning_unless_asked_for(monkeypatch):
    monkeypatch.setattr(engines_module.FliteEngine, "available", lambda self: False)
    selection = select_voices(None)
    assert not any(v.engine == "flite" for v in selection.voices)
    assert any("flite is not installed" in w for w in selection.warnings)
    with pytest.raises(MissingDependency, match="flite"):
        select_voices(["flite/slt"])


def test_no_engine_at_all_is_a_missing_dependency(monkeypatch):
    for engine in ENGINES.values():
        monkeypatch.setattr(engine, "available", lambda: False)
    with pytest.raises(MissingDependency, match="no TTS engine"):
        select_voices(None)


def test_trim_keeps_the_margin_around_speech():
    sr = 16_000
    tone = 0.5 * np.sin(np.linspace(0, 200 * np.pi, sr)).astype(np.float32)
    wave = np.concatenate([np.zeros(sr, np.float32), tone, np.zeros(2 * sr, np.float32)])
    trimmed = trim_silence(wave, sr, PostprocessConfig(margin_s=0.1))
    assert abs(trimmed.size - int(1.2 * sr)) <= 2 * sr // 100
    silent = np.zeros(100, np.float32)
    assert trim_silence(silent, sr).size == 100


def test_normalize_reaches_the_target_rms_and_respects_the_peak_limit():
    config = PostprocessConfig(target_rms_db=-20.0, peak_limit=0.95)
    quiet = 0.01 * np.sin(np.linspace(0, 100 * np.pi, 8000)).astype(np.float32)
    out = normalize_loudness(quiet, config)
    assert 20 * np.log10(np.sqrt(np.mean(out.astype(np.float64) ** 2))) == pytest.approx(-20.0, abs=0.01)
    spiky = np.zeros(8000, np.float32)
    spiky[10] = 1.0
    assert np.abs(normalize_loudness(spiky, config)).max() == pytest.approx(0.95, abs=1e-6)
    assert normalize_loudness(np.zeros(10, np.float32), config).max() == 0.0
