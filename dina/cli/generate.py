"""`dina generate`: see, paint, hear, speak or chat with a trained model (report Sec. 2.5; release §2).

Which pipeline runs follows the arguments: `--image-size HxW` paints the prompt; `--speak` speaks
the prompt, or answers `--audio` in speech; `--audio` alone is heard (the prompt, if given, is
the question); `--image` is seen with the prompt as the question; a prompt alone gets a text
reply. Results go to `--out`: reply.txt, image.png, speech.wav and result.json.
"""

from __future__ import annotations

import argparse
import json
import sys

from dina.cli.args import non_negative_float, positive_int, seed_int
from dina.errors import BadArgument


def _size(text: str) -> tuple[int, int]:
    """ "HxW" in 28-px tokens."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BadArgument(f"--image-size must be HxW in 28-px tokens, e.g. 8x12; got {text!r}") from None
    if h < 1 or w < 1:
        raise BadArgument(f"--image-size must be at least 1x1, got {h}x{w}")
    return h, w


def _delay(text: str) -> int | None:
    if text == "serial":
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadArgument(f"--delay must be a number of steps >= 0 or 'serial', got {text!r}") from None
    if value < 0:
        raise BadArgument(f"--delay must be >= 0 or 'serial', got {value}")
    return value


def _generate(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from dina.inference.engine import Callbacks, GenerationConfig
    from dina.inference.pipelines import Pipelines
    from dina.io.atomic import ensure_dir, write_json, write_text
    from dina.io.audio import SAMPLE_RATE, load_audio, save_wav
    from dina.io.images import load_image, save_png

    torch.set_num_threads(args.threads)
    if not (args.prompt or args.audio or args.image):
        raise BadArgument("give --prompt, --image or --audio")
    pipes = Pipelines.load(args.model)
    gen = GenerationConfig(max_new_tokens=args.max_new_tokens, cfg_scale=args.cfg, delay=args.delay, seed=args.seed)
    if args.temperature is not None:
        gen = dataclasses.replace(gen, text=dataclasses.replace(gen.text, temperature=args.temperature))
    if args.stream:
        tok = pipes.tok
        pipes.callbacks = Callbacks(
            on_text=lambda _, t: print(tok.decode([t]), end="", flush=True) if t < tok.vocab.text_vocab_size else None
        )
    out = ensure_dir(args.out)
    result: dict = {"model": str(args.model)}
    if args.image_size:
        h, w = args.image_size
        if not args.prompt:
            raise BadArgument("--image-size paints --prompt; give one")
        gen = dataclasses.replace(gen, max_new_tokens=max(gen.max_new_tokens, h * (w + 1) + 1))
        picture = pipes.paint(args.prompt, h, w, gen)
        save_png(out / "image.png", picture.image)
        result.update(pipeline="paint", image="image.png", tokens=[h, w], complete=picture.complete)
    elif args.speak:
        if args.audio:
            speech = pipes.chat(load_audio(args.audio[0]), SAMPLE_RATE, gen)
        else:
            speech = pipes.speak(args.prompt, gen)
        if speech.wave.size:  # max_new_tokens may end a serial answer before its audio starts
            save_wav(out / "speech.wav", speech.wave, SAMPLE_RATE)
        write_text(out / "reply.txt", speech.text + "\n")
        wav = "speech.wav" if speech.wave.size else None
        result.update(pipeline="chat" if args.audio else "speak", speech=wav, text=speech.text)
        result.update(frames=int(speech.codes.shape[0]), delay=speech.delay, complete=speech.complete)
    elif args.audio:
        question = args.prompt or "Transcribe the audio."
        text = pipes.hear(load_audio(args.audio[0]), SAMPLE_RATE, gen, question=question)
        write_text(out / "reply.txt", text + "\n")
        result.update(pipeline="hear", text=text)
    elif args.image:
        images = [load_image(p) for p in args.image]
        text = pipes.see(images, args.prompt, gen) if args.prompt else pipes.see(images, gen=gen)
        write_text(out / "reply.txt", text + "\n")
        result.update(pipeline="see", text=text)
    else:
        text = pipes.reply(args.prompt, gen)
        write_text(out / "reply.txt", text + "\n")
        result.update(pipeline="reply", text=text)
    write_json(out / "result.json", result)
    if args.stream:
        print(file=sys.stdout)
    print(json.dumps(result))
    return 0


def register(sub) -> None:
    p = sub.add_parser("generate", help="see, paint, hear, speak or chat with a trained model")
    p.add_argument("--model", required=True, help="a model directory (`dina train model`'s out/model)")
    p.add_argument("--prompt", help="the text: a question, a prompt to paint, or words to speak")
    p.add_argument("--image", action="append", default=[], help="an image to look at (repeatable)")
    p.add_argument("--audio", action="append", default=[], help="a clip to hear or answer")
    p.add_argument("--image-size", type=_size, help="paint an image of HxW 28-px tokens")
    p.add_argument("--speak", action="store_true", help="answer in speech")
    p.add_argument("--delay", type=_delay, default=0, help="text-guided speech: steps of delay, or 'serial'")
    p.add_argument("--cfg", type=non_negative_float, default=1.0, help="image classifier-free guidance scale")
    p.add_argument("--temperature", type=non_negative_float, help="text sampling temperature (0 = greedy)")
    p.add_argument("--max-new-tokens", type=positive_int, default=256)
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--stream", action="store_true", help="print text as it is generated")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_generate)
