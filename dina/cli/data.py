"""`dina data ...`: the built-in worlds (ShapesWorld, SpeechWorld) and their judges."""

from __future__ import annotations


def register(sub) -> None:
    from dina.cli import data_shapes, data_speech

    parser = sub.add_parser("data", help="generate and judge the built-in worlds of data")
    data_sub = parser.add_subparsers(dest="data_command", required=True)
    data_shapes.register(data_sub)
    data_speech.register(data_sub)
    register_pack(data_sub)


def register_pack(data_sub) -> None:
    """`dina data pack`: padding with and without packing on the worlds' manifests."""
    from dina.cli.args import positive_int

    p = data_sub.add_parser("pack", help="measure the padding that packing avoids on a mixed-resolution batch")
    p.add_argument("--manifest", action="append", required=True, help="a ShapesWorld or SpeechWorld manifest")
    p.add_argument("--budget", type=positive_int, default=1024, help="tokens per packed row")
    p.add_argument("--batch-size", type=positive_int, default=16, help="documents per padded batch")
    p.add_argument("--json", help="write the statistics here")
    p.set_defaults(func=_run_pack)


def _run_pack(args) -> int:
    import json

    from dina.io.atomic import write_json
    from dina.sequence.manifests import samples_from_manifest
    from dina.sequence.packing import packing_stats

    samples = [s for path in args.manifest for s in samples_from_manifest(path)]
    stats = packing_stats([s.num_tokens for s in samples], args.budget, args.batch_size).to_dict()
    stats.update(budget=args.budget, batch_size=args.batch_size)
    if args.json:
        write_json(args.json, stats)
    print(json.dumps(stats))
    return 0
