"""`dina vision eval`'s figures: every key the issue names, the judge's ceiling, and the judge report."""

import numpy as np
import pytest
import torch

from dina.data.shapes import generate
from dina.vision.config import vision_tiny
from dina.vision.data import load_images
from dina.vision.evaluate import evaluate_vision, judge_report
from dina.vision.tokenizer import VisionTokenizer
from dina.vision.train import cache_features


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = generate(tmp_path_factory.mktemp("shapes"), 6, seed=5)
    torch.manual_seed(0)
    model = VisionTokenizer(vision_tiny()).eval()
    records = load_images(data)
    model.quant_proj.set_statistics(torch.cat(cache_features(model, records)))
    return data, model, records


def test_eval_reports_every_figure_and_the_judge_ceiling(world):
    data, model, records = world
    result = evaluate_vision(model, data)
    levels = model.config.levels
    assert result["n"] == len(records)
    for key in ("no_refine", "refine", "refine_temperature_0"):
        assert set(result[key]) == {"psnr", "ssim", "high_frequency_energy"}
    assert len(result["codebook_usage"]) == len(result["perplexity"]) == levels
    assert all(0 < u <= 1 for u in result["codebook_usage"])
    assert -1 <= result["feature_cosine"] <= 1
    assert result["tokens_per_image"] > 0 and result["compression_ratio"] > 1
    assert result["images_per_second"] > 0
    # The judge parses every generated original exactly; an untrained decoder's images are gray noise.
    assert result["judge_scene_accuracy_original"] == 1.0
    assert result["judge"]["original"]["exact_scene"] == 1.0
    signs = sum(r.row["scene"]["sign"] is not None for r in records)
    assert signs > 0, "the fixture should hold at least one sign"
    assert result["judge"]["original"]["signs"] == signs
    assert result["judge"]["original"]["signs_found"] == result["judge"]["original"]["signs_read"] == signs
    assert result["judge"]["original"]["geneval"]["overall"] == 1.0
    for name in ("reconstructed", "reconstructed_no_refine", "reconstructed_refine_temperature_0"):
        assert result[f"judge_scene_accuracy_{name}"] == result["judge"][name]["exact_scene"]


def test_judge_report_counts_lost_signs_and_objects(world):
    _, model, records = world
    originals = [np.asarray(r.rgb) for r in records]
    blank = [np.full_like(o, 128) for o in originals]  # a plain gray image: no object, no sign
    report = judge_report(records, blank)
    assert report["exact_scene"] == 0.0
    assert report["signs"] > 0 and report["signs_found"] == report["signs_read"] == 0
    assert report["geneval"]["object"] == report["geneval"]["overall"] == 0.0
    # An image with its sign's plate painted over loses the sign and only the sign.
    i = next(i for i, r in enumerate(records) if r.row["scene"]["sign"] is not None)
    x0, y0, x1, y1 = records[i].row["scene"]["sign"]["box"]
    painted = [o.copy() for o in originals]
    painted[i][y0:y1, x0:x1] = 128
    report = judge_report(records, painted)
    assert report["signs_found"] == report["signs"] - 1
    assert report["exact_scene"] == (len(records) - 1) / len(records)
    assert report["geneval"]["overall"] == 1.0  # GenEval scores objects; the sign is not one
