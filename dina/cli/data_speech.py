"""`dina data speech` (generate SpeechWorld) and `dina data transcribe` (the offline ASR judge)."""

from __future__ import annotations

import argparse

from dina.cli.args import positive_int, seed_int


def _voice_list(text: str) -> list[str]:
    return [v for v in (part.strip() for part in text.split(",")) if v]


def _run_speech(args: argparse.Namespace) -> int:
    from dina.data.speech.world import generate_world

    world = generate_world(args.out, args.n, args.seed, args.voices)
    rate = world.n / world.wall_seconds if world.wall_seconds > 0 else float("inf")
    engines = sorted({v.split("/")[0] for v in world.voices})
    warnings = f"; warnings: {'; '.join(world.warnings)}" if world.warnings else ""
    print(
        f"speech: {world.n} utterances ({world.seconds_audio:.1f} s of audio, {len(world.voices)} voices from "
        f"{', '.join(engines)}; {world.synthesized} synthesized, {world.cached} cached) in "
        f"{world.wall_seconds:.1f} s ({rate:.1f} utt/s) -> {world.manifest}{warnings}"
    )
    return 0


def _run_transcribe(args: argparse.Namespace) -> int:
    from dina.data.speech.asr import transcribe

    result = transcribe(args.manifest, args.json)
    per_engine = ", ".join(f"{name} {wer:.3f}" for name, wer in result["wer_per_engine"].items())
    print(f"transcribe: {result['n']} utterances, WER {result['wer']:.3f} ({per_engine}), RTF {result['rtf']:.3f}")
    return 0


def register(data_sub) -> None:
    """Add `speech` and `transcribe` to the `dina data` subcommands."""
    speech = data_sub.add_parser("speech", help="synthesize SpeechWorld: sentences with exact transcripts")
    speech.add_argument("--out", required=True, help="output directory (wavs/ and manifest.jsonl)")
    speech.add_argument("--n", type=positive_int, required=True, help="number of utterances")
    speech.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    speech.add_argument(
        "--voices",
        type=_voice_list,
        default=None,
        help="comma-separated engine/voice list, e.g. flite/slt,espeak-ng/en-us (default: every installed voice)",
    )
    speech.set_defaults(func=_run_speech)

    judge = data_sub.add_parser("transcribe", help="transcribe a speech manifest with Whisper tiny.en and score WER")
    judge.add_argument("--manifest", required=True, help="JSONL manifest with path and text per line")
    judge.add_argument("--json", default=None, help="write the full result (WERs, transcripts) here")
    judge.set_defaults(func=_run_transcribe)
