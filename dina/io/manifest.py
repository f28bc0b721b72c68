"""JSONL manifests: one JSON object per line, read with the line number of any bad line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dina.errors import BadInputFile, BadManifest


def read_manifest(path: str | os.PathLike, required: tuple[str, ...] = ()) -> list[dict]:
    """Read a JSONL manifest; every row must be an object holding the `required` keys.

    Blank lines are skipped. A malformed line raises `BadManifest` naming its number.
    """
    path = Path(path)
    if not path.exists():
        raise BadInputFile(f"manifest {path} does not exist")
    if not path.is_file():
        raise BadInputFile(f"manifest {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputFile(f"cannot read manifest {path}: {e}") from e
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadManifest(f"{path}, line {lineno}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise BadManifest(f"{path}, line {lineno}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in required if k not in row]
        if missing:
            raise BadManifest(f"{path}, line {lineno}: missing key(s) {', '.join(missing)}")
        rows.append(row)
    if not rows:
        raise BadManifest(f"manifest {path} has no entries")
    return rows
