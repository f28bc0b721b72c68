"""`dina audio encode|decode`: the audio tokenizer from the command line (report Sec. 2.3)."""

from __future__ import annotations

import argparse


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
        wave, sr = model.decode(codes)
        save_wav(out / f"{i:04d}.wav", wave, sr)
    print(f"decoded {len(clips)} clip(s) -> {out}")
    return 0


def register(sub) -> None:
    parser = sub.add_parser("audio", help="audio tokenizer: encode, decode")
    asub = parser.add_subparsers(dest="audio_command", required=True)

    p = asub.add_parser("encode", help="WAVs (any rate, channels) -> codes (.safetensors)")
    p.add_argument("waves", nargs="+")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_encode)

    p = asub.add_parser("decode", help="codes -> 16 kHz WAVs")
    p.add_argument("codes")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_decode)
