"""Atomic writes: a crash never leaves a half-written file or destroys an earlier one.

Every writer goes through `atomic_path`: the data is written to a temporary file in
the destination's directory, flushed and fsync'ed, then renamed over the destination
(`os.replace` is atomic on POSIX within one filesystem).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dina.errors import BadInputFile


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create `path` as a directory (and its parents); a file in the way is a `BadInputFile`."""
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise BadInputFile(f"{parent} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask is process-wide, so not while threads write


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `dest`; on success it replaces `dest`, on error it is removed.

    `suffix` lets writers that infer the format from the extension (Pillow, soundfile,
    safetensors) see the right one.
    """
    dest = Path(dest)
    ensure_dir(dest.parent)
    if dest.is_dir():
        raise BadInputFile(f"{dest} is a directory, expected a file path")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix or dest.suffix, dir=dest.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a finished file gets the usual permissions
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text(dest: str | os.PathLike, text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike, obj: Any) -> None:
    write_text(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_jsonl(dest: str | os.PathLike, rows: Iterable[dict]) -> None:
    write_text(dest, "".join(json.dumps(row, sort_keys=False) + "\n" for row in rows))
