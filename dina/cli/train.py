"""`dina train model`: one stage of the native model's training (report Sec. 4.1.3, Table 7)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dina.cli.args import positive_int, seed_int

STAGES = ("text", "prealign", "pretrain", "sft")  # `dina.model.data.STAGES`, without importing torch here


def _model(args: argparse.Namespace) -> int:
    import torch

    from dina.model.train import default_plan, train_model
    from dina.presets import get_preset

    config = get_preset(args.preset)
    plan = default_plan(args.stage, steps=args.steps, seed=args.seed)
    overrides = {k: v for k, v in (("budget", args.budget), ("checkpoint_every", args.checkpoint_every)) if v}
    if overrides:
        import dataclasses

        plan = dataclasses.replace(plan, **overrides)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    train_model(
        args.data,
        args.out,
        config,
        plan,
        vision_tokenizer=args.vision_tokenizer,
        audio_tokenizer=args.audio_tokenizer,
        init=args.init,
        text_tokenizer_dir=args.text_tokenizer,
        resume=args.resume,
        on_missing="error" if args.strict_data else "skip",
    )
    print(f"trained {args.stage} in {time.perf_counter() - start:.0f} s -> {Path(args.out) / 'model'}")
    return 0


def register(sub) -> None:
    parser = sub.add_parser("train", help="train the native model")
    tsub = parser.add_subparsers(dest="train_command", required=True)
    p = tsub.add_parser("model", help="one stage (text, prealign, pretrain, sft) of the native model")
    p.add_argument("--stage", choices=STAGES, required=True)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--vision-tokenizer", required=True, help="a trained vision tokenizer directory")
    p.add_argument("--audio-tokenizer", required=True, help="a trained audio tokenizer directory")
    p.add_argument("--data", nargs="+", required=True, help="ShapesWorld and SpeechWorld directories (manifest.jsonl)")
    p.add_argument("--out", required=True)
    p.add_argument("--init", help="start from this earlier run's model (and its text tokenizer)")
    p.add_argument("--text-tokenizer", help="a directory with a tokenizer.json (default: a BPE trained on the data)")
    p.add_argument("--steps", type=positive_int)
    p.add_argument("--budget", type=positive_int, help="tokens packed into each step (default 1024)")
    p.add_argument("--checkpoint-every", type=positive_int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--strict-data", action="store_true", help="stop on a missing image or clip instead of skipping it")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=positive_int, default=2)
    p.set_defaults(func=_model)
