"""Reading foreign safetensors checkpoints: only the tensors an adapter maps, never by unpickling."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from dina.errors import BadCheckpoint


def read_prefixed_tensors(file: Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The tensors of one safetensors file whose names start with any of `prefixes` (others are
    never read); `BadCheckpoint` if the file is not readable safetensors."""
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open handles are not iterable)
                if key.startswith(prefixes):
                    state[key] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as e:
        raise BadCheckpoint(f"{file} is not a readable safetensors file: {e}") from e
    return state
