"""`dina vision study scene-depth`: deeper RVQs quantize finer, the judge's ceiling is exact, files are written."""

import dataclasses
import json

import pytest

import dina.vision.study as study
from dina.errors import BadInputFile
from dina.vision.train import cache_features


@pytest.fixture(scope="module")
def world(shapes_world, tmp_path_factory):
    data, model, records = shapes_world
    tokenizer = tmp_path_factory.mktemp("tok")
    model.save_pretrained(tokenizer)
    return data, tokenizer, model, records


def test_scene_depth_deeper_is_finer_and_originals_parse_exactly(world, monkeypatch):
    _, _, model, records = world
    monkeypatch.setattr(study, "SCENE_DEPTHS", (1, 4))
    result = study.scene_depth(model, cache_features(model, records), records, steps=6, seed=0)
    assert result["originals"] == 1.0  # the judge reads every generated scene exactly
    assert result["continuous"]["feature_rel_error"] == 0.0
    assert 0.0 < result["levels_4"]["feature_rel_error"] < result["levels_1"]["feature_rel_error"]
    n_signs = sum(r.row["scene"]["sign"] is not None for r in records)
    for key in ("continuous", "tokenizer_codes", "levels_1", "levels_4"):
        assert result[key]["signs"] == n_signs
        assert 0.0 <= result[key]["judge_exact_scene"] <= 1.0
        assert 0 <= result[key]["signs_found"] <= n_signs
    assert result["levels_4"]["bits_per_token"] == 4 * 10  # 1024 codes per level in tiny
    assert set(result["summary"]["judge_exact_scene"]) == {
        "levels_1",
        "levels_4",
        "continuous",
        "tokenizer_codes",
        "originals",
    }


def test_run_study_writes_json_and_plot(world, tmp_path, monkeypatch):
    data, tokenizer, _, _ = world
    monkeypatch.setattr(study, "SCENE_DEPTHS", (1, 2))
    result = study.run_study("scene-depth", out=tmp_path, data=data, val=data, tokenizer=tokenizer, steps=3)
    saved = json.loads((tmp_path / "scene-depth.json").read_text())
    assert saved["summary"] == result["summary"]
    assert (tmp_path / "scene-depth.png").stat().st_size > 0


def test_scene_depth_needs_scenes(world, tmp_path):
    _, _, model, records = world
    plain = [dataclasses.replace(r, row=None) for r in records[:2]]
    with pytest.raises(BadInputFile, match="scenes"):
        study.scene_depth(model, cache_features(model, records), plain, steps=1, seed=0)
