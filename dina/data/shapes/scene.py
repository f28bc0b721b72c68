"""The ShapesWorld scene graph: palette, shapes, regions, sizes, and the frozen dataclasses.

A scene is W x H pixels (multiples of 28, the vision token width) holding 1-4 objects
and at most one sign, each in its own cell of a 3 x 3 grid of named regions. The grid
cell of a thing is the cell holding the centre of its bounding box, so one thing per
cell makes positions unambiguous. Boxes are `(x0, y0, x1, y1)` in pixels, end-exclusive.

Colors are chosen far apart (at least 87 RGB units) and saturated, while backgrounds
are near-gray (see `background_color_ok`), so a pixel's color names itself: the judge
takes the nearest palette entry within `COLOR_MATCH_DISTANCE`. Blends of a palette color
with any background stay at least 56 units away from every other palette color, so the
soft edges of a blurred object never read as a second object.

Equality of scenes (`==`) is semantic: size, objects (shape, color, size, region) and the
sign (region, text). Boxes and the background are kept for rendering but not compared,
so a scene parsed from pixels equals the scene that was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dina.errors import BadManifest

TOKEN_PX = 28  # a vision token is 28 x 28 pixels; nothing drawn is narrower
MIN_SIDE, MAX_SIDE = 2 * TOKEN_PX, 16 * TOKEN_PX  # 56 .. 448
MAX_ASPECT = 4  # width / height within [1/4, 4]

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 135, 0),
    "yellow": (240, 220, 20),
    "green": (30, 170, 50),
    "cyan": (0, 190, 210),
    "blue": (30, 70, 220),
    "purple": (130, 40, 190),
    "magenta": (225, 30, 180),
}
COLOR_MATCH_DISTANCE = 48.0  # backgrounds (with noise) stay >= 78 away, palette entries >= 87 apart

SHAPES = ("circle", "square", "triangle", "star", "cross")
SIZES = ("small", "large")
BACKGROUNDS = ("plain", "gradient", "noisy")
SIGN_WORDS = (
    "STOP", "OPEN", "EXIT", "SALE", "CAFE", "PARK", "BANK", "HOTEL", "TAXI", "BUS", "ZOO", "SHOP",
    "TEA", "GYM", "SOUP", "MILK", "FOOD", "BOOK", "HELLO", "WIFI", "TOYS", "FISH", "BIKE", "MAP",
)  # fmt: skip

ROWS = ("top", "middle", "bottom")
COLS = ("left", "center", "right")
REGIONS = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)  # fmt: skip  (row-major: REGIONS[3 * row + col])
# How captions and speech say each region.
REGION_PHRASES: dict[str, str] = {
    "top left": "in the top left",
    "top": "at the top",
    "top right": "in the top right",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right",
}

Box = tuple[int, int, int, int]


def region_of(box: Box, width: int, height: int) -> str:
    """The region holding the centre of `box` in a `width` x `height` image."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col = min(2, int(3 * cx / width))
    row = min(2, int(3 * cy / height))
    return REGIONS[3 * row + col]


def region_cell(region: str) -> tuple[int, int]:
    """(row, col) of a named region."""
    i = REGIONS.index(region)
    return i // 3, i % 3


def size_px(size: str, width: int, height: int) -> int:
    """Side in pixels of a `size` object: "large" is 1.5x "small", and nothing is under 28 px.

    Sizes follow the smaller grid cell so that large objects still fit a cell of big images.
    """
    cell = min(width, height) / 3
    small = max(TOKEN_PX, round(0.42 * cell))
    return small if size == "small" else round(1.5 * small)


def size_threshold_px(width: int, height: int) -> float:
    """The side that separates small from large: a third of the way from small to large.

    Not half-way, because blur only shrinks a measured shape (a star loses its tips), while
    the judge's extent grows by at most a pixel.
    """
    small, large = size_px("small", width, height), size_px("large", width, height)
    return small + 0.35 * (large - small)


def background_color_ok(rgb: tuple[int, int, int]) -> bool:
    """Backgrounds are near-gray: mid brightness, each channel within 10 of the mean."""
    mean = sum(rgb) / 3
    return 100 <= mean <= 180 and all(abs(c - mean) <= 10 for c in rgb)


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise BadManifest(f"bad scene: {what}")


def _box(value: Any) -> Box | None:
    if value is None:
        return None
    _require(isinstance(value, list | tuple) and len(value) == 4, f"box {value!r} is not 4 integers")
    return tuple(int(v) for v in value)  # type: ignore[return-value]


