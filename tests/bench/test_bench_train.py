"""`dina bench train` on a very short run: every field present, every figure positive and finite."""

import json
import math

import pytest

from dina.bench.train import bench_train, synthetic_batch
from dina.presets import tiny

FIGURES = {"params", "backbone_params", "active_params", "tokens", "step_s", "tokens_per_s"}
FIGURES |= {"model_flops_per_step", "model_flops_per_s", "mfu"}


def test_synthetic_batch_fills_the_budget_with_every_format():
    batch = synthetic_batch(tiny(), 300)
    assert batch.n_tokens == 300
    assert set(batch.formats) == {"text", "chat_t2i", "chat_vqa", "chat_tts"}


def test_short_bench_returns_every_field():
    pytest.importorskip("transformers")
    result = bench_train(threads=1, budget=96, steps=1, repeats=1, matmul_size=256)
    assert result["machine"]["threads"] == 1 and result["peak_flops"] > 0
    ours, peer = result["ours"], result["peer"]
    for side in (ours, peer):
        assert set(side) >= FIGURES
        assert all(side[k] > 0 and math.isfinite(side[k]) for k in FIGURES)
    assert ours["tokens"] == peer["tokens"] == 96
    assert 0 <= ours["zero_expert_share"] <= 1
    assert peer["config"]["experts"] == 8 and peer["config"]["top_k"] == 2
    assert result["ratio_tokens_per_s"] == pytest.approx(ours["tokens_per_s"] / peer["tokens_per_s"])
    for name, goal in result["goals"].items():
        assert set(goal) == {"value", "goal", "better", "met"} and isinstance(goal["met"], bool), name
    json.dumps(result)
