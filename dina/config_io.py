"""JSON round-trip for frozen config dataclasses (shared by every component config).

`ConfigBase` gives a dataclass `to_dict` / `from_dict` / `save` / `load`; `dataclass_from_dict`
rebuilds any (nested) config dataclass and refuses unknown fields with a `BadConfig`.
This module imports nothing else from dina, so component modules can use it freely.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any, Self

from dina.errors import BadConfig, BadInputFile
from dina.io.atomic import write_json


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise BadConfig(message)


def dataclass_from_dict(cls: type, data: Any) -> Any:
    """Build the (possibly nested) dataclass `cls` from JSON data; unknown fields are a `BadConfig`.

    Works for any frozen config dataclass, including the component configs that live beside
    their modules (`SAEConfig`, `RVQConfig`, ...), so they nest into the configs here.
    """
    if not isinstance(data, dict):
        raise BadConfig(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise BadConfig(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            value = dataclass_from_dict(kind, value)
        elif typing.get_origin(kind) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise BadConfig(f"{cls.__name__}: {e}") from e


class ConfigBase:
    """JSON round-trip for the frozen config dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return dataclass_from_dict(cls, data)

    def save(self, directory: str | os.PathLike, name: str = "config.json") -> Path:
        path = Path(directory) / name
        write_json(path, {"type": type(self).__name__, **self.to_dict()})
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, name: str = "config.json") -> Self:
        path = Path(directory) / name
        if not path.is_file():
            raise BadInputFile(f"no {name} in {directory}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadConfig(f"{path} is not valid JSON: {e}") from e
        kind = data.pop("type", cls.__name__) if isinstance(data, dict) else None
        _check(kind == cls.__name__, f"{path} holds a {kind}, expected a {cls.__name__}")
        return cls.from_dict(data)
