"""ShapesWorld generation: determinism, the layout invariants, manifests, and refused arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dina.data.shapes import Scene, generate, make_example, render, sample_scene
from dina.data.shapes.sample import CENTER_MARGIN, GAP
from dina.data.shapes.scene import PALETTE, REGIONS, TOKEN_PX, background_color_ok, region_of, size_px
from dina.errors import BadArgument, BadInputFile


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path):
    a = generate(tmp_path / "a", n=12, seed=7)
    b = generate(tmp_path / "b", n=12, seed=7)
    files_a, files_b = _files(a.parent), _files(b.parent)
    assert files_a.keys() == files_b.keys() and len(files_a) == 13
    assert files_a == files_b


def test_example_is_independent_of_n_and_split_changes_the_stream(tmp_path):
    small = generate(tmp_path / "small", n=3, seed=5)
    large = generate(tmp_path / "large", n=9, seed=5)
    rows_small = small.read_text().splitlines()
    rows_large = large.read_text().splitlines()
    assert rows_large[:3] == rows_small
    assert (small.parent / "images/train_000002.png").read_bytes() == (
        large.parent / "images/train_000002.png"
    ).read_bytes()
    other = generate(tmp_path / "val", n=3, seed=5, split="val")
    scenes_train = [json.loads(r)["scene"] for r in rows_small]
    scenes_val = [json.loads(r)["scene"] for r in other.read_text().splitlines()]
    assert scenes_train != scenes_val
    assert (other.parent / "images/val_000000.png").exists()


def test_manifest_rows_hold_everything(tmp_path):
    manifest = generate(tmp_path, n=5, seed=1)
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        assert set(row) == {"path", "width", "height", "scene", "captions", "qa", "prompt"}
        assert (manifest.parent / row["path"]).is_file()
        scene = Scene.from_dict(row["scene"])
        assert (scene.width, scene.height) == (row["width"], row["height"])
        assert Scene.from_dict(scene.to_dict()) == scene
        assert len(row["captions"]) >= 3 and all(isinstance(c, str) and c for c in row["captions"])
        assert all(set(qa) == {"question", "answer", "kind"} for qa in row["qa"])
        assert row["prompt"].startswith("Draw ")


def _apart(a, b):
    return a[2] + GAP <= b[0] or b[2] + GAP <= a[0] or a[3] + GAP <= b[1] or b[3] + GAP <= a[1]


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_scene_keeps_the_layout_rules(seed):
    scene = sample_scene(np.random.default_rng(seed))
    w, h = scene.width, scene.height
    assert w % TOKEN_PX == 0 and h % TOKEN_PX == 0 and 56 <= w <= 448 and 56 <= h <= 448
    assert 1 / 4 <= w / h <= 4
    assert 1 <= len(scene.objects) <= 4
    things = [(o.region, o.box) for o in scene.objects]
    if scene.sign is not None:
        things.append((scene.sign.region, scene.sign.box))
    regions = [r for r, _ in things]
    assert len(set(regions)) == len(regions), "one thing per cell"
    for region, (x0, y0, x1, y1) in things:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert region_of((x0, y0, x1, y1), w, h) == region
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        assert min(abs(cx - k * w / 3) for k in (1, 2)) >= CENTER_MARGIN
        assert min(abs(cy - k * h / 3) for k in (1, 2)) >= CENTER_MARGIN
    for obj in scene.objects:
        side = obj.box[2] - obj.box[0]
        assert side == obj.box[3] - obj.box[1] == size_px(obj.size, w, h) >= TOKEN_PX
    for i, (_, a) in enumerate(things):
        for _, b in things[i + 1 :]:
            assert _apart(a, b)
    assert all(background_color_ok(c) for c in scene.background.colors)


def test_rendered_objects_are_at_least_a_token_wide_and_backgrounds_never_match_the_palette():
    palette = np.array(list(PALETTE.values()), dtype=np.float32)
    kinds = set()
    for index in range(40):
        scene, rgb, _ = make_example(3, "train", index)
        kinds.add(scene.background.kind)
        assert rgb.shape == (scene.height, scene.width, 3) and rgb.dtype == np.uint8
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.box
            mask = (rgb[y0:y1, x0:x1] == PALETTE[obj.color]).all(-1)
            xs = np.nonzero(mask)[1]
            assert xs.max() - xs.min() + 1 >= TOKEN_PX, f"{obj.name} narrower than a token"
        painted = np.zeros(rgb.shape[:2], dtype=bool)
        for box in [o.box for o in scene.objects] + ([scene.sign.box] if scene.sign else []):
            painted[box[1] : box[3], box[0] : box[2]] = True
        background = rgb[~painted].astype(np.float32)
        distance = np.linalg.norm(background[:, None] - palette[None], axis=-1).min()
        assert distance > 70
    assert kinds == {"plain", "gradient", "noisy"}


def test_render_is_a_pure_function_of_the_scene():
    scene, rgb, _ = make_example(11, "test", 4)
    assert np.array_equal(render(Scene.from_dict(scene.to_dict())), rgb)


def test_regions_cover_the_grid_over_many_scenes():
    seen = {o.region for i in range(150) for o in make_example(0, "val", i)[0].objects}
    assert seen == set(REGIONS)


@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_n_is_refused(tmp_path, n):
    with pytest.raises(BadArgument):
        generate(tmp_path, n=n, seed=0)


def test_bad_split_is_refused(tmp_path):
    with pytest.raises(BadArgument, match="split"):
        generate(tmp_path, n=1, seed=0, split="dev")


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(BadInputFile, match="not a directory"):
        generate(target, n=1, seed=0)