@dataclass(frozen=True, kw_only=True)
class ShapeObject:
    """One shape: what it is, its color and size class, its region, and its box when known."""

    shape: str
    color: str
    size: str
    region: str
    box: Box | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        return {"shape": self.shape, "color": self.color, "size": self.size, "region": self.region, "box": self.box}

    @classmethod
    def from_dict(cls, d: dict) -> ShapeObject:
        _require(isinstance(d, dict), f"object {d!r} is not a mapping")
        _require(d.get("shape") in SHAPES, f"unknown shape {d.get('shape')!r}")
        _require(d.get("color") in PALETTE, f"unknown color {d.get('color')!r}")
        _require(d.get("size") in SIZES, f"unknown size {d.get('size')!r}")
        _require(d.get("region") in REGIONS, f"unknown region {d.get('region')!r}")
        return cls(shape=d["shape"], color=d["color"], size=d["size"], region=d["region"], box=_box(d.get("box")))

    @property
    def name(self) -> str:
        """E.g. "red star"."""
        return f"{self.color} {self.shape}"


@dataclass(frozen=True, kw_only=True)
class Sign:
    """A white plate with one dark word. `text` is None when the judge could not read it."""

    text: str | None
    region: str
    box: Box | None = field(default=None, compare=False)
    font_px: int = field(default=28, compare=False)

    def to_dict(self) -> dict:
        return {"text": self.text, "region": self.region, "box": self.box, "font_px": self.font_px}

    @classmethod
    def from_dict(cls, d: dict) -> Sign:
        _require(isinstance(d, dict), f"sign {d!r} is not a mapping")
        _require(d.get("text") is None or isinstance(d.get("text"), str), "sign text is not a string")
        _require(d.get("region") in REGIONS, f"unknown sign region {d.get('region')!r}")
        return cls(text=d["text"], region=d["region"], box=_box(d.get("box")), font_px=int(d.get("font_px", 28)))


@dataclass(frozen=True, kw_only=True)
class Background:
    """How the background is painted: `colors` are 1 (plain, noisy) or 2 (gradient) near-grays."""

    kind: str
    colors: tuple[tuple[int, int, int], ...]
    direction: str = "horizontal"  # gradient only: horizontal | vertical | diagonal
    noise: int = 0  # noisy only: amplitude of uniform integer noise
    noise_seed: int = 0

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "colors": [list(c) for c in self.colors],
            "direction": self.direction,
            "noise": self.noise,
            "noise_seed": self.noise_seed,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Background:
        _require(isinstance(d, dict) and d.get("kind") in BACKGROUNDS, f"bad background {d!r}")
        colors = tuple(tuple(int(v) for v in c) for c in d.get("colors", [[128, 128, 128]]))
        return cls(
            kind=d["kind"],
            colors=colors,  # type: ignore[arg-type]
            direction=d.get("direction", "horizontal"),
            noise=int(d.get("noise", 0)),
            noise_seed=int(d.get("noise_seed", 0)),
        )


PLAIN_GRAY = Background(kind="plain", colors=((128, 128, 128),))


@dataclass(frozen=True, kw_only=True)
class Scene:
    """A whole image's meaning. Objects are kept in region order (row-major), which makes
    equality independent of drawing order."""

    width: int
    height: int
    objects: tuple[ShapeObject, ...]
    sign: Sign | None = None
    background: Background = field(default=PLAIN_GRAY, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.objects, key=lambda o: (REGIONS.index(o.region), o.shape, o.color)))
        object.__setattr__(self, "objects", ordered)

    def to_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "objects": [o.to_dict() for o in self.objects],
            "sign": None if self.sign is None else self.sign.to_dict(),
            "background": self.background.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        _require(isinstance(d, dict), "scene is not a mapping")
        _require(isinstance(d.get("width"), int) and isinstance(d.get("height"), int), "width/height not integers")
        _require(isinstance(d.get("objects"), list), "objects is not a list")
        bg = d.get("background")
        return cls(
            width=d["width"],
            height=d["height"],
            objects=tuple(ShapeObject.from_dict(o) for o in d["objects"]),
            sign=None if d.get("sign") is None else Sign.from_dict(d["sign"]),
            background=PLAIN_GRAY if bg is None else Background.from_dict(bg),
        )

    def without_sign_text(self) -> Scene:
        """The same scene with the sign's text forgotten (for comparisons that skip OCR)."""
        if self.sign is None:
            return self
        sign = Sign(text=None, region=self.sign.region, box=self.sign.box, font_px=self.sign.font_px)
        return Scene(width=self.width, height=self.height, objects=self.objects, sign=sign, background=self.background)
