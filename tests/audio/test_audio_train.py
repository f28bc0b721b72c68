"""Audio tokenizer training (report Sec. 4.1.2): every stage lowers its loss, resumption repeats the
exact curve, the transcriber's loss (L_llm) falls, and bad data is refused."""

import json

import numpy as np
import pytest

from dina.audio.config import audio_tiny
from dina.audio.train import STAGES, AudioTrainPlan, train_audio
from dina.errors import BadInputFile, BadManifest
from dina.io.audio import save_wav
from dina.training.loop import StagePlan

WORDS = ("red ball", "blue cube", "green star", "small red cube")


def _plan(steps: int) -> AudioTrainPlan:
    sizes = {"warmup": 4, "joint": 4, "decoder": 4, "refiner": 4, "vocoder": 2}
    stages = {s: StagePlan(steps=steps, batch_size=sizes[s], lr=3e-3, warmup=2) for s in STAGES}
    return AudioTrainPlan(**stages, checkpoint_every=3, refiner_crop_tokens=4, vocoder_segment=3200)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Eight 0.6-1.3 s clips of gliding harmonic tones, one pitch contour per sentence."""
    root = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        seconds = 0.6 + 0.1 * i
        t = np.arange(int(16_000 * seconds)) / 16_000
        f0 = 120 + 40 * (i % 4) + 30 * np.sin(2 * np.pi * t / seconds)
        phase = 2 * np.pi * np.cumsum(f0) / 16_000
        wave = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2 + rng.normal(0, 0.01, t.shape)
        save_wav(root / "wavs" / f"{i:02d}.wav", wave.astype(np.float32), 16_000)
        rows.append({"path": f"wavs/{i:02d}.wav", "text": WORDS[i % 4], "voice": f"tone/{i % 2}"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _losses(out) -> dict[str, list[float]]:
    rows = _rows(out)
    return {s: [r["loss"] for r in rows if r["stage"] == s] for s in STAGES}


def test_a_short_training_lowers_every_loss(tmp_path, data):
    model = train_audio(data, tmp_path, audio_tiny(), _plan(16), progress=False, log=lambda _: None)
    for stage, curve in _losses(tmp_path).items():
        assert len(curve) == 16
        assert sum(curve[-4:]) < sum(curve[:4]), f"{stage} did not learn: {curve}"
    rows = _rows(tmp_path)
    for stage, part in (("warmup", "llm"), ("warmup", "mel_l1"), ("joint", "commit")):
        curve = [r[part] for r in rows if r["stage"] == stage]
        assert sum(curve[-4:]) < sum(curve[:4]), f"{stage} {part} did not fall: {curve}"
    assert (tmp_path / "tokenizer" / "model.safetensors").exists()
    codes = model.encode(np.zeros(16_000, dtype=np.float32), 16_000)
    assert codes.codes.shape == (13, 8)


def test_resume_continues_the_exact_same_curve(tmp_path, data, crash_in_stage):
    plan = _plan(5)
    train_audio(data, tmp_path / "a", audio_tiny(), plan, progress=False, log=lambda _: None)
    disarm = crash_in_stage("joint", 4)
    with pytest.raises(KeyboardInterrupt):
        train_audio(data, tmp_path / "b", audio_tiny(), plan, progress=False, log=lambda _: None)
    disarm()
    with pytest.raises(BadInputFile, match="--resume"):
        train_audio(data, tmp_path / "b", audio_tiny(), plan, progress=False, log=lambda _: None)
    train_audio(data, tmp_path / "b", audio_tiny(), plan, resume=True, progress=False, log=lambda _: None)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_the_frozen_whisper_front_end_trains_only_the_bridge(tmp_path, data):
    model = train_audio(data, tmp_path, audio_tiny("whisper-tiny.en"), _plan(3), progress=False, log=lambda _: None)
    assert not any(name.startswith("encoder.encoder.") for name in model.state_dict())
    assert model.encode(np.zeros(4000, dtype=np.float32), 16_000).codes.shape == (4, 8)


def test_bad_data_is_refused(tmp_path, data):
    with pytest.raises(BadInputFile, match="does not exist"):
        train_audio(tmp_path / "nothing", tmp_path / "out", audio_tiny(), _plan(2), progress=False, log=print)
    (tmp_path / "bad.jsonl").write_text('{"path": "a.wav"}\n')
    with pytest.raises(BadManifest, match="text"):
        train_audio(tmp_path / "bad.jsonl", tmp_path / "out", audio_tiny(), _plan(2), progress=False, log=print)


def test_plan_scaling_keeps_every_stage():
    plan = AudioTrainPlan().scaled(0.1)
    assert all(getattr(plan, s).steps == max(2, round(getattr(AudioTrainPlan(), s).steps * 0.1)) for s in STAGES)
