"""`dina vision eval`'s figures: every key the issue names, the judge's ceiling, and the judge report."""

import numpy as np

from dina.vision.evaluate import evaluate_vision, judge_report


def test_eval_reports_every_figure_and_the_judge_ceiling(shapes_world):
    data, model, records = shapes_world
    result = evaluate_vision(model, data)
    levels = model.config.levels
    assert result["n"] == len(records)
    for key in ("no_refine", "refine", "refine_temperature_1"):
        assert set(result[key]) == {"psnr", "ssim", "high_frequency_energy"}
    assert len(result["codebook_usage"]) == len(result["perplexity"]) == levels
    assert all(0 < u <= 1 for u in result["codebook_usage"])
    assert -1 <= result["feature_cosine"] <= 1
    assert result["tokens_per_image"] > 0 and result["compression_ratio"] > 1
    assert result["images_per_second"] > 0
    # The judge parses every generated original exactly; an untrained decoder's images have no known score.
    assert result["judge_scene_accuracy_original"] == 1.0
    assert result["judge"]["original"]["exact_scene"] == 1.0
    signs = sum(r.row["scene"]["sign"] is not None for r in records)
    assert signs > 0, "the fixture should hold at least one sign"
    assert result["judge"]["original"]["signs"] == signs
    assert result["judge"]["original"]["signs_found"] == result["judge"]["original"]["signs_read"] == signs
    assert result["judge"]["original"]["geneval"]["overall"] == 1.0
    for name in ("reconstructed", "reconstructed_no_refine", "reconstructed_refine_temperature_1"):
        assert result[f"judge_scene_accuracy_{name}"] == result["judge"][name]["exact_scene"]


def test_judge_report_counts_lost_signs_and_objects(shapes_world):
    _, _, records = shapes_world
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
