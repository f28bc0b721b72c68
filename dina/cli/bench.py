"""`dina bench ...`: benchmarks that print JSON with ratios against a peer measured in the same run."""

from __future__ import annotations

import argparse
import json

from dina.cli.args import positive_int


def _vision(args: argparse.Namespace) -> int:
    from dina.bench.vision import bench_vision
    from dina.io.atomic import write_json

    result = bench_vision(threads=args.threads)
    if args.json:
        write_json(args.json, result)
    print(json.dumps(result, indent=1))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("bench", help="benchmarks (JSON, ratios against peers measured in the same run)")
    bsub = parser.add_subparsers(dest="bench_command", required=True)
    p = bsub.add_parser("vision", help="RVQ vs vector-quantize-pytorch, packed vs padded, one-image scaling")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--threads", type=positive_int, default=2)
    p.set_defaults(func=_vision)
