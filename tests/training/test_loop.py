"""run_stage: warm-up and cosine schedule, metrics per step, exact resumption after a crash."""

import json

import pytest
import torch

from dina.training.loop import StagePlan, lr_at, run_stage
from dina.training.metrics import MetricsLog


def test_schedule_warms_up_then_decays_to_the_floor():
    plan = StagePlan(steps=100, batch_size=1, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert lr_at(plan, 0) == pytest.approx(0.1) and lr_at(plan, 9) == pytest.approx(1.0)
    assert lr_at(plan, 99) == pytest.approx(0.1, abs=1e-3)
    assert all(lr_at(plan, s) >= lr_at(plan, s + 1) for s in range(10, 99))


def _run(tmp_path, crash_at=None, resume=False):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    data = torch.Generator().manual_seed(1)
    xs = torch.randn(64, 3, generator=data)
    ys = xs.sum(1, keepdim=True)

    def loss_fn(step):
        if step == crash_at:
            raise KeyboardInterrupt
        idx = torch.arange(step % 8 * 8, step % 8 * 8 + 8)
        return {"loss": (model(xs[idx]) - ys[idx]).pow(2).mean()}

    plan = StagePlan(steps=20, batch_size=8, lr=0.05, warmup=3)
    run_stage("s", modules={"m": model}, trainable=[model], loss_fn=loss_fn, plan=plan, ckpt_dir=tmp_path / "ckpt",
              metrics=MetricsLog(tmp_path / "m.jsonl"), resume=resume, checkpoint_every=4, progress=False)  # fmt: skip
    return [json.loads(line)["loss"] for line in (tmp_path / "m.jsonl").read_text().splitlines()]


def test_resume_after_a_crash_gives_the_uninterrupted_curve(tmp_path):
    full = _run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", crash_at=10)
    resumed = _run(tmp_path / "b", resume=True)
    assert resumed == full and full[-1] < full[0]


def test_with_stage_steps_resizes_the_named_stages_only():
    from dina.errors import BadArgument
    from dina.vision.train import VisionTrainPlan

    plan = VisionTrainPlan()
    resized = plan.with_stage_steps({"sae": 10, "decoder": 3})
    assert (resized.sae.steps, resized.decoder.steps) == (10, 3)
    assert resized.decoder.warmup == 1  # at most half the steps, as with_steps and scaled resize
    assert (resized.rvq, resized.refiner) == (plan.rvq, plan.refiner)
    with pytest.raises(BadArgument, match="unknown stages nope"):
        plan.with_stage_steps({"nope": 1})
