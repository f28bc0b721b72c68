"""Speech datasets for the audio tokenizer: a SpeechWorld-style manifest of clips and their text.

A manifest is JSONL with one {"path", "text"[, "voice"]} object per clip, paths relative to the
manifest (`dina data speech` writes one); a directory stands for its `manifest.jsonl`. Waves are
read as 16 kHz mono float32 (`dina.io.audio.load_audio` converts any rate and channel count).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dina.errors import BadInputFile
from dina.io.audio import load_audio
from dina.io.manifest import read_manifest

MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True, kw_only=True)
class SpeechClip:
    """One manifest row: its 16 kHz mono wave (T,), the path as written, the text and the voice."""

    wave: np.ndarray
    path: str
    text: str
    voice: str


def load_speech(data: str | Path, limit: int | None = None) -> list[SpeechClip]:
    """The clips of a SpeechWorld manifest (`manifest.jsonl`, or a directory holding one)."""
    path = Path(data)
    if not path.exists():
        raise BadInputFile(f"speech data {path} does not exist")
    manifest = path / MANIFEST_NAME if path.is_dir() else path
    if not manifest.is_file():
        raise BadInputFile(f"{path} holds no {MANIFEST_NAME}")
    rows = read_manifest(manifest, required=("path", "text"))[:limit]
    return [
        SpeechClip(
            wave=load_audio(manifest.parent / str(r["path"])),
            path=str(r["path"]),
            text=str(r["text"]),
            voice=str(r.get("voice", "unknown")),
        )
        for r in rows
    ]
