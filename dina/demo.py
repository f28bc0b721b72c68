"""`dina demo`: the main job, run as resumable stages, ending in `report.html` and `metrics.json`.

Today the demo builds what exists end to end: the two built-in worlds (ShapesWorld images
with captions/VQA/prompts, SpeechWorld utterances from several TTS engines), their judges
(the scene parser and the Whisper tiny.en ASR judge), and the packing statistics of a
mixed-resolution batch. Training the tokenizers and the model joins it in later issues.

Each stage stores its result under `OUT/stages/NAME.json` together with its parameters;
a re-run with the same parameters reuses it.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dina.io.atomic import ensure_dir, write_json, write_text
from dina.io.manifest import read_manifest


@dataclass(frozen=True, kw_only=True)
class DemoPlan:
    """How much of each world the demo makes; `quick()` is CI's smoke test."""

    shapes_train: int = 1000
    shapes_val: int = 200
    speech: int = 200
    pack_budget: int = 1024
    pack_batch: int = 16
    seed: int = 0

    @classmethod
    def quick(cls) -> DemoPlan:
        return cls(shapes_train=48, shapes_val=24, speech=8)


def _stage(out: Path, name: str, params: dict, run: Callable[[], dict], log: Callable[[str], None]) -> dict:
    """Run `run()` unless a finished result with the same parameters exists; record its wall time."""
    record = out / "stages" / f"{name}.json"
    if record.exists():
        done = json.loads(record.read_text())
        if done.get("params") == params:
            log(f"[{name}] reused ({done['seconds']:.1f} s when it ran)")
            return done["result"]
    log(f"[{name}] running ...")
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    write_json(record, {"params": params, "seconds": seconds, "result": result})
    log(f"[{name}] done in {seconds:.1f} s")
    return result


def _timed(fn: Callable[[], Any]) -> dict:
    start = time.perf_counter()
    path = fn()
    return {"manifest": str(path), "seconds": time.perf_counter() - start}


def run_demo(out: str | Path, plan: DemoPlan, log: Callable[[str], None] = print) -> dict:
    from dina.data import shapes, speech
    from dina.sequence.manifests import samples_from_manifest
    from dina.sequence.packing import packing_stats

    out = ensure_dir(out)
    s = plan.seed
    train = _stage(
        out, "shapes_train", {"n": plan.shapes_train, "seed": s},
        lambda: _timed(lambda: shapes.generate(out / "shapes" / "train", plan.shapes_train, s, "train")), log,
    )  # fmt: skip
    val = _stage(
        out, "shapes_val", {"n": plan.shapes_val, "seed": s},
        lambda: _timed(lambda: shapes.generate(out / "shapes" / "val", plan.shapes_val, s, "val")), log,
    )  # fmt: skip
    judged = _stage(out, "shapes_judge", {"n": plan.shapes_val}, lambda: shapes.judge_manifest(val["manifest"]), log)
    utter = _stage(
        out, "speech", {"n": plan.speech, "seed": s},
        lambda: _timed(lambda: speech.generate(out / "speech", plan.speech, s)), log,
    )  # fmt: skip
    asr = _stage(out, "speech_asr", {"n": plan.speech}, lambda: speech.transcribe(utter["manifest"]), log)
    samples = [x for m in (val["manifest"], utter["manifest"]) for x in samples_from_manifest(m)]
    packing = packing_stats([x.num_tokens for x in samples], plan.pack_budget, plan.pack_batch).to_dict()
    metrics = {
        "shapes": {
            "images_per_second": plan.shapes_train / train["seconds"],
            "seconds_for_train_split": train["seconds"],
            "judge": {k: v for k, v in judged.items() if k != "per_image"},
        },
        "speech": {
            "utterances_per_second": plan.speech / utter["seconds"],
            "seconds": utter["seconds"],
            "asr_judge": {k: v for k, v in asr.items() if k != "transcripts"},
        },
        "packing": {**packing, "budget": plan.pack_budget, "batch_size": plan.pack_batch},
    }
    write_json(out / "metrics.json", metrics)
    write_text(out / "report.html", render_report(out, metrics, val["manifest"], utter["manifest"], asr))
    log(f"wrote {out / 'report.html'} and {out / 'metrics.json'}")
    return metrics


def _metric_rows(metrics: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _metric_rows(value, name + ".")
        elif isinstance(value, float):
            rows.append((name, f"{value:.4g}"))
        elif not isinstance(value, list):
            rows.append((name, str(value)))
    return rows


def render_report(
    out: Path, metrics: dict, shapes_manifest: str, speech_manifest: str, asr: dict, n_images: int = 12
) -> str:
    """A self-contained page: images beside their captions and Q&A, audio players with transcripts, metrics."""
    esc = html.escape
    base = Path(shapes_manifest).parent
    cards = []
    for row in read_manifest(shapes_manifest)[:n_images]:
        src = (base / row["path"]).relative_to(out)
        qa = "".join(f"<li>{esc(q['question'])} <b>{esc(str(q['answer']))}</b></li>" for q in row["qa"][:3])
        cards.append(
            f'<figure><img src="{esc(str(src))}" width="{row["width"]}" height="{row["height"]}">'
            f"<figcaption>{esc(row['captions'][0])}<ul>{qa}</ul></figcaption></figure>"
        )
    clips = []
    for t in asr.get("transcripts", [])[:8]:
        src = (Path(speech_manifest).parent / t["path"]).relative_to(out)
        clips.append(
            f"<tr><td><audio controls src='{esc(str(src))}'></audio></td><td>{esc(t['reference'])}</td>"
            f"<td>{esc(t['hypothesis'])}</td><td>{t['wer']:.2f}</td></tr>"
        )
    table = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in _metric_rows(metrics))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>dina demo</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} figure{{display:inline-block;vertical-align:top;
margin:8px;max-width:460px}} img{{border:1px solid #ccc;image-rendering:pixelated}} td{{padding:2px 8px}}
table{{border-collapse:collapse}} tr:nth-child(even){{background:#f4f4f4}}</style></head><body>
<h1>dina demo</h1><p>The built-in worlds every capability trains and is scored on.</p>
<h2>ShapesWorld: images at native resolution with captions and questions</h2>{"".join(cards)}
<h2>SpeechWorld: synthesized speech and the Whisper tiny.en judge</h2>
<table><tr><th>audio</th><th>reference</th><th>judge heard</th><th>WER</th></tr>{"".join(clips)}</table>
<h2>Metrics</h2><table>{table}</table></body></html>
"""
