"""SpeechWorld generation: reproducible, 16 kHz mono, cached, and strict about its arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from dina.data.speech import engines as engines_module
from dina.data.speech.world import generate, generate_world
from dina.errors import BadArgument, BadInputFile, MissingDependency
from dina.io.audio import load_audio

# Fast voices from three engines keep these tests quick; every voice is checked in test_speech_engines.
VOICES = ["flite/slt", "espeak-ng/en-us", "espeak-ng/en+f3", "festival/kal_diphone"]


def _read(manifest):
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def test_same_seed_gives_same_manifest_and_wav_bytes(tmp_path):
    a = generate(tmp_path / "a", 10, seed=5, voices=VOICES)
    b = generate_world(tmp_path / "b", 10, seed=5, voices=VOICES, cache_dir=tmp_path / "other-cache").manifest
    assert a.read_bytes() == b.read_bytes()
    for row in _read(a):
        assert (a.parent / row["path"]).read_bytes() == (b.parent / row["path"]).read_bytes()
    c = generate(tmp_path / "c", 10, seed=6, voices=VOICES)
    assert c.read_bytes() != a.read_bytes()


def test_output_is_16k_mono_pcm_with_exact_rows(tmp_path):
    manifest = generate(tmp_path / "w", 8, seed=0, voices=VOICES)
    rows = _read(manifest)
    assert len(rows) == 8
    assert [r["path"] for r in rows] == [f"wavs/{i:06d}.wav" for i in range(8)]
    for row in rows:
        assert set(row) == {"path", "text", "voice", "engine", "seconds"}
        assert row["voice"] in VOICES and row["voice"].startswith(row["engine"] + "/")
        info = sf.info(str(manifest.parent / row["path"]))
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        wave = load_audio(manifest.parent / row["path"])
        assert wave.dtype == np.float32 and wave.ndim == 1
        assert row["seconds"] == pytest.approx(wave.size / 16_000, abs=1e-3)
        assert 0.05 < np.sqrt(np.mean(wave**2)) < 0.2  # loudness-normalized to about -20 dBFS


def test_second_run_reads_the_cache_and_calls_no_engine(tmp_path, monkeypatch):
    first = generate_world(tmp_path / "w", 6, seed=1, voices=VOICES)
    assert first.synthesized > 0 and first.cached == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "w" / "wavs").iterdir()}

    def refuse(*args, **kwargs):
        raise AssertionError("the engine was called despite the cache")

    for engine in engines_module.ENGINES.values():
        monkeypatch.setattr(engine, "synthesize", refuse)
    second = generate_world(tmp_path / "w", 6, seed=1, voices=VOICES)
    assert second.synthesized == 0 and second.cached == first.synthesized
    assert second.wall_seconds < first.wall_seconds
    assert {p.name: p.read_bytes() for p in (tmp_path / "w" / "wavs").iterdir()} == before


def test_shared_cache_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DINA_CACHE", str(tmp_path / "shared"))
    generate(tmp_path / "w", 3, seed=2, voices=VOICES)
    assert list((tmp_path / "shared" / "speech").rglob("*.npy"))
    assert not (tmp_path / "w" / ".cache").exists()


def test_smaller_rerun_removes_stale_wavs(tmp_path):
    generate(tmp_path / "w", 5, seed=0, voices=VOICES)
    generate(tmp_path / "w", 2, seed=0, voices=VOICES)
    assert sorted(p.name for p in (tmp_path / "w" / "wavs").iterdir()) == ["000000.wav", "000001.wav"]


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n(tmp_path, n):
    with pytest.raises(BadArgument, match="n must be a positive integer"):
        generate(tmp_path / "w", n, seed=0, voices=VOICES)


def test_bad_seed(tmp_path):
    with pytest.raises(BadArgument, match="seed"):
        generate(tmp_path / "w", 2, seed=-1, voices=VOICES)


def test_out_dir_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(BadInputFile, match="is a file"):
        generate(path, 2, seed=0, voices=VOICES)


def test_explicitly_requested_missing_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(engines_module.EspeakEngine, "available", lambda self: False)
    with pytest.raises(MissingDependency, match="espeak-ng"):
        generate(tmp_path / "w", 2, seed=0, voices=["espeak-ng/en-us"])


def test_default_voices_cover_every_engine(tmp_path, monkeypatch):
    # Real synthesis of every voice is tested in test_speech_engines; a tone keeps this a test of the plan.
    def tone(voice, text):
        wave = 0.3 * np.sin(np.arange(8000) * 0.1 * (1 + len(text) % 5)).astype(np.float32)
        return engines_module.Synthesis(wave=wave, sample_rate=8000)

    for engine in engines_module.ENGINES.values():
        monkeypatch.setattr(engine, "synthesize", tone)
    world = generate_world(tmp_path / "w", 40, seed=0)
    engines = {row["engine"] for row in _read(world.manifest)}
    assert engines == {"hibari", "flite", "festival", "espeak-ng"}
    assert world.warnings == ()
