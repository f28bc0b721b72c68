"""Images for the vision tokenizer: a ShapesWorld directory, a manifest, or a folder of images.

Training draws batches from a seeded permutation per epoch, so the batch at step s depends
only on (seed, s): a resumed run sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dina.errors import BadInputFile
from dina.io.images import load_image
from dina.io.manifest import read_manifest

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True, kw_only=True)
class ImageRecord:
    """One image (H, W, 3) uint8 and, when it came from a manifest, its row (scene, captions, qa)."""

    rgb: np.ndarray
    path: str
    row: dict | None = None


def _manifest_of(source: Path) -> Path | None:
    if source.is_file() and source.suffix == ".jsonl":
        return source
    if source.is_dir() and (source / "manifest.jsonl").is_file():
        return source / "manifest.jsonl"
    return None


def load_images(source: str | os.PathLike, limit: int | None = None) -> list[ImageRecord]:
    """Read every image of a manifest (paths relative to it), a directory holding one, or a folder of images."""
    source = Path(source)
    if not source.exists():
        raise BadInputFile(f"{source} does not exist")
    manifest = _manifest_of(source)
    if manifest is not None:
        rows = read_manifest(manifest, required=("path",))[:limit]
        return [ImageRecord(rgb=load_image(manifest.parent / r["path"]), path=r["path"], row=r) for r in rows]
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
        if not paths:
            raise BadInputFile(f"{source} holds no manifest.jsonl and no images")
        return [ImageRecord(rgb=load_image(p), path=p.name) for p in paths]
    return [ImageRecord(rgb=load_image(source), path=source.name)]
