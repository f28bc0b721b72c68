"""`report.html`: one self-contained page (files beside it, relative links) showing what the demo
trained and what it can do, pictures first and numbers after.

Sections: the goals table; the dNaViT tokenizer (held-out originals beside their reconstructions)
and the audio tokenizer (held-out clips beside theirs, with spectrograms); the five pipelines
(see, paint at several aspect ratios, hear, speak in parallel/serial/cloned voice, chat); the
loss curves of every training stage and the MoE expert-by-modality routing; every metric.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from dina.demo import figures
from dina.io.atomic import ensure_dir, write_text
from dina.io.audio import SAMPLE_RATE, load_audio, save_wav
from dina.io.images import load_image, save_png
from dina.io.manifest import read_manifest

N_RECON = 6
N_AUDIO_RECON = 3
esc = html.escape

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1250px;color:#222}
figure{display:inline-block;vertical-align:top;margin:6px;max-width:380px}
figcaption{font-size:13px} img.px{image-rendering:pixelated;border:1px solid #bbb}
table{border-collapse:collapse;font-size:13px} td,th{padding:3px 8px;text-align:left}
tr:nth-child(even){background:#f4f4f4} .ok{color:#187a18;font-weight:bold} .no{color:#b02020;font-weight:bold}
.pair{display:flex;gap:4px} audio{height:30px;width:260px} h2{border-bottom:1px solid #ddd;padding-top:.6em}
.small{font-size:12px;color:#555}"""


def _rel(path: str | Path, out: Path) -> str:
    return esc(str(Path(path).resolve().relative_to(out.resolve())))


def _img(path: str | Path, out: Path, scale: float = 1.5, alt: str = "") -> str:
    h, w = load_image(path).shape[:2]
    return (
        f'<img class="px" src="{_rel(path, out)}" width="{int(w * scale)}" height="{int(h * scale)}" alt="{esc(alt)}">'
    )


def _audio(path: str | Path, out: Path) -> str:
    return f'<audio controls preload="none" src="{_rel(path, out)}"></audio>'


def _spectrogram(wav: str | Path, out: Path, assets: Path, name: str, title: str = "") -> str:
    png = figures.spectrogram(Path(wav), assets / f"{name}.png", title)
    return f'<img src="{_rel(png, out)}" width="380" alt="spectrogram">'


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and all(isinstance(v, float) for v in value):
        return " ".join(f"{v:.2f}" for v in value)
    return str(value)


