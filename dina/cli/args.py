"""Argument types shared by the CLI modules (they reject bad values with a `DinaError`), and the
arguments and run of the tokenizers' `train` commands."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dina.errors import BadArgument


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadArgument(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise BadArgument(f"expected a positive integer, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadArgument(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise BadArgument(f"expected a finite number >= 0, got {value}")
    return value


def seed_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadArgument(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise BadArgument(f"seed must be in [0, 2**32), got {value}")
    return value


def add_training_arguments(p: argparse.ArgumentParser, data_help: str) -> None:
    """--preset --data --out --steps --resume --seed --threads, as every `train` command takes them."""
    p.add_argument("--preset", default="tiny")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=positive_int, help="steps of every stage (default: the preset's plan)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=2)


def run_training(args: argparse.Namespace, train: Callable[..., Any], config: Any, plan: Any) -> int:
    """`train(data, out, config, plan, resume=...)` on `--threads` threads, `--steps` in every stage."""
    import torch

    if args.steps:
        plan = plan.with_steps(args.steps)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    train(args.data, args.out, config, plan, resume=args.resume)
    print(f"trained in {time.perf_counter() - start:.0f} s -> {Path(args.out) / 'tokenizer'}")
    return 0
