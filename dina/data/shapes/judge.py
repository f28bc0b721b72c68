"""The judge: recover a scene graph from pixels, and score an image against a prompt's scene.

Parsing, in the order of `parse_image`:
1. every pixel takes its nearest palette color if within `COLOR_MATCH_DISTANCE` (backgrounds
   are near-gray and never match; the blurred rim of a shape matches nothing or its own color);
2. per color, 8-connected components; blobs under `MIN_AREA` pixels or `MIN_SIDE` px are noise;
3. each component's shape is the nearest template in a descriptor space: the mask's mean over
   a 3 x 3 grid of its box, plus its solidity (area / convex hull area). Templates are the
   renderer's own shapes at several sizes, sharp and blurred, computed once;
4. the box is the component grown into nearby pixels of its color within the looser
   `LOOSE_MATCH_DISTANCE` (so blur shrinks it less); size class by the box's longer side
   against `size_threshold_px`; region by the box centre;
5. the sign is the largest near-white, near-rectangular plate; its word is read by tesseract.

Scoring follows GenEval (Ghosh et al., 2023), on a requested scene instead of a detector:
`object` (every requested shape present), `count` (as many objects as requested), `color`
(every requested color-shape pair present), `position` (every requested color-shape pair in
its region), `overall` (all four). Multiplicity counts: two requested stars need two stars.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from dina.data.shapes.ocr import normalize_text, read_word
from dina.data.shapes.render import draw_shape
from dina.data.shapes.scene import (
    COLOR_MATCH_DISTANCE,
    PALETTE,
    SHAPES,
    Box,
    Scene,
    ShapeObject,
    Sign,
    region_of,
    size_threshold_px,
)
from dina.errors import BadArgument, BadManifest
from dina.io.images import load_image
from dina.io.manifest import read_manifest

MIN_AREA = 120  # px; a 28 px star covers ~300, a blurred one ~210
MIN_SIDE = 14  # px; the longer side of a blob's box
LOOSE_MATCH_DISTANCE = 70.0  # for a shape's extent only: still below the 78 of any background
GROW_PX = 4  # how far the loose extent may reach beyond the strict mask
PLATE_MIN_LEVEL = 225  # a sign plate pixel: every channel above this ...
PLATE_MAX_CHROMA = 25  # ... and channels within this of each other
PLATE_MIN_FILL = 0.85  # plate area (holes filled) / box area
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_PALETTE_NAMES = tuple(PALETTE)
_PALETTE_K3 = np.array([PALETTE[n] for n in _PALETTE_NAMES], dtype=np.float32)


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise BadArgument(f"expected an (H, W, 3) uint8 array, got {type(rgb).__name__} {shape}")


def palette_labels(rgb_HW3: np.ndarray, max_distances: tuple[float, ...] = (COLOR_MATCH_DISTANCE,)) -> list[np.ndarray]:
    """Per distance in `max_distances`, an (H, W) int map: index into PALETTE of each pixel's
    nearest color, or -1 where that color is farther than the distance."""
    x_HW3 = rgb_HW3.astype(np.float32)
    # |x - p|^2 = |x|^2 - 2 x.p + |p|^2, without an (H, W, K, 3) temporary.
    d2_HWK = (x_HW3**2).sum(-1, keepdims=True) - 2 * x_HW3 @ _PALETTE_K3.T + (_PALETTE_K3**2).sum(-1)
    nearest_HW = d2_HWK.argmin(-1)
    d2_HW = np.take_along_axis(d2_HWK, nearest_HW[..., None], -1)[..., 0]
    return [np.where(d2_HW < d**2, nearest_HW, -1) for d in max_distances]


def shape_descriptor(mask_hw: np.ndarray) -> np.ndarray:
    """(10,) float: the mask's mean over a 3 x 3 grid of its box, then its solidity."""
    grid = Image.fromarray(mask_hw.astype(np.float32), mode="F").resize((3, 3), Image.Resampling.BOX)
    padded = np.pad(mask_hw, 1)
    edge = padded & ~ndimage.binary_erosion(padded)
    ys, xs = np.nonzero(edge)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    try:
        solidity = mask_hw.sum() / ConvexHull(corners).volume
    except QhullError:  # a degenerate (one-line) blob
        solidity = 1.0
    return np.append(np.asarray(grid, dtype=np.float32).ravel(), solidity)


