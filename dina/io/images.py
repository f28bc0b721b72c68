"""Loading user images: any mode in, RGB uint8 out, or a clear `BadImage`.

Accepted and normalized: grayscale, RGBA (composited on white), palette, 16-bit,
CMYK, and EXIF-rotated images (the rotation is applied). Refused: missing or
unreadable paths, truncated or non-image files, and images above `max_pixels`
(a decompression bomb is refused before its pixels are decoded).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dina.errors import BadImage, BadInputFile
from dina.io.atomic import atomic_path

MAX_PIXELS = 64 * 1024 * 1024  # 8192 x 8192


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: rescale to 8 bits by its own range, not by truncation.
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(np.round(arr / hi * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array."""
    path = Path(path)
    if not path.exists():
        raise BadInputFile(f"image {path} does not exist")
    if not path.is_file():
        raise BadInputFile(f"image {path} is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise BadImage(f"image {path} has {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
                img.load()
                rgb = _to_rgb(ImageOps.exif_transpose(img))
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage(f"image {path} exceeds the pixel limit: {e}") from e
    except UnidentifiedImageError as e:
        raise BadImage(f"{path} is not an image dina can read") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"image {path} is corrupt or truncated: {e}") from e
    return np.asarray(rgb, dtype=np.uint8).copy()


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as PNG, atomically and byte-reproducibly."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", optimize=False, compress_level=6)
