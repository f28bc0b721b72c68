"""A content-addressed cache of synthesized utterances, so re-generating a world is fast.

The key hashes everything that decides the audio: engine, voice, text, the engine's
version string and `PIPELINE_VERSION` (bumped whenever resampling or post-processing
changes). Values are the final 16 kHz float32 waves, stored as .npy files under
`root/ab/abcdef....npy`, written atomically so concurrent runs can share one cache.
It also makes every engine reproducible by construction: a second run reads the bytes
the first one wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from dina.io.atomic import atomic_path

PIPELINE_VERSION = 1


def default_cache_dir(out_dir: Path) -> Path:
    """$DINA_CACHE/speech when set (shared between worlds), else out_dir/.cache/speech."""
    shared = os.environ.get("DINA_CACHE")
    return Path(shared) / "speech" if shared else Path(out_dir) / ".cache" / "speech"


class SynthCache:
    """Maps (engine, voice, text, engine version) to a 16 kHz float32 wave (T,)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    @staticmethod
    def key(*, engine: str, voice: str, text: str, engine_version: str) -> str:
        blob = json.dumps([engine, voice, text, engine_version, PIPELINE_VERSION])
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached wave, or None if absent or unreadable (a damaged entry is simply re-made)."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            wave = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        ok = wave.ndim == 1 and wave.dtype == np.float32 and wave.size > 0 and np.isfinite(wave).all()
        return wave if ok else None

    def put(self, key: str, wave: np.ndarray) -> None:
        with atomic_path(self._path(key), suffix=".npy") as tmp, open(tmp, "wb") as f:
            np.save(f, np.asarray(wave, dtype=np.float32), allow_pickle=False)