@cache
def _templates() -> tuple[np.ndarray, tuple[str, ...]]:
    """(N, 10) descriptors of rendered shapes at several sizes and blurs, and their shape names."""
    descs, names = [], []
    for shape in SHAPES:
        for side in (28, 36, 48, 64, 96):
            for blur in (0.0, 1.0, 1.6):
                img = Image.new("RGB", (side + 16, side + 16), (128, 128, 128))
                obj = ShapeObject(
                    shape=shape, color="red", size="small", region="center", box=(8, 8, 8 + side, 8 + side)
                )
                draw_shape(ImageDraw.Draw(img), obj)
                if blur:
                    img = img.filter(ImageFilter.GaussianBlur(blur))
                mask = palette_labels(np.asarray(img))[0] == _PALETTE_NAMES.index("red")
                sl = ndimage.find_objects(mask.astype(np.int32))[0]
                descs.append(shape_descriptor(mask[sl]))
                names.append(shape)
    return np.stack(descs), tuple(names)


def classify_shape(mask_hw: np.ndarray) -> str:
    """The name of the template shape nearest to a component cropped to its box."""
    descs, names = _templates()
    return names[int(np.linalg.norm(descs - shape_descriptor(mask_hw), axis=1).argmin())]


def _extent(comp_HW: np.ndarray, loose_HW: np.ndarray, sl: tuple[slice, slice]) -> Box:
    """Box of a component grown into the adjacent pixels of its color within `LOOSE_MATCH_DISTANCE`.

    Blur shaves a shape's thin parts (a star's tips) out of the strict mask; the loose one
    reaches about the half-way contour of the blurred edge, i.e. where the sharp edge was.
    """
    y0, x0 = max(0, sl[0].start - GROW_PX), max(0, sl[1].start - GROW_PX)
    window = (slice(y0, sl[0].stop + GROW_PX), slice(x0, sl[1].stop + GROW_PX))
    grown = ndimage.binary_propagation(comp_HW[window], mask=loose_HW[window] | comp_HW[window])
    ys, xs = np.nonzero(grown)
    return (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)


def _components(labels_HW: np.ndarray, loose_HW: np.ndarray) -> list[tuple[str, Box, np.ndarray]]:
    """(color, box, mask cropped to its strict box) of every blob large enough to be an object."""
    found = []
    for k in np.unique(labels_HW):
        if k < 0:
            continue
        comp_HW, n = ndimage.label(labels_HW == k, structure=EIGHT_CONNECTED)
        areas = np.bincount(comp_HW.ravel(), minlength=n + 1)
        for i, sl in enumerate(ndimage.find_objects(comp_HW), start=1):
            h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
            if areas[i] < MIN_AREA or max(h, w) < MIN_SIDE:
                continue
            box = _extent(comp_HW == i, loose_HW == k, sl)
            found.append((_PALETTE_NAMES[int(k)], box, comp_HW[sl] == i))
    return found


def _find_plate(rgb_HW3: np.ndarray) -> Box | None:
    """The box of the largest near-white, near-rectangular region, or None."""
    lo, hi = rgb_HW3.min(-1), rgb_HW3.max(-1)
    plate_HW = ndimage.binary_fill_holes((lo > PLATE_MIN_LEVEL) & (hi.astype(np.int16) - lo < PLATE_MAX_CHROMA))
    comp_HW, n = ndimage.label(plate_HW, structure=EIGHT_CONNECTED)
    if n == 0:
        return None
    areas = np.bincount(comp_HW.ravel(), minlength=n + 1)
    best, best_area = None, 0
    for i, sl in enumerate(ndimage.find_objects(comp_HW), start=1):
        h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        if h >= 20 and w >= 28 and areas[i] >= PLATE_MIN_FILL * h * w and areas[i] > best_area:
            best, best_area = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop), areas[i]
    return best


def parse_image(rgb: np.ndarray, read_text: bool = True) -> Scene:
    """The scene seen in an (H, W, 3) uint8 image. The background is not recovered (left plain gray).

    With `read_text`, a sign's word is read with tesseract (`MissingDependency` if a sign is
    found and tesseract is missing); without, the sign's text is None.
    """
    _check_rgb(rgb)
    height, width = rgb.shape[:2]
    threshold = size_threshold_px(width, height)
    objects = []
    strict_HW, loose_HW = palette_labels(rgb, (COLOR_MATCH_DISTANCE, LOOSE_MATCH_DISTANCE))
    for color, box, mask in _components(strict_HW, loose_HW):
        size = "large" if max(box[2] - box[0], box[3] - box[1]) >= threshold else "small"
        region = region_of(box, width, height)
        objects.append(ShapeObject(shape=classify_shape(mask), color=color, size=size, region=region, box=box))
    sign = None
    plate = _find_plate(rgb)
    if plate is not None:
        text = read_word(rgb[plate[1] : plate[3], plate[0] : plate[2]]) if read_text else None
        sign = Sign(text=text, region=region_of(plate, width, height), box=plate)
    return Scene(width=width, height=height, objects=tuple(objects), sign=sign)


