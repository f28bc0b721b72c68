"""Sampling a random ShapesWorld scene from a numpy Generator (all randomness flows from it).

Layout rules that keep every scene parseable from pixels:
- one thing (object or sign) per grid cell, the centre of its box at least `CENTER_MARGIN`
  pixels inside the cell, so blur cannot move it across a border;
- any two boxes apart by `GAP` pixels along at least one axis, so no two shapes touch;
- objects are at least 28 px across (`size_px`); the sign's capital letters are at least
  22 px tall.
On small images (a 56 px side has cells of 18.7 px) fewer cells can hold a 28 px object;
placement is tried in a random order of free cells and an object that fits nowhere is
dropped, so a 56 x 56 image holds a single object and never a sign.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from PIL import ImageFont

from dina.data.shapes.scene import (
    BACKGROUNDS,
    MAX_ASPECT,
    MAX_SIDE,
    MIN_SIDE,
    PALETTE,
    REGIONS,
    SHAPES,
    SIGN_WORDS,
    SIZES,
    TOKEN_PX,
    Background,
    Box,
    Scene,
    ShapeObject,
    Sign,
    region_cell,
    size_px,
)

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CENTER_MARGIN = 3  # px between a box centre and its cell's border
GAP = 6  # px between boxes along at least one axis
SIGN_PAD = 8  # px of white plate around the word
SIGN_FONT_PX = (30, 40)
SIGN_PROBABILITY = 0.4
MAX_OBJECTS = 4


@cache
def sign_font(font_px: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans Bold at `font_px` (cached: loading a font costs more than drawing with it)."""
    return ImageFont.truetype(FONT_PATH, font_px)


def sign_extent(text: str, font_px: int) -> tuple[int, int]:
    """(width, height) of the plate for `text`: the word's ink box plus `SIGN_PAD` each side."""
    x0, y0, x1, y1 = sign_font(font_px).getbbox(text)
    return int(x1 - x0) + 2 * SIGN_PAD, int(y1 - y0) + 2 * SIGN_PAD


def sample_image_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height): multiples of 28 in [56, 448] with aspect ratio within [1/4, 4]."""
    lo_k, hi_k = MIN_SIDE // TOKEN_PX, MAX_SIDE // TOKEN_PX
    kw = int(rng.integers(lo_k, hi_k + 1))
    kh = int(rng.integers(max(lo_k, math.ceil(kw / MAX_ASPECT)), min(hi_k, MAX_ASPECT * kw) + 1))
    return kw * TOKEN_PX, kh * TOKEN_PX


def _axis_starts(band: int, extent: int, length: int) -> tuple[int, int] | None:
    """Range [lo, hi] of box starts along one axis that keep the box inside the image and
    its centre at least CENTER_MARGIN inside `band` (0, 1, 2); None if there is none."""
    c_lo = band * length / 3 + CENTER_MARGIN
    c_hi = (band + 1) * length / 3 - CENTER_MARGIN
    lo = max(0, math.ceil(c_lo - extent / 2))
    hi = min(length - extent, math.floor(c_hi - extent / 2))
    return (lo, hi) if lo <= hi else None


def _apart(a: Box, b: Box) -> bool:
    return a[2] + GAP <= b[0] or b[2] + GAP <= a[0] or a[3] + GAP <= b[1] or b[3] + GAP <= a[1]


def _place(
    rng: np.random.Generator, region: str, w: int, h: int, width: int, height: int, taken: list[Box]
) -> Box | None:
    """A random box of size w x h in `region`, apart from every box in `taken`, or None."""
    row, col = region_cell(region)
    xs, ys = _axis_starts(col, w, width), _axis_starts(row, h, height)
    if xs is None or ys is None:
        return None
    for _ in range(8):
        x0, y0 = int(rng.integers(xs[0], xs[1] + 1)), int(rng.integers(ys[0], ys[1] + 1))
        box = (x0, y0, x0 + w, y0 + h)
        if all(_apart(box, t) for t in taken):
            return box
    return None


def _sample_sign(rng: np.random.Generator, width: int, height: int, free: list[str]) -> Sign | None:
    text = SIGN_WORDS[int(rng.integers(len(SIGN_WORDS)))]
    font_px = int(rng.integers(SIGN_FONT_PX[0], SIGN_FONT_PX[1] + 1))
    w, h = sign_extent(text, font_px)
    for region in free:
        box = _place(rng, region, w, h, width, height, [])
        if box is not None:
            return Sign(text=text, region=region, box=box, font_px=font_px)
    return None


def _sample_objects(
    rng: np.random.Generator, width: int, height: int, free: list[str], taken: list[Box]
) -> list[ShapeObject]:
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    objects: list[ShapeObject] = []
    names: set[tuple[str, str]] = set()
    for _ in range(n):
        shape, color = SHAPES[int(rng.integers(len(SHAPES)))], list(PALETTE)[int(rng.integers(len(PALETTE)))]
        if (shape, color) in names:  # keep "the red star" unambiguous in questions
            continue
        size = SIZES[int(rng.integers(len(SIZES)))]
        side = size_px(size, width, height)
        for region in list(free):
            box = _place(rng, region, side, side, width, height, taken)
            if box is not None:
                objects.append(ShapeObject(shape=shape, color=color, size=size, region=region, box=box))
                names.add((shape, color))
                free.remove(region)
                taken.append(box)
                break
    return objects


def _gray(rng: np.random.Generator) -> tuple[int, int, int]:
    level = int(rng.integers(110, 171))
    tint = rng.integers(-7, 8, size=3)  # keeps every channel within 10 of the mean
    return tuple(int(level + t) for t in tint)  # type: ignore[return-value]


def sample_background(rng: np.random.Generator) -> Background:
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    if kind == "gradient":
        direction = ("horizontal", "vertical", "diagonal")[int(rng.integers(3))]
        return Background(kind=kind, colors=(_gray(rng), _gray(rng)), direction=direction)
    if kind == "noisy":
        return Background(
            kind=kind, colors=(_gray(rng),), noise=int(rng.integers(3, 9)), noise_seed=int(rng.integers(2**31))
        )
    return Background(kind=kind, colors=(_gray(rng),))


def sample_scene(rng: np.random.Generator) -> Scene:
    """A random scene: size, background, an optional sign, then 1-4 objects in free cells."""
    while True:
        width, height = sample_image_size(rng)
        background = sample_background(rng)
        free = [REGIONS[i] for i in rng.permutation(len(REGIONS))]
        sign = _sample_sign(rng, width, height, free) if rng.random() < SIGN_PROBABILITY else None
        taken: list[Box] = []
        if sign is not None:
            free.remove(sign.region)
            taken.append(sign.box)  # type: ignore[arg-type]
        objects = _sample_objects(rng, width, height, free, taken)
        if objects:
            return Scene(width=width, height=height, objects=tuple(objects), sign=sign, background=background)
