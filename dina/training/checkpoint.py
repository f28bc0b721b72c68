"""Checkpoints as safetensors + JSON, written atomically, never unpickled.

A checkpoint directory holds:
- `model.safetensors`: the state dicts of the named modules, keys prefixed `{name}.`;
- `optim.safetensors`: the tensors of the named optimizers' states, keys `{name}.state.{i}.{key}`;
- `trainer.json`: step, optimizer param groups and scalar state, the torch RNG state (as a list
  of bytes), and any JSON-able extras (stage, data position, config).

The directory is written under a temporary name and renamed into place, so a crash leaves
the previous checkpoint intact. Loading checks every key and shape and names the first
mismatch (`BadCheckpoint`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dina.errors import BadCheckpoint, BadInputFile
from dina.io.atomic import ensure_dir

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optim.safetensors"
TRAINER_FILE = "trainer.json"


def _optim_to_flat(name: str, optim: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optim.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}.state.{idx}.{key}"] = value.detach().contiguous().clone()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optim_from_flat(name: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{name}.state."
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, field = key[len(prefix) :].split(".", 1)
            state.setdefault(int(idx), {})[field] = value
    for key, value in meta["scalars"].items():
        idx, field = key.split(".", 1)
        state.setdefault(int(idx), {})[field] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: str | os.PathLike,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    *,
    step: int,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint directory atomically (replacing an earlier one only once complete)."""
    directory = Path(directory)
    ensure_dir(directory.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        weights = {f"{n}.{k}": v.detach().contiguous() for n, m in modules.items() for k, v in m.state_dict().items()}
        save_file(weights, str(tmp / MODEL_FILE))
        optim_tensors, optim_meta = {}, {}
        for name, optim in (optimizers or {}).items():
            tensors, meta = _optim_to_flat(name, optim)
            optim_tensors.update(tensors)
            optim_meta[name] = meta
        save_file(optim_tensors, str(tmp / OPTIM_FILE))
        trainer = {"step": step, "optimizers": optim_meta, "torch_rng": torch.get_rng_state().tolist()}
        (tmp / TRAINER_FILE).write_text(json.dumps({**trainer, "extra": extra or {}}))
        old = directory.with_name(f".{directory.name}.old")
        if directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def load_state_dict_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load `state` into `module`, naming the first missing, unexpected or mis-shaped tensor."""
    own = module.state_dict()
    for key, value in own.items():
        if key not in state:
            raise BadCheckpoint(f"{where}: missing tensor {key!r} (expected shape {tuple(value.shape)})")
        if tuple(state[key].shape) != tuple(value.shape):
            raise BadCheckpoint(
                f"{where}: tensor {key!r} has shape {tuple(state[key].shape)}, the model expects {tuple(value.shape)}"
            )
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise BadCheckpoint(f"{where}: unexpected tensor {unexpected[0]!r}")
    module.load_state_dict(state, strict=True)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise BadCheckpoint(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise BadCheckpoint(f"{path} is truncated or not a safetensors file: {e}") from e


def load_checkpoint(
    directory: str | os.PathLike,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    *,
    restore_rng: bool = True,
) -> dict:
    """Load a checkpoint written by `save_checkpoint`; returns {"step", "extra"}."""
    directory = Path(directory)
    try:
        trainer = json.loads((directory / TRAINER_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BadCheckpoint(f"{directory / TRAINER_FILE} is missing or corrupt: {e}") from e
    weights = read_safetensors(directory / MODEL_FILE)
    for name, module in modules.items():
        prefix = f"{name}."
        state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        load_state_dict_strict(module, state, f"{directory} [{name}]")
    if optimizers:
        tensors = read_safetensors(directory / OPTIM_FILE)
        for name, optim in optimizers.items():
            if name not in trainer["optimizers"]:
                raise BadCheckpoint(f"{directory}: no state for optimizer {name!r}")
            optim.load_state_dict(_optim_from_flat(name, tensors, trainer["optimizers"][name]))
    if restore_rng:
        torch.set_rng_state(torch.tensor(trainer["torch_rng"], dtype=torch.uint8))
    return {"step": int(trainer["step"]), "extra": trainer.get("extra", {})}


class Pretrained:
    """`save_pretrained` / `from_pretrained` for an nn.Module built from one config: a checkpoint
    directory (the module under the name `checkpoint_name`) plus the config as JSON beside it.

    Subclasses set `config_class` (with `load(dir)`) and `checkpoint_kind`, keep their config
    in `self.config`, and take it as their only constructor argument.
    """

    config_class: ClassVar[Any]
    checkpoint_kind: ClassVar[str]
    checkpoint_name: ClassVar[str] = "tokenizer"
    config: Any

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        assert isinstance(self, torch.nn.Module)
        path = save_checkpoint(directory, {self.checkpoint_name: self}, step=0, extra={"kind": self.checkpoint_kind})
        self.config.save(path)
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> Self:
        directory = Path(directory)
        if not directory.is_dir():
            raise BadInputFile(f"{cls.checkpoint_kind.replace('_', ' ')} directory {directory} does not exist")
        model = cls(cls.config_class.load(directory))  # type: ignore[call-arg]
        assert isinstance(model, torch.nn.Module)
        load_checkpoint(directory, {cls.checkpoint_name: model}, restore_rng=False)
        return model.eval()
