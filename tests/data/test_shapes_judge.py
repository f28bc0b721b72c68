"""The ShapesWorld judge: it must recover the scenes it was shown, and fail the scenes it was not."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageFilter

from dina.data.shapes import Scene, generate, judge_manifest, make_example, ocr, parse_image, score_image
from dina.errors import BadArgument, BadImage, BadInputFile, BadManifest, MissingDependency

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")


def _blur(rgb, sigma):
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(sigma)))


def test_exact_scene_accuracy_on_clean_images_is_at_least_98_percent():
    right, wrong = 0, []
    for index in range(300):
        scene, rgb, _ = make_example(0, "test", index)
        parsed = parse_image(rgb, read_text=False)
        if parsed == scene.without_sign_text():
            right += 1
        else:
            wrong.append(index)
    assert right / 300 >= 0.98, f"missed scenes {wrong[:10]}"


def test_judge_survives_mild_blur_and_noise():
    # Measured: 100% of 300 scenes at Gaussian blur sigma 1.0, 1.5 and 2.0, and at sigma 1.5
    # plus Gaussian pixel noise of std 10; this checks 100 scenes at sigma 1.2 + noise std 6.
    rng = np.random.default_rng(0)
    right = 0
    for index in range(100):
        scene, rgb, _ = make_example(1, "val", index)
        noisy = np.clip(_blur(rgb, 1.2) + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
        right += parse_image(noisy, read_text=False) == scene.without_sign_text()
    assert right / 100 >= 0.97


@needs_tesseract
def test_signs_are_read_exactly():
    signs = [(s, rgb) for s, rgb, _ in (make_example(0, "train", i) for i in range(80)) if s.sign is not None]
    assert len(signs) >= 8
    for scene, rgb in signs[:10]:
        assert parse_image(rgb) == scene
        assert parse_image(_blur(rgb, 1.0)).sign.text == scene.sign.text


def _with_object(scene: Scene, index: int, **changes) -> Scene:
    objects = list(scene.objects)
    objects[index] = dataclasses.replace(objects[index], **changes)
    return dataclasses.replace(scene, objects=tuple(objects))


def _two_object_example():
    for index in range(100):
        scene, rgb, _ = make_example(4, "train", index)
        if len(scene.objects) == 2 and scene.sign is None:
            return scene, rgb
    raise AssertionError("no two-object scene in 100 examples")


def test_geneval_scores_catch_wrong_color_count_and_position():
    scene, rgb = _two_object_example()
    assert score_image(rgb, scene) == {"object": 1.0, "count": 1.0, "color": 1.0, "position": 1.0, "overall": 1.0}
    first = scene.objects[0]
    other_color = next(c for c in ("red", "blue") if c != first.color and (c, first.shape) != scene.objects[1].name)
    recolored = score_image(rgb, _with_object(scene, 0, color=other_color))
    assert recolored["color"] == 0.0 and recolored["position"] == 0.0 and recolored["overall"] == 0.0
    assert recolored["object"] == 1.0 and recolored["count"] == 1.0
    taken = {o.region for o in scene.objects}
    moved = score_image(
        rgb, _with_object(scene, 0, region=next(r for r in ("top", "bottom", "left") if r not in taken))
    )
    assert moved["position"] == 0.0 and moved["color"] == 1.0 and moved["overall"] == 0.0
    fewer = score_image(rgb, dataclasses.replace(scene, objects=scene.objects[:1]))
    assert fewer["count"] == 0.0 and fewer["object"] == 1.0 and fewer["overall"] == 0.0
    blank = np.full_like(rgb, 128)
    assert score_image(blank, scene) == {"object": 0.0, "count": 0.0, "color": 0.0, "position": 0.0, "overall": 0.0}


def test_judge_manifest_scores_a_generated_split(tmp_path):
    manifest = generate(tmp_path, n=12, seed=3, split="val")
    result = judge_manifest(manifest, read_signs=shutil.which("tesseract") is not None)
    assert result["n"] == 12
    assert result["exact_scene_accuracy"] == 1.0 and result["geneval_overall"] == 1.0
    assert result["geneval"] == {"object": 1.0, "count": 1.0, "color": 1.0, "position": 1.0}


def test_judge_manifest_finds_images_in_a_flat_directory(tmp_path):
    manifest = generate(tmp_path / "set", n=3, seed=3)
    flat = tmp_path / "flat"
    shutil.copytree(tmp_path / "set" / "images", flat)
    assert judge_manifest(manifest, images_dir=flat, read_signs=False)["exact_scene_accuracy"] == 1.0


def test_judge_manifest_with_a_mismatching_image_scores_it_down(tmp_path):
    manifest = generate(tmp_path, n=2, seed=9)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["path"] = rows[0]["path"]  # the second scene is judged on the first image
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = judge_manifest(manifest, read_signs=False)
    assert result["exact_scene_accuracy"] == 0.5


def test_malformed_manifest_line_is_named(tmp_path):
    manifest = generate(tmp_path, n=3, seed=0)
    lines = manifest.read_text().splitlines()
    lines[1] = lines[1][:40]
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadManifest, match="line 2"):
        judge_manifest(manifest)


def test_bad_scene_in_manifest_is_named(tmp_path):
    manifest = generate(tmp_path, n=2, seed=0)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["scene"]["objects"][0]["shape"] = "hexagon"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BadManifest, match=r"entry 2.*hexagon"):
        judge_manifest(manifest, read_signs=False)


def test_missing_and_truncated_images_are_dina_errors(tmp_path):
    manifest = generate(tmp_path, n=2, seed=0)
    png = tmp_path / "images" / "train_000001.png"
    png.write_bytes(png.read_bytes()[:200])
    with pytest.raises(BadImage, match=r"train_000001\.png"):
        judge_manifest(manifest, read_signs=False)
    png.unlink()
    with pytest.raises(BadInputFile, match=r"train_000001\.png"):
        judge_manifest(manifest, read_signs=False)


def test_parse_image_refuses_non_images():
    with pytest.raises(BadArgument):
        parse_image(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(BadArgument):
        parse_image(np.zeros((10, 10, 3), dtype=np.float32))


def test_missing_tesseract_is_raised_only_when_a_sign_must_be_read(monkeypatch):
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)
    with_sign = next((s, rgb) for s, rgb, _ in (make_example(0, "train", i) for i in range(80)) if s.sign is not None)
    without_sign = next((s, rgb) for s, rgb, _ in (make_example(0, "train", i) for i in range(80)) if s.sign is None)
    assert parse_image(without_sign[1]) == without_sign[0]
    assert parse_image(with_sign[1], read_text=False).sign.text is None
    with pytest.raises(MissingDependency, match="tesseract"):
        parse_image(with_sign[1])
