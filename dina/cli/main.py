"""Entry point of the `dina` command.

A `DinaError` (bad input) becomes one line on stderr and exit code 2, never a
traceback; any other exception is a bug and exits 1 with its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dina.errors import BadArgument, DinaError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as a `DinaError` (one line, exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        raise BadArgument(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from dina.cli import audio, bench, data, demo, eval_model, generate, train, vision

    parser = _Parser(prog="dina", description="DiNA: discrete native autoregression over text, images and speech.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    data.register(sub)
    demo.register(sub)
    vision.register(sub)
    audio.register(sub)
    train.register(sub)
    generate.register(sub)
    bench.register(sub)
    eval_model.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except DinaError as e:
        print(f"dina: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dina: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