def _contains(have: Counter, want: Counter) -> bool:
    return all(have[key] >= n for key, n in want.items())


def score_scene(parsed: Scene, requested: Scene) -> dict[str, float]:
    """GenEval categories (1.0 holds, 0.0 fails) of a parsed scene against a requested one."""
    got, want = parsed.objects, requested.objects
    scores = {
        "object": _contains(Counter(o.shape for o in got), Counter(o.shape for o in want)),
        "count": len(got) == len(want),
        "color": _contains(Counter((o.color, o.shape) for o in got), Counter((o.color, o.shape) for o in want)),
        "position": _contains(
            Counter((o.color, o.shape, o.region) for o in got), Counter((o.color, o.shape, o.region) for o in want)
        ),
    }
    scores["overall"] = all(scores.values())
    return {k: float(v) for k, v in scores.items()}


def score_image(rgb: np.ndarray, scene_requested: Scene) -> dict[str, float]:
    """GenEval categories of an (H, W, 3) uint8 image against the scene a prompt asked for."""
    return score_scene(parse_image(rgb, read_text=False), scene_requested)


def _image_path(row_path: str, base: Path, images_dir: Path | None) -> Path:
    """`base / row_path`, falling back to `images_dir / basename` for flat image folders."""
    path = base / row_path
    if not path.exists() and images_dir is not None and (images_dir / Path(row_path).name).exists():
        return images_dir / Path(row_path).name
    return path


def _row_scene(row: dict, index: int, manifest: Path) -> Scene:
    try:
        return Scene.from_dict(row["scene"])
    except (BadManifest, KeyError, TypeError, ValueError) as e:
        raise BadManifest(f"{manifest}, entry {index + 1}: {e}") from e


def judge_images(scenes: Iterable[Scene], images: Iterable[np.ndarray], read_signs: bool = True) -> dict:
    """Parse every image and compare it with its scene (the two iterables pair up one to one).

    Returns n, exact_scene (parsed == requested, sign text included when `read_signs`), the
    GenEval categories' means (`geneval`, with "overall"), signs (scenes with a sign), and how
    many of those plates were found and, when `read_signs`, read exactly (signs_read, else None).
    """
    n, exact, signs, found, read = 0, 0, 0, 0, 0
    totals: Counter = Counter()
    for requested, rgb in zip(scenes, images, strict=True):
        parsed = parse_image(rgb, read_text=read_signs and requested.sign is not None)
        n += 1
        totals.update(score_scene(parsed, requested))
        if read_signs:
            exact += parsed == requested
        else:
            exact += parsed.without_sign_text() == requested.without_sign_text()
        if requested.sign is not None:
            signs += 1
            found += parsed.sign is not None
            read += parsed.sign is not None and parsed.sign.text == normalize_text(requested.sign.text or "")
    if n == 0:
        raise BadArgument("no images to judge")
    return {
        "n": n,
        "exact_scene": exact / n,
        "geneval": {k: totals[k] / n for k in ("object", "count", "color", "position", "overall")},
        "signs": signs,
        "signs_found": found,
        "signs_read": read if read_signs else None,
    }


def judge_manifest(
    manifest_path: str | os.PathLike, images_dir: str | os.PathLike | None = None, read_signs: bool = True
) -> dict:
    """`judge_images` over the rows of a manifest (images loaded one at a time).

    Returns n, exact_scene_accuracy, per-category GenEval means, geneval_overall, and
    sign_accuracy (fraction of signs whose word was read exactly; None when no sign was read).
    """
    manifest = Path(manifest_path)
    rows = read_manifest(manifest, required=("path", "scene"))
    base = Path(images_dir) if images_dir is not None else manifest.parent
    scenes = [_row_scene(row, index, manifest) for index, row in enumerate(rows)]
    images = (load_image(_image_path(str(row["path"]), base, None if images_dir is None else base)) for row in rows)
    judged = judge_images(scenes, images, read_signs=read_signs)
    geneval = judged["geneval"]
    return {
        "n": judged["n"],
        "exact_scene_accuracy": judged["exact_scene"],
        "geneval": {k: geneval[k] for k in ("object", "count", "color", "position")},
        "geneval_overall": geneval["overall"],
        "sign_accuracy": judged["signs_read"] / judged["signs"] if read_signs and judged["signs"] else None,
    }
