"""`dina vision train|encode|decode|eval|study`: dNaViT from the command line."""

from __future__ import annotations

import argparse
import json

from dina.cli.args import add_training_arguments, non_negative_float, positive_int, run_training


def _train(args: argparse.Namespace) -> int:
    from dina.presets import get_preset
    from dina.vision.train import VisionTrainPlan, train_vision

    return run_training(args, train_vision, get_preset(args.preset).vision, VisionTrainPlan(seed=args.seed))


def _encode(args: argparse.Namespace) -> int:
    from dina.io.images import load_image
    from dina.vision.tokenizer import VisionTokenizer

    model = VisionTokenizer.from_pretrained(args.tokenizer)
    codes = model.encode([load_image(p) for p in args.images])
    codes.save(args.out)
    grids = ", ".join(f"{c.shape[0]}x{c.shape[1]}x{c.shape[2]}" for c in codes.codes)
    print(f"encoded {len(codes.codes)} image(s) ({grids}) -> {args.out}")
    return 0


def _decode(args: argparse.Namespace) -> int:
    from dina.io.atomic import ensure_dir
    from dina.io.images import save_png
    from dina.vision.tokenizer import VisionCodes, VisionTokenizer

    model = VisionTokenizer.from_pretrained(args.tokenizer)
    codes = VisionCodes.load(args.codes)
    chosen = {} if args.temperature is None else {"temperature": args.temperature}
    images = model.decode(codes, refine=not args.no_refine, seed=args.seed, **chosen)
    out = ensure_dir(args.out)
    for i, image in enumerate(images):
        save_png(out / f"{i:04d}.png", image)
    print(f"decoded {len(images)} image(s) -> {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from dina.io.atomic import write_json
    from dina.vision.evaluate import evaluate_vision
    from dina.vision.tokenizer import VisionTokenizer

    result = evaluate_vision(VisionTokenizer.from_pretrained(args.tokenizer), args.images, limit=args.limit)
    write_json(args.json, result)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}))
    return 0


def _study(args: argparse.Namespace) -> int:
    from dina.vision.study import run_study

    result = run_study(
        args.name,
        out=args.out,
        data=args.data,
        val=args.val,
        tokenizer=args.tokenizer,
        steps=args.steps,
        seed=args.seed,
    )
    print(json.dumps(result["summary"]))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("vision", help="dNaViT: train, encode, decode, evaluate, study")
    vsub = parser.add_subparsers(dest="vision_command", required=True)

    p = vsub.add_parser("train", help="train SAE -> RVQ -> pixel decoder -> refiner")
    add_training_arguments(p, "ShapesWorld directory or manifest")
    p.set_defaults(func=_train)

    p = vsub.add_parser("encode", help="images -> codes (.safetensors)")
    p.add_argument("images", nargs="+")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_encode)

    p = vsub.add_parser("decode", help="codes -> PNG images")
    p.add_argument("codes")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--no-refine", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--temperature",
        type=non_negative_float,
        help="the refiner's start-noise temperature (default: VisionTokenizer.decode's, 0 = deterministic)",
    )
    p.set_defaults(func=_decode)

    p = vsub.add_parser("eval", help="reconstruction, codebook and semantic-completeness figures")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--images", required=True, help="manifest, ShapesWorld directory or folder of images")
    p.add_argument("--json", required=True)
    p.add_argument("--limit", type=positive_int)
    p.set_defaults(func=_eval)

    p = vsub.add_parser("study", help="the report's claims at small scale")
    p.add_argument("name", choices=("rvq-depth", "random-encoder", "scene-depth", "qa", "tokens"))
    p.add_argument("--out", required=True)
    p.add_argument(
        "--tokenizer",
        default="runs/vision/tokenizer",
        help="a trained tokenizer (its SAE is studied); qa also reads its run: RUN/vocab.json, RUN/ckpt/sae",
    )
    p.add_argument("--data", required=True, help="ShapesWorld training images (directory or manifest; qa reads none)")
    p.add_argument("--val", required=True, help="held-out ShapesWorld images")
    p.add_argument("--steps", type=positive_int, default=300, help="training steps of each variant")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_study)
