"""The offline ASR judge: it hears clean speech, and refuses or converts bad audio sensibly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from dina.data.speech.asr import AsrJudge, transcribe
from dina.data.speech.engines import Voice
from dina.data.speech.world import synthesize
from dina.errors import BadAudio, BadManifest
from dina.io.audio import save_wav

CLEAN = [
    (Voice(engine="hibari", name="heart"), "a red circle in the top left"),
    (Voice(engine="hibari", name="heart"), "stop the music"),
    (Voice(engine="flite", name="slt"), "forty two"),
    (Voice(engine="festival", name="cmu_us_slt_arctic_hts"), "how many squares are there"),
]


@pytest.fixture(scope="module")
def judge() -> AsrJudge:
    return AsrJudge()


@pytest.fixture(scope="module")
def clean_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    rows = []
    for i, (voice, text) in enumerate(CLEAN):
        save_wav(root / f"{i}.wav", synthesize(voice, text))
        rows.append({"path": f"{i}.wav", "text": text, "voice": voice.id, "engine": voice.engine})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"


def test_judge_transcribes_clean_speech(judge, clean_manifest, tmp_path):
    result = transcribe(clean_manifest, tmp_path / "asr.json", judge=judge)
    # Measured 0.0 on these four utterances; the bound leaves room for one wrong word.
    assert result["wer"] <= 0.1, result["transcripts"]
    assert result["n"] == len(CLEAN)
    assert set(result["wer_per_engine"]) == {"hibari", "flite", "festival"}
    assert set(result["wer_per_voice"]) == {v.id for v, _ in CLEAN}
    assert result["seconds_audio"] > 3 and 0 < result["rtf"] < 2
    assert json.loads((tmp_path / "asr.json").read_text()) == result
    assert result["transcripts"][2]["reference"] == "forty two"


def test_judge_hears_no_words_in_noise_free_silence(judge):
    assert judge.transcribe_wave(np.zeros(16_000, np.float32)).strip() in {"", "you", "."}


def _manifest_for(tmp_path, wav_name: str):
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": wav_name, "text": "stop the music"}) + "\n")
    return tmp_path / "m.jsonl"


def test_corrupt_wav(judge, tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    with pytest.raises(BadAudio, match="corrupt"):
        transcribe(_manifest_for(tmp_path, "bad.wav"), judge=judge)


def test_empty_wav(judge, tmp_path):
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, np.float32), 16_000)
    with pytest.raises(BadAudio, match="empty"):
        transcribe(_manifest_for(tmp_path, "empty.wav"), judge=judge)


def test_nan_samples(judge, tmp_path):
    wave = np.zeros(1600, np.float32)
    wave[100] = np.nan
    sf.write(str(tmp_path / "nan.wav"), wave, 16_000, subtype="FLOAT")
    with pytest.raises(BadAudio, match="NaN"):
        transcribe(_manifest_for(tmp_path, "nan.wav"), judge=judge)
    with pytest.raises(BadAudio, match="NaN"):
        judge.transcribe_wave(wave)


def test_stereo_44k_is_converted(judge, tmp_path):
    mono_16k = synthesize(Voice(engine="hibari", name="heart"), "stop the music")
    n_44k = int(mono_16k.size * 44_100 / 16_000)
    mono_44k = np.interp(np.linspace(0, mono_16k.size - 1, n_44k), np.arange(mono_16k.size), mono_16k)
    sf.write(str(tmp_path / "stereo.wav"), np.stack([mono_44k, mono_44k], axis=1), 44_100)
    result = transcribe(_manifest_for(tmp_path, "stereo.wav"), judge=judge)
    assert result["transcripts"][0]["hypothesis"] == "stop the music"


def test_malformed_manifest_line_is_named(judge, tmp_path):
    good = json.dumps({"path": "a.wav", "text": "hi"})
    (tmp_path / "m.jsonl").write_text(f"{good}\n{{not json\n")
    with pytest.raises(BadManifest, match="line 2"):
        transcribe(tmp_path / "m.jsonl", judge=judge)
    (tmp_path / "m.jsonl").write_text(f'{good}\n{{"path": "a.wav"}}\n')
    with pytest.raises(BadManifest, match=r"line 2: missing key\(s\) text"):
        transcribe(tmp_path / "m.jsonl", judge=judge)
