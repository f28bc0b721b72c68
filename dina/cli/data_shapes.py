"""`dina data shapes` (write a ShapesWorld split) and `dina data judge` (score a manifest's images)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dina.cli.args import positive_int, seed_int


def _shapes(args: argparse.Namespace) -> int:
    from dina.data.shapes import generate

    start = time.perf_counter()
    manifest = generate(args.out, n=args.n, seed=args.seed, split=args.split)
    seconds = time.perf_counter() - start
    print(f"wrote {args.n} {args.split} images and {manifest} in {seconds:.1f} s ({args.n / seconds:.0f} images/s)")
    return 0


def _judge(args: argparse.Namespace) -> int:
    from dina.data.shapes import judge_manifest
    from dina.io.atomic import write_json

    start = time.perf_counter()
    result = judge_manifest(args.manifest, images_dir=args.images, read_signs=not args.no_read_signs)
    write_json(args.json, result)
    seconds = time.perf_counter() - start
    geneval = " ".join(f"{k}={v:.3f}" for k, v in result["geneval"].items())
    sign = "unread" if result["sign_accuracy"] is None else f"{result['sign_accuracy']:.3f}"
    print(
        f"judged {result['n']} images in {seconds:.1f} s: exact scene {result['exact_scene_accuracy']:.3f}, "
        f"geneval overall {result['geneval_overall']:.3f} ({geneval}), sign {sign} -> {args.json}"
    )
    return 0


def register(data_subparsers) -> None:
    """Add the `shapes` and `judge` subcommands to the `dina data` group."""
    p = data_subparsers.add_parser("shapes", help="generate ShapesWorld images with captions, VQA and prompts")
    p.add_argument("--out", type=Path, required=True, help="output directory (images/ and manifest.jsonl)")
    p.add_argument("--n", type=positive_int, required=True, help="number of images")
    p.add_argument("--seed", type=seed_int, required=True, help="seed in [0, 2**32)")
    p.add_argument("--split", choices=("train", "val", "test"), default="train", help="seed stream (default train)")
    p.set_defaults(func=_shapes)

    p = data_subparsers.add_parser("judge", help="parse a manifest's images and score them against their scenes")
    p.add_argument("--manifest", type=Path, required=True, help="manifest.jsonl with path and scene per row")
    p.add_argument("--images", type=Path, default=None, help="image directory (default: the manifest's directory)")
    p.add_argument("--json", type=Path, required=True, help="where to write the scores as JSON")
    p.add_argument("--no-read-signs", action="store_true", help="skip tesseract; sign text is not compared")
    p.set_defaults(func=_judge)
