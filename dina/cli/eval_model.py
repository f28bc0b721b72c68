"""`dina eval model`: a trained native model judged on held-out ShapesWorld and SpeechWorld rows
(`dina.inference.evaluate`; report Sec. 5 at the scale of the worlds, Sec. 3.2.4)."""

from __future__ import annotations

import argparse
import json

from dina.cli.args import non_negative_float, positive_int, seed_int


def _model(args: argparse.Namespace) -> int:
    from dina.inference.evaluate import EvalConfig, evaluate_model
    from dina.io.atomic import write_json

    config = EvalConfig(cfg_scale=args.cfg, speech_tokens=args.speech_tokens)
    result = evaluate_model(
        args.model, args.data, limit=args.limit, seed=args.seed, threads=args.threads, config=config
    )
    write_json(args.json, result)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("eval", help="evaluate a trained native model")
    esub = parser.add_subparsers(dest="eval_command", required=True)
    p = esub.add_parser("model", help="captions, VQA, OCR, GenEval, ASR, TTS and cloning on held-out data")
    p.add_argument("--model", required=True, help="a model directory (`dina train model`'s out/model)")
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        help="ShapesWorld and SpeechWorld directories (manifest.jsonl) or .jsonl files",
    )
    p.add_argument("--json", required=True, help="where to write every figure")
    p.add_argument("--limit", type=positive_int, help="rows per manifest (default: all)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--cfg", type=non_negative_float, default=1.0, help="image classifier-free guidance (1: none)")
    p.add_argument("--speech-tokens", type=positive_int, default=200, help="max new tokens of each spoken answer")
    p.set_defaults(func=_model)
