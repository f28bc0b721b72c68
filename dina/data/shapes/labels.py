"""What is under every pixel of a scene: background, sign plate, a shape, or one character of the sign.

Dense ground truth for probing what an image token keeps (`dina vision study tokens`). The
labels come from the renderer's own drawing code, so they match the pixels exactly: a shape
label wherever `draw_shape` paints, the plate label on the sign's box, and each character's
label on the ink that character adds to the word (drawn prefix by prefix, so kerning and
overlaps follow the font).

Cells: each 28-px token is split into `cells` × `cells` squares; a cell's target is the
fraction of its pixels in each class, and its dominant class is what a probe must name.
"""

from __future__ import annotations

import string

import numpy as np
from PIL import Image, ImageDraw

from dina.data.shapes.render import draw_shape, sign_text_origin
from dina.data.shapes.sample import sign_font
from dina.data.shapes.scene import SHAPES, TOKEN_PX, Scene
from dina.errors import BadArgument

SIGN_CHARS = string.ascii_uppercase + string.digits  # what `ocr.normalize_text` keeps
CELL_CLASSES = ("background", "plate", *SHAPES, *SIGN_CHARS)
PLATE = CELL_CLASSES.index("plate")
FIRST_CHAR = CELL_CLASSES.index(SIGN_CHARS[0])


def label_map(scene: Scene) -> np.ndarray:
    """(H, W) int64 class ids (`CELL_CLASSES`) of every pixel of `render(scene)`; later draws win, as there."""
    labels = np.zeros((scene.height, scene.width), dtype=np.int64)
    for obj in scene.objects:
        if obj.box is None:
            raise BadArgument(f"cannot label {obj.name} without a box")
        mask = Image.new("RGB", (scene.width, scene.height))
        draw_shape(ImageDraw.Draw(mask), obj)
        labels[(np.asarray(mask) != 0).any(-1)] = CELL_CLASSES.index(obj.shape)
    sign = scene.sign
    if sign is not None:
        if sign.box is None:
            raise BadArgument("cannot label a sign without a box")
        x0, y0, x1, y1 = sign.box
        labels[y0:y1, x0:x1] = PLATE
        text = sign.text or ""  # drawn as `draw_sign` draws it; a letter's class ignores its case
        bad = sorted(set(text.upper()) - set(SIGN_CHARS))
        if bad:
            raise BadArgument(f"sign text {sign.text!r} has characters outside A-Z0-9: {bad}")
        font, origin = sign_font(sign.font_px), sign_text_origin(sign)
        inked = np.zeros_like(labels, dtype=bool)
        for i, char in enumerate(text):
            prefix = Image.new("L", (scene.width, scene.height))
            ImageDraw.Draw(prefix).text(origin, text[: i + 1], font=font, fill=255)
            ink = (np.asarray(prefix) > 127) & ~inked
            labels[ink] = FIRST_CHAR + SIGN_CHARS.index(char.upper())
            inked |= ink
    return labels


def cell_fractions(labels_HW: np.ndarray, cells: int = 4, token_px: int = TOKEN_PX) -> np.ndarray:
    """(h·w, cells², K) float32: each cell's class fractions; tokens and cells in raster order."""
    H, W = labels_HW.shape
    if H % token_px or W % token_px or token_px % cells:
        raise BadArgument(f"a {H}x{W} label map does not split into {token_px}-px tokens of {cells}x{cells} cells")
    h, w, c, K = H // token_px, W // token_px, token_px // cells, len(CELL_CLASSES)
    onehot = np.eye(K, dtype=np.float32)[labels_HW]
    frac = onehot.reshape(h, cells, c, w, cells, c, K).mean(axis=(2, 5))  # (h, cells, w, cells, K)
    return frac.transpose(0, 2, 1, 3, 4).reshape(h * w, cells * cells, K)


def class_group(class_ids: np.ndarray) -> np.ndarray:
    """Class ids -> group ids 0 background, 1 plate, 2 shape, 3 character (`CELL_GROUPS`)."""
    return np.select([class_ids == 0, class_ids == PLATE, class_ids < FIRST_CHAR], [0, 1, 2], 3)


CELL_GROUPS = ("background", "plate", "shape", "character")
