"""Every pipeline once or a few times on held-out inputs, saved for the report.

`see` captions held-out images and answers one of each image's questions; `paint` draws
held-out prompts at four aspect ratios (square, wide, tall, 3:4), each picture parsed by the
ShapesWorld judge; `hear` transcribes held-out voices; `speak` says held-out sentences in
parallel (delay 0) and serial mode and once in a cloned voice; `chat` answers a held-out
spoken sentence with text-guided speech. Generated speech is heard by the Whisper tiny.en
judge. Settings are `dina eval model`'s (greedy text, the release's image and audio samplers,
item i seeded `seed + i`), so the showcase repeats exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dina.data.shapes.judge import parse_image, score_scene
from dina.data.speech.asr import AsrConfig, AsrJudge
from dina.inference.engine import GenerationConfig
from dina.inference.evaluate import load_held_out
from dina.inference.pipelines import Pipelines
from dina.inference.sampling import AUDIO_DEFAULT, GREEDY
from dina.io.atomic import ensure_dir
from dina.io.audio import SAMPLE_RATE, save_wav
from dina.io.images import save_png
from dina.io.manifest import read_manifest

PAINT_GRIDS = ((8, 8), (6, 12), (12, 6), (9, 12))  # (rows, columns) of 28 px tokens
N_SEE, N_HEAR, N_SPEAK, N_CHAT = 4, 3, 3, 2
SPEECH_TOKENS = 200


def _speech_entry(out: Path, name: str, speech: Any, judge: AsrJudge) -> dict[str, Any]:
    path = out / f"{name}.wav"
    if speech.wave.size:  # empty when the model ended the speech before its first frame
        save_wav(path, speech.wave)
    heard = judge.transcribe_wave(speech.wave) if speech.wave.size else ""
    return {
        "wav": str(path) if speech.wave.size else None,
        "seconds": round(speech.wave.size / SAMPLE_RATE, 2),
        "text_stream": speech.text,
        "judge_heard": heard.strip(),
        "complete": speech.complete,
    }


@torch.no_grad()
def showcase(model_dir: Path, shapes_manifest: Path, speech_manifest: Path, out: Path, *, seed: int = 0) -> dict:
    """Run the pipelines, write PNGs and WAVs under `out`, return what was asked and answered."""
    out = ensure_dir(out)
    pipes = Pipelines.load(model_dir)
    held = load_held_out([shapes_manifest, speech_manifest], limit=max(N_SEE, len(PAINT_GRIDS), N_SPEAK + N_CHAT + 1))
    judge = AsrJudge(AsrConfig(cpu_threads=torch.get_num_threads()))
    answer = GenerationConfig(max_new_tokens=128, text=GREEDY, seed=seed)

    captions = [row["captions"][0] for row in read_manifest(shapes_manifest)[:N_SEE]]
    see = []
    for i, row in enumerate(held.images[:N_SEE]):
        question, truth, _ = next(q for q in row.qa if q[2] != "sign")
        see.append({
            "image": str(shapes_manifest.parent / row.path),
            "caption": pipes.see([row.image], gen=answer),
            "truth": captions[i],
            "question": question,
            "answer": pipes.see([row.image], question, gen=answer),
            "expected": truth,
        })  # fmt: skip

    paint = []
    for i, ((h, w), row) in enumerate(zip(PAINT_GRIDS, held.images, strict=False)):
        gen = GenerationConfig(max_new_tokens=h * (w + 1) + 1, text=GREEDY, seed=seed + i)
        picture = pipes.paint(row.prompt, h, w, gen)
        path = out / f"paint_{i}_{h}x{w}.png"
        save_png(path, picture.image)
        found = parse_image(picture.image, read_text=False)
        scores = score_scene(found, row.scene)
        paint.append({
            "prompt": row.prompt, "grid": f"{h}x{w}", "png": str(path), "complete": picture.complete,
            "found": [f"{o.color} {o.shape}" for o in found.objects], "geneval": scores,
        })  # fmt: skip

    speech_rows = list(held.speech)
    hear = [
        {"wav": str(speech_manifest.parent / r.path), "truth": r.text, "heard": pipes.hear(r.wave, SAMPLE_RATE, answer)}
        for r in speech_rows[:N_HEAR]
    ]
    speak = []
    for i, clip in enumerate(speech_rows[:N_SPEAK]):
        for mode, delay in (("parallel", 0), ("serial", None)):
            gen = GenerationConfig(
                max_new_tokens=SPEECH_TOKENS, text=GREEDY, audio=AUDIO_DEFAULT, delay=delay, seed=seed + i
            )
            entry = _speech_entry(out, f"speak_{i}_{mode}", pipes.speak(clip.text, gen), judge)
            speak.append({"text": clip.text, "mode": mode, **entry})
    clone_row = next((r for r in speech_rows if r.reference is not None), None)
    if clone_row is not None and clone_row.reference is not None:
        gen = GenerationConfig(max_new_tokens=SPEECH_TOKENS, text=GREEDY, audio=AUDIO_DEFAULT, seed=seed)
        cloned = pipes.speak(clone_row.text, gen, reference=(clone_row.reference, SAMPLE_RATE))
        save_wav(out / "clone_reference.wav", clone_row.reference)
        entry = _speech_entry(out, "speak_cloned", cloned, judge)
        speak.append({"text": clone_row.text, "mode": "cloned", "reference": str(out / "clone_reference.wav"), **entry})
    chat = []
    for i, clip in enumerate(speech_rows[N_SPEAK : N_SPEAK + N_CHAT]):
        gen = GenerationConfig(max_new_tokens=SPEECH_TOKENS, text=GREEDY, audio=AUDIO_DEFAULT, seed=seed + i)
        entry = _speech_entry(out, f"chat_{i}", pipes.chat(clip.wave, SAMPLE_RATE, gen), judge)
        chat.append({"user_wav": str(speech_manifest.parent / clip.path), "user_said": clip.text, **entry})
    return {"see": see, "paint": paint, "hear": hear, "speak": speak, "chat": chat}
