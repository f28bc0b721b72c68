"""Painting a scene: background, then hard-edged shapes, then the sign. Scene in, (H, W, 3) uint8 out.

Shapes are drawn without anti-aliasing so that every object pixel is exactly its palette
color; the judge is tested separately on blurred images, which stand in for the soft
edges a generative model paints. Each shape fills its box edge to edge along its widest
axis (the star is a little shorter than wide and is centred vertically), so the box the
judge measures is the box that was drawn.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from dina.data.shapes.sample import SIGN_PAD, sign_font
from dina.data.shapes.scene import PALETTE, Background, Box, Scene, ShapeObject, Sign

SIGN_PLATE = (246, 246, 246)
SIGN_INK = (20, 20, 20)
STAR_INNER = 0.45  # inner / outer radius of the five-pointed star
CROSS_ARM = 0.36  # arm thickness / side of the cross


def render_background(bg: Background, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8: a plain color, a two-color linear gradient, or a color plus uniform noise."""
    first = np.array(bg.colors[0], dtype=np.float32)
    if bg.kind == "gradient":
        last = np.array(bg.colors[-1], dtype=np.float32)
        ys, xs = np.linspace(0, 1, height, dtype=np.float32), np.linspace(0, 1, width, dtype=np.float32)
        if bg.direction == "horizontal":
            t_HW = np.broadcast_to(xs[None, :], (height, width))
        elif bg.direction == "vertical":
            t_HW = np.broadcast_to(ys[:, None], (height, width))
        else:
            t_HW = (xs[None, :] + ys[:, None]) / np.float32(2)
        rgb = first + t_HW[..., None] * (last - first)
        return np.round(rgb).astype(np.uint8)
    rgb = np.empty((height, width, 3), dtype=np.int16)
    rgb[:] = first.astype(np.int16)
    if bg.kind == "noisy" and bg.noise > 0:
        rng = np.random.default_rng(bg.noise_seed)
        rgb += rng.integers(-bg.noise, bg.noise + 1, size=(height, width, 1), dtype=np.int16)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _star_points(box: Box) -> list[tuple[float, float]]:
    """Ten vertices of a point-up five-pointed star spanning the box's width, centred vertically."""
    unit = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else STAR_INNER
        a = -math.pi / 2 + k * math.pi / 5
        unit.append((r * math.cos(a), r * math.sin(a)))
    ux = [p[0] for p in unit]
    uy = [p[1] for p in unit]
    span = box[2] - box[0] - 1
    scale = span / (max(ux) - min(ux))
    top = box[1] + ((box[3] - box[1] - 1) - scale * (max(uy) - min(uy))) / 2
    return [(box[0] + (x - min(ux)) * scale, top + (y - min(uy)) * scale) for x, y in unit]


def draw_shape(draw: ImageDraw.ImageDraw, obj: ShapeObject) -> None:
    """Draw one object inside its box (end-exclusive, so the last pixel is x1 - 1)."""
    x0, y0, x1, y1 = obj.box  # type: ignore[misc]
    color = PALETTE[obj.color]
    side = x1 - x0
    if obj.shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=color)
    elif obj.shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=color)
    elif obj.shape == "triangle":
        draw.polygon([(x0 + (side - 1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=color)
    elif obj.shape == "star":
        draw.polygon(_star_points(obj.box), fill=color)  # type: ignore[arg-type]
    elif obj.shape == "cross":
        arm = round(CROSS_ARM * side)
        lo = x0 + (side - arm) // 2
        top = y0 + (side - arm) // 2
        draw.rectangle((lo, y0, lo + arm - 1, y1 - 1), fill=color)
        draw.rectangle((x0, top, x1 - 1, top + arm - 1), fill=color)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")


def draw_sign(draw: ImageDraw.ImageDraw, sign: Sign) -> None:
    """A light plate filling the sign's box, with its word in dark ink SIGN_PAD px inside."""
    x0, y0, x1, y1 = sign.box  # type: ignore[misc]
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=SIGN_PLATE)
    draw.text(sign_text_origin(sign), sign.text or "", font=sign_font(sign.font_px), fill=SIGN_INK)


def sign_text_origin(sign: Sign) -> tuple[float, float]:
    """Where `draw.text` starts the word so that its ink box sits `SIGN_PAD` px inside the plate."""
    x0, y0, _, _ = sign.box  # type: ignore[misc]
    bx, by, _, _ = sign_font(sign.font_px).getbbox(sign.text or "")
    return x0 + SIGN_PAD - bx, y0 + SIGN_PAD - by


def render(scene: Scene) -> np.ndarray:
    """The scene as an (H, W, 3) uint8 RGB array; the same scene always gives the same pixels."""
    img = Image.fromarray(render_background(scene.background, scene.width, scene.height), mode="RGB")
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        if obj.box is None:
            raise ValueError(f"cannot render {obj.name} without a box")
        draw_shape(draw, obj)
    if scene.sign is not None:
        if scene.sign.box is None:
            raise ValueError("cannot render a sign without a box")
        draw_sign(draw, scene.sign)
    return np.asarray(img, dtype=np.uint8).copy()
