"""The report's pictures, drawn with matplotlib (Agg, PNG): loss curves of every training stage,
the MoE's expert-by-modality routing (report Fig. 11's data), and log-mel spectrograms
(the tokenizers' log-mel, `dina.audio.mel.log_mel`) of speech."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from dina.audio.mel import log_mel
from dina.io.atomic import atomic_path
from dina.io.audio import SAMPLE_RATE, load_audio


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to `window` values (the first points average what exists)."""
    x = np.asarray(values, dtype=np.float64)
    if not x.size:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def loss_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], keys: Sequence[str], path: Path, title: str) -> Path:
    """One panel per stage; in each, every key of `keys` present (e.g. `loss/caption`), smoothed."""
    stages = [s for s, rows in curves.items() if rows]
    fig, axes = plt.subplots(1, max(len(stages), 1), figsize=(4.2 * max(len(stages), 1), 3.2), squeeze=False)
    for ax, name in zip(axes[0], stages, strict=False):
        rows = curves[name]
        for key in keys:
            points = [(r["step"], float(r[key])) for r in rows if key in r]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, smooth(values, max(len(values) // 25, 1)), label=key.removeprefix("loss/"), lw=1.2)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    axes[0][0].set_ylabel("loss (nats per predicted token)")
    fig.suptitle(title)
    return _save(fig, path)


def moe_heatmap(share: Mapping[str, Mapping[str, Sequence[float]]], n_routed: int, path: Path) -> Path:
    """Per layer, the share of each modality's expert selections that each expert received;
    the columns right of the line are the zero (identity) experts."""
    layers = sorted(share, key=lambda k: int(k.split("/")[-1]))
    fig, axes = plt.subplots(1, max(len(layers), 1), figsize=(5 * max(len(layers), 1), 2.4), squeeze=False)
    for ax, layer in zip(axes[0], layers, strict=False):
        modalities = list(share[layer])
        grid = np.array([share[layer][m] for m in modalities])
        im = ax.imshow(grid, cmap="viridis", vmin=0, aspect="auto")
        ax.axvline(n_routed - 0.5, color="white", lw=2)
        ax.set_yticks(range(len(modalities)), modalities)
        ax.set_xticks(
            range(grid.shape[1]), [str(i) if i < n_routed else f"z{i - n_routed}" for i in range(grid.shape[1])]
        )
        ax.set_xlabel("expert (z = zero expert)")
        ax.set_title(f"layer {layer.split('/')[-1]}")
        for (y, x), v in np.ndenumerate(grid):
            ax.text(
                x, y, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < grid.max() / 2 else "black"
            )
        fig.colorbar(im, ax=ax, fraction=0.03)
    fig.suptitle("share of each modality's selections per expert (last 50 pre-training steps)", y=1.08)
    return _save(fig, path)


def spectrogram(wav: Path, path: Path, title: str = "") -> Path:
    """The clip's log-mel spectrogram."""
    wave = load_audio(wav)
    fig, ax = plt.subplots(figsize=(4.5, 1.6))
    if wave.size:
        mel = log_mel(wave, SAMPLE_RATE)[0].numpy()
        ax.imshow(
            mel, origin="lower", aspect="auto", cmap="magma", extent=(0, wave.size / SAMPLE_RATE, 0, mel.shape[0])
        )
    ax.set_xlabel("s")
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    return _save(fig, path)


def image_grid(rows: Sequence[tuple[str, Sequence[tuple[Path, str]]]], path: Path) -> Path:
    """Rows of (label, [(image, caption), ...]) in one picture, e.g. for the README."""
    cols = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.8 * cols, 2.8 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                image, caption = images[c]
                ax.imshow(plt.imread(image), interpolation="nearest")
                ax.set_title(textwrap.fill(caption, 44), fontsize=6)
        axes[r][0].text(-0.08, 0.5, label, transform=axes[r][0].transAxes, rotation=90, ha="right", va="center")
    fig.tight_layout()
    return _save(fig, path)
