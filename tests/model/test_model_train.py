"""Native model training (report Sec. 4.1.3, Table 7): stages freeze what they should, losses fall,
`--resume` repeats the exact curve, and bad data or mismatched runs are refused with clear errors."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from dina.audio.config import audio_tiny
from dina.audio.tokenizer import AudioTokenizer
from dina.cli.main import main
from dina.data.shapes import generate as generate_shapes
from dina.errors import BadCheckpoint, BadConfig, BadInputFile
from dina.inference.engine import GenerationConfig
from dina.inference.pipelines import Pipelines
from dina.io.audio import save_wav
from dina.model.data import STAGE_MIXTURES
from dina.model.native import NativeModel
from dina.model.train import ModelTrainPlan, train_model
from dina.presets import tiny
from dina.vision.config import vision_tiny
from dina.vision.tokenizer import VisionTokenizer

SENTENCES = ("the red ball", "a blue cube", "green star left", "small red cube", "the circle", "two squares")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Twelve ShapesWorld images, twelve tone clips with transcripts, and untrained tiny tokenizers."""
    root = tmp_path_factory.mktemp("world")
    generate_shapes(root / "shapes", 12, seed=0)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        seconds = 0.5 + 0.05 * i
        t = np.arange(int(16_000 * seconds)) / 16_000
        wave = 0.2 * np.sin(2 * np.pi * (120 + 20 * (i % 5)) * t) + rng.normal(0, 0.01, t.shape)
        save_wav(root / "speech" / "wavs" / f"{i:02d}.wav", wave.astype(np.float32), 16_000)
        rows.append({"path": f"wavs/{i:02d}.wav", "text": SENTENCES[i % 6], "seconds": seconds})
    (root / "speech" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    torch.manual_seed(0)
    VisionTokenizer(vision_tiny()).save_pretrained(root / "vision")
    AudioTokenizer(audio_tiny("trained")).save_pretrained(root / "audio")
    return root


def _config():
    cfg = tiny()
    return dataclasses.replace(cfg, audio=audio_tiny("trained"))


def _plan(stage: str, steps: int = 8, **kw) -> ModelTrainPlan:
    return ModelTrainPlan(
        stage=stage, steps=steps, budget=320, lr=3e-3, warmup=2, checkpoint_every=3, mixture=STAGE_MIXTURES[stage], **kw
    )


def _train(world, out, plan, **kw):
    return train_model(
        kw.pop("data_dirs", [world / "shapes", world / "speech"]),
        out,
        kw.pop("config", _config()),
        plan,
        vision_tokenizer=world / "vision",
        audio_tokenizer=kw.pop("audio_tokenizer", world / "audio"),
        progress=False,
        log=lambda _: None,
        **kw,
    )


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_prealign_trains_only_embeddings_prebuffer_and_heads(tmp_path, world):
    torch.manual_seed(0)
    before = NativeModel(dataclasses.replace(_config(), vision=vision_tiny())).state_dict()
    model = _train(world, tmp_path, _plan("prealign", steps=6))
    after = model.state_dict()
    n_text = model.cfg.vocab.audio_offset
    for key, value in after.items():
        if key.startswith(("backbone.", "lm_head.")):
            assert torch.equal(value, before[key]), f"{key} changed in prealign"
    table = "embedding.embed_tokens.weight"
    assert torch.equal(after[table][:n_text], before[table][:n_text]), "text rows changed in prealign"
    assert not torch.equal(after[table][n_text:], before[table][n_text:])
    for prefix in ("embedding.pre_buffer.", "visual_head.", "audio_head."):
        assert any(not torch.equal(v, before[k]) for k, v in after.items() if k.startswith(prefix)), prefix
    rows = _rows(tmp_path)
    assert all(r["stage"] == "prealign" for r in rows) and len(rows) == 6
    assert all(r["tokens"] <= 320 and r["tokens_per_s"] > 0 for r in rows)


def test_pretrain_lowers_the_loss_and_logs_formats_and_moe_statistics(tmp_path, world):
    _train(world, tmp_path, _plan("pretrain", steps=16))
    rows = _rows(tmp_path)
    curve = [r["loss"] for r in rows]
    assert sum(curve[-4:]) < sum(curve[:4]), curve
    formats = {k.removeprefix("loss/") for r in rows for k in r if k.startswith("loss/")}
    assert formats <= set(STAGE_MIXTURES["pretrain"]) and len(formats) >= 6
    cfg = tiny().backbone
    for r in rows:
        for layer in range(cfg.n_layers):
            counts = np.array(r[f"moe/{layer}"])
            assert counts.shape == (3, cfg.n_experts + cfg.n_zero_experts)
            assert counts.sum() == cfg.top_k * r["tokens"]  # every token makes top_k selections
        assert all(0 <= r[f"zero_share/{m}"] <= 1 for m in ("text", "image", "audio") if f"zero_share/{m}" in r)
    summary = json.loads((tmp_path / "summary.json").read_text())
    first = sum(r["loss"] for r in rows[:8]) / 8
    assert summary["losses"]["loss"] == {"first": round(first, 4), "last": pytest.approx(0, abs=99), "n": 16}
    assert set(summary["moe_share_last_window"]) == {f"moe/{i}" for i in range(cfg.n_layers)}
    assert all(sum(v) == pytest.approx(1, abs=1e-3) for v in summary["moe_share_last_window"]["moe/0"].values())
    saved = tmp_path / "model"
    assert (saved / "model.safetensors").exists() and (saved / "tokenizer.json").exists()
    reloaded = NativeModel.from_pretrained(saved)
    assert reloaded.cfg.name == "tiny"
    pipes = Pipelines.load(saved)  # self-contained: the tokenizers it was trained with are inside
    assert isinstance(pipes.see([np.zeros((56, 56, 3), np.uint8)], gen=GenerationConfig(max_new_tokens=3)), str)


def test_resume_repeats_the_uninterrupted_curve(tmp_path, world, crash_in_stage):
    full, part = tmp_path / "full", tmp_path / "part"
    _train(world, full, _plan("pretrain", steps=7))
    disarm = crash_in_stage("pretrain", 5)  # after the checkpoint at step 3
    with pytest.raises(KeyboardInterrupt):
        _train(world, part, _plan("pretrain", steps=7))
    disarm()
    _train(world, part, _plan("pretrain", steps=7), resume=True)
    assert [r["loss"] for r in _rows(part)] == [r["loss"] for r in _rows(full)]
    a = NativeModel.from_pretrained(full / "model").state_dict()
    b = NativeModel.from_pretrained(part / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_text_stage_trains_the_language_model_on_text_alone(tmp_path, world):
    _train(world, tmp_path, _plan("text", steps=8))
    rows = _rows(tmp_path)
    assert {k for r in rows for k in r if k.startswith("loss/")} == {"loss/text"}
    assert all("visual_loss" not in r and "audio_loss" not in r for r in rows)
    assert sum(r["loss"] for r in rows[-3:]) < sum(r["loss"] for r in rows[:3])


def test_sft_starts_from_init_keeps_its_text_ids_and_reuses_its_codes(tmp_path, world):
    _train(world, tmp_path / "pre", _plan("pretrain", steps=3))
    _train(world, tmp_path / "sft", _plan("sft", steps=6), init=tmp_path / "pre")
    pre = (tmp_path / "pre" / "model" / "tokenizer.json").read_text()
    assert (tmp_path / "sft" / "model" / "tokenizer.json").read_text() == pre
    rows = _rows(tmp_path / "sft")
    assert {k for r in rows for k in r if k.startswith("loss/")} <= {f"loss/{f}" for f in STAGE_MIXTURES["sft"]}


def test_refusals(tmp_path, world):
    run = tmp_path / "run"
    _train(world, run, _plan("pretrain", steps=3))
    with pytest.raises(BadInputFile, match="already holds a training run"):
        _train(world, run, _plan("pretrain", steps=3))
    with pytest.raises(BadConfig, match=r"another plan \(budget: 320 there, 256 now\)"):
        _train(world, run, dataclasses.replace(_plan("pretrain", steps=3), budget=256), resume=True)
    other = _config()
    other = dataclasses.replace(other, backbone=dataclasses.replace(other.backbone, n_layers=3))
    with pytest.raises(BadConfig, match=r"another config \(backbone.n_layers: 2 there, 3 now\)"):
        _train(world, run, _plan("pretrain", steps=3), resume=True, config=other)
    # A checkpoint truncated on disk is detected, not loaded.
    weights = run / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(BadCheckpoint, match="truncated"):
        _train(world, run, _plan("pretrain", steps=3), resume=True)


def test_bad_data(tmp_path, world):
    shapes = tmp_path / "shapes"
    shutil.copytree(world / "shapes", shapes)
    (shapes / "images" / "train_000003.png").unlink()
    with pytest.raises(BadInputFile, match="unusable image"):
        _train(world, tmp_path / "strict", _plan("prealign", steps=2), on_missing="error", data_dirs=[shapes])
    model_dir = tmp_path / "lenient"
    _train(world, model_dir, _plan("prealign", steps=2), data_dirs=[shapes, world / "speech"])
    assert json.loads((model_dir / "model" / "data.json").read_text())["skipped"] == {"missing_image": 1}
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.jsonl").write_text("")
    with pytest.raises(BadInputFile):
        _train(world, tmp_path / "none", _plan("prealign", steps=2), data_dirs=[empty])
    # A tokenizer whose codebooks differ from the model's vocabulary.
    cfg = audio_tiny("trained")
    odd = dataclasses.replace(cfg, rvq=dataclasses.replace(cfg.rvq, codebook_sizes=(64,) * 8))
    AudioTokenizer(odd).save_pretrained(tmp_path / "odd")
    with pytest.raises(BadConfig, match=r"audio tokenizer's codebooks \(64, 64"):
        _train(world, tmp_path / "mismatch", _plan("prealign", steps=2), audio_tokenizer=tmp_path / "odd")


def test_cli_reports_bad_input_in_one_line(tmp_path, world, capsys):
    code = main(
        [
            "train", "model", "--stage", "pretrain", "--vision-tokenizer", str(world / "vision"),
            "--audio-tokenizer", str(tmp_path / "missing"), "--data", str(world / "shapes"), "--out", str(tmp_path / "o"),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not exist" in err[0]
