"""`dina bench audio` on a very short run: every field, goals recorded with their verdicts."""

import json

import pytest

from dina.bench.audio import bench_audio, speechlike


def test_speechlike_is_seeded_and_bounded():
    a, b = speechlike(0.5, seed=1), speechlike(0.5, seed=1)
    assert a.shape == (8000,) and (a == b).all() and abs(a).max() < 1


def test_short_bench_returns_every_field():
    pytest.importorskip("vector_quantize_pytorch")
    result = bench_audio(seconds=(0.5,), repeats=1, rvq=(8, (16, 8), 64))
    assert result["threads"] == 1 and result["first_chunk_tokens"] == 4
    (clip,) = result["clips"]
    assert clip["tokens"] == 7 and clip["encode_rtf"] > 0 and clip["decode_rtf"] > 0
    assert result["rvq_vs_vector_quantize_pytorch"]["codebook_sizes"] == [16, 8]
    for name, goal in result["goals"].items():
        assert set(goal) == {"value", "goal", "better", "met"}, name
        assert goal["met"] is None if goal["value"] is None else isinstance(goal["met"], bool)
    json.dumps(result)
