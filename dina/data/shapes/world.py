"""Writing a ShapesWorld split: PNG images plus one JSONL manifest.

Example i of a split draws all its randomness from `SeedSequence([seed, split id, i])`, so
it is the same whatever `n` is, and the three splits draw from disjoint seed streams.
Rerunning with the same (seed, split, n) rewrites byte-identical PNGs and manifest.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dina.data.shapes.render import render
from dina.data.shapes.sample import sample_scene
from dina.data.shapes.scene import Scene
from dina.data.shapes.text import captions, prompt, qa_pairs
from dina.errors import BadArgument, BadInputFile
from dina.io.atomic import ensure_dir, write_jsonl
from dina.io.images import save_png

SPLITS = ("train", "val", "test")
MANIFEST_NAME = "manifest.jsonl"


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The Generator of example `index` of `split`; independent of how many examples are made."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def make_example(seed: int, split: str, index: int) -> tuple[Scene, np.ndarray, dict]:
    """(scene, (H, W, 3) uint8 image, manifest row without its path) of one example."""
    rng = example_rng(seed, split, index)
    scene = sample_scene(rng)
    row = {
        "width": scene.width,
        "height": scene.height,
        "scene": scene.to_dict(),
        "captions": captions(scene),
        "qa": qa_pairs(scene, rng),
        "prompt": prompt(scene),
    }
    return scene, render(scene), row


def _check_args(out_dir: Path, n: int, seed: int, split: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise BadArgument(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise BadArgument(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if split not in SPLITS:
        raise BadArgument(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputFile(f"output directory {out_dir} exists and is not a directory")


def generate(out_dir: str | os.PathLike, n: int, seed: int, split: str = "train") -> Path:
    """Write `out_dir/images/{split}_{i:06d}.png` for i < n and `out_dir/manifest.jsonl`; return the manifest.

    Each manifest row holds: path (relative to the manifest), width, height, scene, captions,
    qa ({question, answer, kind}) and prompt.
    """
    out = Path(out_dir)
    _check_args(out, n, seed, split)
    images = ensure_dir(out / "images")
    rows = []
    for index in range(n):
        _, rgb, row = make_example(seed, split, index)
        rel = f"images/{split}_{index:06d}.png"
        save_png(images / Path(rel).name, rgb)
        rows.append({"path": rel, **row})
    manifest = out / MANIFEST_NAME
    write_jsonl(manifest, rows)
    return manifest
