"""Dense scene labels: every label agrees with the rendered pixel under it, characters come in reading
order, cell fractions are exact fractions in raster order, and bad input is refused."""

import dataclasses

import numpy as np
import pytest

from dina.data.shapes.labels import (
    CELL_CLASSES,
    CELL_GROUPS,
    FIRST_CHAR,
    PLATE,
    cell_fractions,
    class_group,
    label_map,
)
from dina.data.shapes.render import SIGN_INK, SIGN_PLATE, render
from dina.data.shapes.sample import sample_scene
from dina.data.shapes.scene import PALETTE, SHAPES, Scene, Sign
from dina.errors import BadArgument


def _scene_with_sign(seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    for _ in range(200):
        scene = sample_scene(rng)
        if scene.sign is not None and scene.objects:
            return scene
    raise AssertionError("no scene with a sign and shapes in 200 draws")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_label_matches_the_rendered_pixel(seed):
    scene = _scene_with_sign(seed)
    rgb, labels = render(scene).astype(int), label_map(scene)
    assert labels.shape == rgb.shape[:2]
    for obj in scene.objects:  # shape pixels carry exactly their palette color (no anti-aliasing)
        where = labels == CELL_CLASSES.index(obj.shape)
        assert where.any()
    shape_px = (labels >= CELL_CLASSES.index(SHAPES[0])) & (labels < FIRST_CHAR)
    colors = {tuple(c) for c in rgb[shape_px]}
    assert colors <= {PALETTE[o.color] for o in scene.objects}
    # text is anti-aliased: ink coverage above one half is a character, at most one half is plate
    middle = (SIGN_PLATE[0] + SIGN_INK[0]) / 2
    assert (rgb[labels >= FIRST_CHAR] < middle + 1).all()
    assert (rgb[labels == PLATE] > middle - 1).all()
    x0, y0, x1, y1 = scene.sign.box
    inside = np.zeros_like(labels, dtype=bool)
    inside[y0:y1, x0:x1] = True
    assert ((labels == PLATE) | (labels >= FIRST_CHAR))[inside].all()
    assert not ((labels == PLATE) | (labels >= FIRST_CHAR))[~inside].any()


def test_characters_are_labelled_in_reading_order():
    scene = _scene_with_sign(0)
    scene = dataclasses.replace(scene, sign=dataclasses.replace(scene.sign, text="BIKE"))
    labels = label_map(scene)
    centres = []
    for char in "BIKE":
        _, xs = np.nonzero(labels == FIRST_CHAR + CELL_CLASSES[FIRST_CHAR:].index(char))
        assert len(xs) > 20, char
        centres.append(xs.mean())
    assert centres == sorted(centres)


def test_cell_fractions_are_exact_and_in_raster_order():
    labels = np.zeros((56, 84), dtype=np.int64)  # 2 x 3 tokens
    labels[28:35, 35:42] = PLATE  # token (1, 1), cell (0, 1) of its 4 x 4 cells
    labels[0:14, 0:28] = 2  # token (0, 0), its top two cell rows
    frac = cell_fractions(labels, cells=4)
    assert frac.shape == (6, 16, len(CELL_CLASSES))
    np.testing.assert_allclose(frac.sum(-1), 1.0)
    assert frac[4, 1, PLATE] == 1.0 and frac[4, 0, PLATE] == 0.0 and frac[4, 5, PLATE] == 0.0
    np.testing.assert_array_equal(frac[0, :8, 2], 1.0)
    np.testing.assert_array_equal(frac[0, 8:, 0], 1.0)
    assert frac[[1, 2, 3, 5], :, 0].min() == 1.0


def test_class_groups():
    ids = np.array([0, PLATE, CELL_CLASSES.index("star"), FIRST_CHAR, len(CELL_CLASSES) - 1])
    assert [CELL_GROUPS[g] for g in class_group(ids)] == ["background", "plate", "shape", "character", "character"]


def test_bad_input_is_refused():
    with pytest.raises(BadArgument, match="28-px tokens"):
        cell_fractions(np.zeros((30, 56), dtype=np.int64))
    scene = _scene_with_sign(0)
    with pytest.raises(BadArgument, match="outside A-Z0-9"):
        label_map(dataclasses.replace(scene, sign=dataclasses.replace(scene.sign, text="HI!")))
    with pytest.raises(BadArgument, match="without a box"):
        label_map(dataclasses.replace(scene, sign=Sign(text="HI", region="top", box=None, font_px=30)))
