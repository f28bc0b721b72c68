"""Samples from the worlds' manifests: an image with its caption, or speech with its transcript.

The pairing here is the simplest useful one (captioning, ASR); the sample formats of the
native model (report Table 8) build richer documents from the same rows.
"""

from __future__ import annotations

import os
from pathlib import Path

from dina.errors import BadManifest
from dina.io.manifest import read_manifest
from dina.sequence.segments import AudioSegment, ImageSegment, Sample, TextSegment


def samples_from_manifest(path: str | os.PathLike) -> list[Sample]:
    """Read a ShapesWorld (width/height) or SpeechWorld (seconds/text) manifest as samples."""
    rows = read_manifest(path)
    samples = []
    for lineno, row in enumerate(rows, start=1):
        if "width" in row and "height" in row:
            caption = (row.get("captions") or [row.get("prompt", "")])[0]
            segments = (ImageSegment(width=int(row["width"]), height=int(row["height"]), path=row.get("path")),)
            samples.append(Sample(segments=(*segments, TextSegment(text=caption)), source=str(Path(path))))
        elif "seconds" in row and "text" in row:
            audio = AudioSegment(seconds=float(row["seconds"]), path=row.get("path"))
            samples.append(Sample(segments=(audio, TextSegment(text=row["text"])), source=str(Path(path))))
        else:
            raise BadManifest(f"{path}, entry {lineno}: neither an image (width, height) nor speech (seconds, text)")
    return samples
