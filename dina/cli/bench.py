"""`dina bench ...`: benchmarks that print JSON with ratios against a peer measured in the same run."""

from __future__ import annotations

import argparse
import json

from dina.cli.args import positive_int
from dina.errors import BadArgument


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadArgument(f"expected a number of seconds, got {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise BadArgument(f"seconds must be in [0.1, 3600], got {value:g}")
    return value


def _vision(args: argparse.Namespace) -> int:
    from dina.bench.vision import bench_vision

    result = bench_vision(threads=args.threads)
    return _report(result, args.json)


def _audio(args: argparse.Namespace) -> int:
    from dina.bench.audio import bench_audio

    result = bench_audio(seconds=args.seconds, tokenizer=args.tokenizer, threads=args.threads, repeats=args.repeats)
    return _report(result, args.json)


def _train(args: argparse.Namespace) -> int:
    from dina.bench.train import bench_train

    result = bench_train(threads=args.threads, budget=args.budget, steps=args.steps, repeats=args.repeats)
    return _report(result, args.json)


def _engine(args: argparse.Namespace) -> int:
    from dina.bench.engine import bench_engine

    result = bench_engine(threads=args.threads, new_tokens=args.new_tokens, repeats=args.repeats)
    return _report(result, args.json)


def _report(result: dict, path: str | None) -> int:
    """Print the benchmark's JSON, and write it to `path` too when given."""
    from dina.io.atomic import write_json

    if path:
        write_json(path, result)
    print(json.dumps(result, indent=1))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("bench", help="benchmarks (JSON, ratios against peers measured in the same run)")
    bsub = parser.add_subparsers(dest="bench_command", required=True)
    p = bsub.add_parser("vision", help="RVQ vs vector-quantize-pytorch, packed vs padded, one-image scaling")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--threads", type=positive_int, default=2)
    p.set_defaults(func=_vision)

    p = bsub.add_parser("audio", help="audio tokenizer encode/decode × real time, first-chunk latency, RVQ vs peer")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--seconds", type=_seconds, nargs="+", default=[30.0, 10.0], help="clip lengths to time")
    p.add_argument("--tokenizer", help="a saved audio tokenizer (default: the tiny preset, untrained)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (1 on a shared machine)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed runs after a warm-up; the median is kept")
    p.set_defaults(func=_audio)

    p = bsub.add_parser("train", help="tiny training tokens/s and MFU vs this machine's matmul peak; vs a Mixtral peer")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads")
    p.add_argument("--budget", type=positive_int, default=1024, help="tokens per training step")
    p.add_argument("--steps", type=positive_int, default=5, help="training steps per timed run")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed runs after a warm-up; the median is kept")
    p.set_defaults(func=_train)

    p = bsub.add_parser("engine", help="decode tokens/s vs a Mixtral peer, image position cost, flattened levels, CFG")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads")
    p.add_argument("--new-tokens", type=positive_int, default=64, help="text tokens generated per row")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed runs after a warm-up; the median is kept")
    p.set_defaults(func=_engine)
