"""dNaViT training: every stage lowers its loss, and an interrupted run resumes on the exact same curve."""

import dataclasses
import json
import random

import numpy as np
import pytest
import torch

from dina.data.shapes import generate
from dina.errors import BadInputFile
from dina.training.loop import StagePlan
from dina.vision.config import vision_tiny
from dina.vision.data import ImageRecord
from dina.vision.sae_objective import AnswerDecoder, AnswerDecoderConfig, PixelProbe, WordVocab
from dina.vision.tokenizer import VisionTokenizer
from dina.vision.train import (
    CAPTION_QUESTION,
    STAGES,
    VisionTrainPlan,
    _step_pairs,
    decoder_loss_fn,
    sae_loss_fn,
    train_vision,
)


def _plan(steps: int) -> VisionTrainPlan:
    sizes = {"sae": 8, "rvq": 8, "decoder": 4, "refiner": 4}
    stages = {s: StagePlan(steps=steps, batch_size=sizes[s], lr=3e-3, warmup=2) for s in STAGES}
    return VisionTrainPlan(**stages, checkpoint_every=3, crop_tokens=4, refiner_crop_tokens=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("shapes"), 16, seed=5)


def _losses(out) -> dict[str, list[float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {s: [r["loss"] for r in rows if r["stage"] == s] for s in STAGES}


def test_a_short_training_lowers_every_loss(tmp_path, data):
    model = train_vision(data, tmp_path, vision_tiny(), _plan(16), progress=False, log=lambda _: None)
    for stage, curve in _losses(tmp_path).items():
        assert len(curve) == 16
        assert sum(curve[-4:]) < sum(curve[:4]), f"{stage} did not learn: {curve}"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    probe = [r["pixel_probe"] for r in rows if r["stage"] == "sae"]
    assert sum(probe[-4:]) < sum(probe[:4]), f"the SAE's pixel probe did not learn: {probe}"
    assert (tmp_path / "tokenizer" / "model.safetensors").exists()
    assert model.encode([__import__("numpy").zeros((56, 56, 3), dtype="uint8")]).codes[0].shape == (2, 2, 8)


def test_resume_continues_the_exact_same_curve(tmp_path, data, crash_in_stage):
    plan = _plan(5)
    train_vision(data, tmp_path / "a", vision_tiny(), plan, progress=False, log=lambda _: None)
    disarm = crash_in_stage("decoder", 4)
    with pytest.raises(KeyboardInterrupt):
        train_vision(data, tmp_path / "b", vision_tiny(), plan, progress=False, log=lambda _: None)
    disarm()
    with pytest.raises(BadInputFile, match="--resume"):
        train_vision(data, tmp_path / "b", vision_tiny(), plan, progress=False, log=lambda _: None)
    train_vision(data, tmp_path / "b", vision_tiny(), plan, resume=True, progress=False, log=lambda _: None)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_data_without_captions_is_refused(tmp_path):
    from dina.io.images import save_png

    save_png(tmp_path / "imgs" / "a.png", __import__("numpy").zeros((56, 56, 3), dtype="uint8"))
    with pytest.raises(BadInputFile, match="no captions"):
        train_vision(tmp_path / "imgs", tmp_path / "out", vision_tiny(), _plan(2), progress=False, log=print)


def test_plan_scaling_keeps_every_stage():
    plan = VisionTrainPlan().scaled(0.1)
    assert all(getattr(plan, s).steps == max(2, round(getattr(VisionTrainPlan(), s).steps * 0.1)) for s in STAGES)
    assert dataclasses.replace(plan, seed=3).seed == 3


def test_each_sae_step_asks_one_caption_and_every_question():
    qa = [{"question": "how many?", "answer": 1}, {"question": "what color?", "answer": "red"}]
    row = {"captions": ["a red star.", "one red star."], "qa": qa}
    rng = random.Random(0)
    pairs = _step_pairs(row, rng, every_question=True)
    assert [q for q, _ in pairs] == [CAPTION_QUESTION, "how many?", "what color?"]
    assert pairs[0][1] in row["captions"] and pairs[1:] == [("how many?", "1"), ("what color?", "red")]
    captions = {_step_pairs(row, rng, every_question=True)[0][1] for _ in range(20)}
    assert captions == set(row["captions"]), "the caption is drawn at random"
    one = _step_pairs(row, rng, every_question=False)
    assert len(one) == 1 and one[0] in [(CAPTION_QUESTION, c) for c in row["captions"]] + pairs[1:]
    assert _step_pairs({"qa": qa}, rng, every_question=True) == pairs[1:]
    assert _step_pairs(None, rng, every_question=True) == [] == _step_pairs({}, rng, every_question=False)


def test_an_sae_batch_without_annotations_trains_the_pixel_probe_only():
    config = vision_tiny()
    vocab = WordVocab.build(["describe the image.", "a red star."])
    answer = AnswerDecoder(AnswerDecoderConfig(vocab_size=len(vocab), feature_dim=config.sae.out_dim))
    probe = PixelProbe(config.sae.out_dim, config.sae.merge**2 * config.sae.patch_dim)
    records = [ImageRecord(rgb=np.full((56, 84, 3), 40 * i, dtype=np.uint8), path=f"{i}.png") for i in range(2)]
    plan = _plan(2)
    out = sae_loss_fn(VisionTokenizer(config), answer, probe, vocab, records, plan)(0)
    assert out["answer_ce"].item() == 0.0 and out["pixel_probe"].item() > 0
    assert out["loss"].item() == pytest.approx(plan.sae_pixel_weight * out["pixel_probe"].item())


@pytest.mark.parametrize("align_crops", [0, 2])
def test_the_decoder_loss_is_eq6_and_zero_align_crops_turn_l_align_off(align_crops):
    model = VisionTokenizer(vision_tiny()).eval()
    rng = np.random.default_rng(0)
    pixels = [model.resized(rng.integers(0, 256, (84, 112, 3), dtype=np.uint8)) for _ in range(3)]
    codes = [torch.randn(h * w, model.config.rvq.dim) for _, (h, w) in pixels]
    plan = VisionTrainPlan(decoder=StagePlan(steps=2, batch_size=3, lr=1e-3), crop_tokens=2, align_crops=align_crops)
    out = decoder_loss_fn(model, codes, pixels, plan)(0)
    rest = plan.pixel_weight * (out["l1"] + out["mse"]) + plan.percep_weight * (1 - out["ssim"])
    assert out["loss"].item() == pytest.approx((rest + plan.align_weight * out["align"]).item(), rel=1e-6)
    assert (out["align"].item() > 0) == (align_crops > 0)
    out["loss"].backward()
    assert model.pixel_decoder.head_fc2.weight.grad.abs().sum() > 0, "eq. 6 reaches the pixel decoder"
