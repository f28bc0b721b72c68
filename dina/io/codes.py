"""Codes files: a list of integer code tensors plus JSON metadata in one safetensors file.

Written atomically (`dina.io.atomic`); read without unpickling. Shared by the vision and audio
tokenizers' `VisionCodes` / `AudioCodes`, which decide what the tensors and metadata mean.
Layout: tensors `codes.0`, `codes.1`, ... (int64); every metadata value is JSON text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from dina.errors import BadCodes, BadInputFile
from dina.io.atomic import atomic_path


def save_codes_file(path: str | os.PathLike, codes: list[torch.Tensor], meta: dict[str, Any]) -> None:
    """Write `codes` as `codes.{i}` (int64) with `meta` (JSON-encoded values), atomically."""
    tensors = {f"codes.{i}": c.to(torch.int64).contiguous() for i, c in enumerate(codes)}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})


def load_codes_file(path: str | os.PathLike, what: str, count_key: str) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """(codes, decoded metadata) of a file written by `save_codes_file`.

    `BadInputFile` if it does not exist; `BadCodes` ("not a dina {what} codes file") if it is not
    safetensors, its metadata is not JSON, or its tensors are not exactly one per entry of the
    list stored under `count_key`.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputFile(f"codes file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        tensors = load_file(str(path))
        meta = {k: json.loads(v) for k, v in raw.items()}
        count = len(meta[count_key])
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as e:
        raise BadCodes(f"{path} is not a dina {what} codes file: {e}") from e
    if set(tensors) != {f"codes.{i}" for i in range(count)}:
        raise BadCodes(f"{path}: {len(tensors)} code tensors for {count} entries of '{count_key}'")
    return [tensors[f"codes.{i}"] for i in range(count)], meta
