"""`dina bench engine` on a very short run: every field present, every figure positive and finite."""

import json
import math

import pytest

from dina.bench.engine import bench_engine, bench_model, text_prompts
from dina.presets import tiny

DECODE = {"tokens", "decode_tokens", "decode_s", "tokens_per_s", "prefill_s"}


def _positive(figures: dict) -> bool:
    return all(isinstance(v, int | float) and v > 0 and math.isfinite(v) for v in figures.values())


def test_prompts_are_distinct_rows_of_equal_length():
    _, tok = bench_model(tiny())
    prompts = text_prompts(tok, 8)
    assert {len(p) for p in prompts} == {16} and len({tuple(p) for p in prompts}) == 8


def test_short_bench_returns_every_field():
    pytest.importorskip("transformers")
    result = bench_engine(threads=1, new_tokens=4, repeats=1, image=(2, 2))
    assert result["machine"]["threads"] == 1 and result["peer"]["layers"] == 4
    for batch in (1, 8):
        row = result["text_decode"][f"batch_{batch}"]
        for side in ("ours", "peer"):
            assert set(row[side]) == DECODE and _positive(row[side])
            assert row[side]["tokens"] == 4 * batch  # no row ended early
        assert row["ours"]["decode_tokens"] == 4 * batch and row["peer"]["decode_tokens"] == 3 * batch
        assert row["ratio"] == pytest.approx(row["ours"]["tokens_per_s"] / row["peer"]["tokens_per_s"])
    position = result["image_position_vs_text_token"]
    assert position["steps"] == 2 * 3 and _positive(position)
    flat = result["flattened_vs_depth_transformer"]
    assert flat["ours_steps"] == 6 and flat["flattened_steps"] == 2 * (8 * 2 + 1) and _positive(flat)
    assert _positive(result["cfg_vs_unguided"])
    kv = result["kv_cache_bytes_per_token"]
    assert kv["tiny"] == kv["peer"] == 2 * 2 * 2 * 2 * 32 * 4  # sublayers · kv heads · (k + v) · head dim · fp32
    assert kv["longcat_next_release_latent"] == (512 + 64) * 28 * 4 < kv["longcat_next"]
    for name, goal in result["goals"].items():
        assert set(goal) == {"value", "goal", "better", "met"} and isinstance(goal["met"], bool), name
        assert goal["value"] > 0 and math.isfinite(goal["value"]), name
    json.dumps(result)
