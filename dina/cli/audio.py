"""`dina audio train|encode|decode|eval`: the audio tokenizer from the command line (report Sec. 2.3, 4.1.2)."""

from __future__ import annotations

import argparse
import json

from dina.cli.args import add_training_arguments, non_negative_float, positive_int, run_training
from dina.errors import BadArgument

FRONT_ENDS = ("trained", "whisper-tiny.en")  # `dina.audio.encoder.FRONT_ENDS`, without importing torch here


def _train(args: argparse.Namespace) -> int:
    from dina.audio.config import audio_tiny
    from dina.audio.train import AudioTrainPlan, train_audio
    from dina.presets import get_preset

    config = get_preset(args.preset).audio
    if args.front_end:
        if args.preset != "tiny":
            raise BadArgument("--front-end applies to the tiny preset only")
        config = audio_tiny(args.front_end)
    return run_training(args, train_audio, config, AudioTrainPlan(seed=args.seed))


def _encode(args: argparse.Namespace) -> int:
    from dina.audio.tokenizer import AudioTokenizer, save_audio_codes
    from dina.io.audio import SAMPLE_RATE, load_audio

    model = AudioTokenizer.from_pretrained(args.tokenizer)
    clips = [model.encode(load_audio(p), SAMPLE_RATE) for p in args.waves]
    save_audio_codes(args.out, clips)
    frames = ", ".join(f"{c.codes.shape[0]}x{c.codes.shape[1]}" for c in clips)
    print(f"encoded {len(clips)} clip(s) ({frames} at 12.5 Hz) -> {args.out}")
    return 0


def _decode(args: argparse.Namespace) -> int:
    from dina.audio.tokenizer import AudioTokenizer, load_audio_codes
    from dina.io.atomic import ensure_dir
    from dina.io.audio import save_wav

    model = AudioTokenizer.from_pretrained(args.tokenizer)
    clips = load_audio_codes(args.codes)
    out = ensure_dir(args.out)
    for i, codes in enumerate(clips):
        wave, sr = model.decode(
            codes, refine=args.refine, temperature=args.temperature, seed=args.seed, wave_from_mel=args.wave_from_mel
        )
        save_wav(out / f"{i:04d}.wav", wave, sr)
    print(f"decoded {len(clips)} clip(s) -> {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from dina.audio.evaluate import evaluate_audio
    from dina.audio.tokenizer import AudioTokenizer
    from dina.io.atomic import write_json

    result = evaluate_audio(
        AudioTokenizer.from_pretrained(args.tokenizer),
        args.data,
        limit=args.limit,
        judge=not args.no_judge,
        refine=args.refine,
        temperature=args.temperature,
        wave_from_mel=args.wave_from_mel,
    )
    write_json(args.json, result)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}))
    return 0


def _add_decode_options(p: argparse.ArgumentParser) -> None:
    """How codes become a wave; each default is the tokenizer's own (its config)."""
    refine = p.add_mutually_exclusive_group()
    refine.add_argument("--refine", action="store_true", default=None, help="decode with the flow mel refiner")
    refine.add_argument("--no-refine", dest="refine", action="store_false", help="decode without it")
    p.add_argument(
        "--temperature", type=non_negative_float, default=1.0, help="the refiner's start-noise scale (0: deterministic)"
    )
    p.add_argument("--wave-from-mel", choices=("vocoder", "griffin-lim"), help="the neural vocoder or Griffin-Lim")


def register(sub) -> None:
    parser = sub.add_parser("audio", help="audio tokenizer: train, encode, decode, evaluate")
    asub = parser.add_subparsers(dest="audio_command", required=True)

    p = asub.add_parser("train", help="train warm-up -> joint (eq. 8) -> decoder -> refiner -> vocoder")
    add_training_arguments(p, "SpeechWorld directory or its manifest.jsonl")
    p.add_argument("--front-end", choices=FRONT_ENDS, help="tiny only: the encoder (default: the preset's)")
    p.set_defaults(func=_train)

    p = asub.add_parser("encode", help="WAVs (any rate, channels) -> codes (.safetensors)")
    p.add_argument("waves", nargs="+")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_encode)

    p = asub.add_parser("decode", help="codes -> 16 kHz WAVs")
    p.add_argument("codes")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--out", required=True)
    _add_decode_options(p)
    p.add_argument("--seed", type=int, default=0, help="the refiner's sampling seed")
    p.set_defaults(func=_decode)

    p = asub.add_parser("eval", help="mel, codebook, intelligibility, speaker and speed figures")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--data", required=True, help="SpeechWorld directory or its manifest.jsonl")
    p.add_argument("--json", required=True)
    p.add_argument("--limit", type=positive_int)
    p.add_argument("--no-judge", action="store_true", help="skip the Whisper tiny.en WER judge")
    _add_decode_options(p)
    p.set_defaults(func=_eval)