def _rows(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            rows += _rows(value, f"{prefix}{key}.")
        elif not (isinstance(value, list) and value and isinstance(value[0], (dict, list, str))):
            rows.append((f"{prefix}{key}", _fmt(value)))
    return rows


@torch.no_grad()
def _vision_pairs(tokenizer_dir: Path, manifest: Path, out: Path, assets: Path) -> str:
    """Held-out images beside their reconstructions from codes (the pixel decoder, no refiner)."""
    from dina.vision.tokenizer import VisionTokenizer

    model = VisionTokenizer.from_pretrained(tokenizer_dir).eval()
    rows = read_manifest(manifest)[:N_RECON]
    cards = []
    for i, row in enumerate(rows):
        original = manifest.parent / row["path"]
        codes = model.encode([load_image(original)])
        plain = model.decode(codes, refine=False)[0]
        save_png(assets / f"recon_{i}.png", plain)
        h, w = codes.codes[0].shape[:2]
        cards.append(
            f'<figure><div class="pair">{_img(original, out, 1.0)}{_img(assets / f"recon_{i}.png", out, 1.0)}</div>'
            f"<figcaption>original | from {h}×{w}×{codes.codes[0].shape[2]} codes. "
            f"<span class='small'>{esc(row['captions'][0])}</span></figcaption></figure>"
        )
    return "".join(cards)


@torch.no_grad()
def _audio_pairs(tokenizer_dir: Path, manifest: Path, out: Path, assets: Path) -> str:
    from dina.audio.tokenizer import AudioTokenizer

    model = AudioTokenizer.from_pretrained(tokenizer_dir).eval()
    rows = read_manifest(manifest)[:N_AUDIO_RECON]
    lines = []
    for i, row in enumerate(rows):
        original = manifest.parent / row["path"]
        wave, _ = model.decode(model.encode(load_audio(original), SAMPLE_RATE))
        save_wav(assets / f"audio_recon_{i}.wav", wave)
        lines.append(
            f"<tr><td>{esc(row['text'])}<br><span class='small'>{esc(row['voice'])} (held-out voice)</span></td>"
            f"<td>{_audio(original, out)}<br>{_spectrogram(original, out, assets, f'audio_orig_{i}')}</td>"
            f"<td>{_audio(assets / f'audio_recon_{i}.wav', out)}<br>"
            f"{_spectrogram(assets / f'audio_recon_{i}.wav', out, assets, f'audio_recon_{i}')}</td></tr>"
        )
    return (
        f"<table><tr><th>sentence</th><th>original</th><th>through 12.5 Hz × 8 codes</th></tr>{''.join(lines)}</table>"
    )


def _see(shown: Sequence[Mapping[str, Any]], out: Path) -> str:
    return "".join(
        f"<figure>{_img(s['image'], out)}<figcaption><b>Describe the image.</b> {esc(s['caption'])}"
        f"<br><span class='small'>truth: {esc(s['truth'])}</span><br><b>{esc(s['question'])}</b> {esc(s['answer'])}"
        f" <span class='small'>(truth: {esc(str(s['expected']))})</span></figcaption></figure>"
        for s in shown
    )


def _paint(shown: Sequence[Mapping[str, Any]], out: Path) -> str:
    cards = []
    for p in shown:
        score = ", ".join(f"{k} {v:.0f}" for k, v in p["geneval"].items())
        cut = "" if p["complete"] else " (cut by max_new_tokens)"
        cards.append(
            f"<figure>{_img(p['png'], out, 1.2)}<figcaption>{esc(p['prompt'])}<br><span class='small'>"
            f"{p['grid']} tokens{cut}; the judge sees: {esc(', '.join(p['found']) or 'nothing')}; {score}"
            "</span></figcaption></figure>"
        )
    return "".join(cards)


def _speech_table(entries: Sequence[Mapping[str, Any]], out: Path, assets: Path, kind: str) -> str:
    lines = []
    for i, e in enumerate(entries):
        if kind == "hear":
            lines.append(
                f"<tr><td>{_audio(e['wav'], out)}</td><td>{esc(e['truth'])}</td><td>{esc(e['heard'])}</td></tr>"
            )
            continue
        said = e["text"] if kind == "speak" else e["user_said"]
        first = f"{esc(said)}<br><span class='small'>{esc(e.get('mode', ''))}</span>"
        if kind == "chat":
            first += f"<br>{_audio(e['user_wav'], out)}"
        if e.get("reference"):
            first += f"<br><span class='small'>voice to clone:</span> {_audio(e['reference'], out)}"
        made = (
            f"{_audio(e['wav'], out)} <span class='small'>{e['seconds']} s</span><br>"
            f"{_spectrogram(e['wav'], out, assets, f'{kind}_{i}')}"
            if e["wav"]
            else "<span class='small'>no speech: the model ended it before the first frame</span>"
        )
        lines.append(
            f"<tr><td>{first}</td><td>{made}</td><td>{esc(e['text_stream'])}</td><td>{esc(e['judge_heard'])}</td></tr>"
        )
    head = {
        "hear": "<th>speech (held-out voice)</th><th>what was said</th><th>what the model heard</th>",
        "speak": "<th>text to say</th><th>generated speech</th><th>text stream that guided it</th><th>judge heard</th>",
        "chat": "<th>user said</th><th>spoken answer</th><th>its text stream</th><th>judge heard</th>",
    }[kind]
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _goals(goals: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for name, g in goals.items():
        sign = "≥" if g["better"] == "higher" else "≤"
        mark = (
            ""
            if g["met"] is None
            else ("<span class='ok'>met</span>" if g["met"] else "<span class='no'>not met</span>")
        )
        rows.append(
            f"<tr><td>{esc(name)}</td><td>{_fmt(g['value'])}</td><td>{sign} {g['goal']}</td><td>{mark}</td></tr>"
        )
    return f"<table><tr><th>figure (held-out)</th><th>reached</th><th>goal</th><th></th></tr>{''.join(rows)}</table>"


def write_report(
    out: Path,
    metrics: Mapping[str, Any],
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    shown: Mapping[str, Any],
    tokenizers: Mapping[str, Path],
    data: Mapping[str, Path],
    n_routed: int,
) -> Path:
    """Draw the figures into `out/report/` and write `out/report.html`."""
    assets = ensure_dir(out / "report")
    formats = sorted({k for rows in curves.values() for r in rows for k in r if k.startswith("loss/")})
    model_png = figures.loss_curves(curves, formats, assets / "model_losses.png", "the native model, per format")
    tok_png = figures.loss_curves(
        tokenizer_curves(out), ["loss"], assets / "tokenizer_losses.png",
        "the tokenizers, per stage (vision: SAE, RVQ, decoder, refiner; audio: five stages)",
    )  # fmt: skip
    moe_png = figures.moe_heatmap(metrics["moe_share_last_window"], n_routed, assets / "moe.png")
    recon_cards = _vision_pairs(tokenizers["vision"], data["shapes_val"] / "manifest.jsonl", out, assets)
    _grid(out, assets, shown, data["shapes_val"] / "manifest.jsonl")
    seconds = metrics["seconds"]
    vision, audio = metrics["vision_tokenizer"], metrics["audio_tokenizer"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>dina demo</title><style>{STYLE}</style></head><body>
<h1>dina demo</h1>
<p>Everything on this page was trained on this machine from nothing in {seconds["total"] / 60:.1f} minutes of stages
(2 CPU threads): the two built-in worlds, the dNaViT and audio tokenizers, and the 8.3 M-parameter native model
(<code>text</code> → <code>prealign</code> → <code>pretrain</code> → <code>sft</code>). Every input below is held out.</p>
<h2>How far the tiny model got</h2>{_goals(metrics["goals"])}
<h2>dNaViT: held-out images and their reconstructions from discrete codes</h2>
<p class="small">PSNR {vision["no_refine"]["psnr"]:.1f} dB without the refiner; the judge recovers the exact scene from
{vision.get("judge_scene_accuracy_reconstructed_no_refine", float("nan")):.2f} of reconstructions
(originals {vision.get("judge_scene_accuracy_original", float("nan")):.2f}).</p>
{recon_cards}
<h2>Audio tokenizer: held-out voices through 12.5 Hz codes</h2>
<p class="small">Whisper tiny.en judge WER {_fmt(audio.get("judge_wer_original"))} on the originals,
{_fmt(audio.get("judge_wer_reconstructed"))} on the reconstructions.</p>
{_audio_pairs(tokenizers["audio"], data["speech_held"], out, assets)}
<h2>See: held-out images → text</h2>{_see(shown["see"], out)}
<h2>Paint: held-out prompts → images, at several aspect ratios</h2>{_paint(shown["paint"], out)}
<h2>Hear: held-out voices → text</h2>{_speech_table(shown["hear"], out, assets, "hear")}
<h2>Speak: text → text-guided speech (parallel, serial, cloned voice)</h2>{_speech_table(shown["speak"], out, assets, "speak")}
<h2>Chat: speech in → spoken answer</h2>{_speech_table(shown["chat"], out, assets, "chat")}
<h2>Training</h2>
<img src="{_rel(model_png, out)}" style="max-width:100%"><br><img src="{_rel(tok_png, out)}" style="max-width:100%">
<h2>MoE: which experts each modality uses</h2><img src="{_rel(moe_png, out)}" style="max-width:100%">
<h2>Every figure</h2><table>{"".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in _rows(metrics))}</table>
</body></html>
"""
    write_text(out / "report.html", page)
    return out / "report.html"


def _grid(out: Path, assets: Path, shown: Mapping[str, Any], manifest: Path) -> Path:
    """`report/grid.png`: held-out originals over their reconstructions, and the paintings under
    their prompts (the picture the README shows)."""
    rows = read_manifest(manifest)[:4]
    originals = [(manifest.parent / r["path"], "held-out image") for r in rows]
    recons = [(assets / f"recon_{i}.png", "its reconstruction from codes") for i in range(len(rows))]
    paints = [(Path(p["png"]), f"{p['grid']}: {p['prompt']}") for p in shown["paint"]]
    return figures.image_grid(
        [("dNaViT input", originals), ("decoded codes", recons), ("painted by the model", paints)], assets / "grid.png"
    )


def tokenizer_curves(out: Path) -> dict[str, list[dict[str, Any]]]:
    """The tokenizers' metrics rows, one panel per tokenizer stage."""
    from dina.training.metrics import MetricsLog

    panels: dict[str, list[dict[str, Any]]] = {}
    for tokenizer in ("vision", "audio"):
        for row in MetricsLog(out / tokenizer / "metrics.jsonl").rows():
            panels.setdefault(f"{tokenizer} {row['stage']}", []).append(row)
    return panels
