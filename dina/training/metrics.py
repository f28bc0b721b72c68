"""A metrics JSONL that survives resumption: rows past the resumed step are dropped first.

Each row is one JSON object with at least `stage` and `step`. Appending is line-buffered and
flushed; on resume, `truncate_after(stage, step)` rewrites the file atomically without the
rows of that stage at or after `step`, so an interrupted-and-resumed run logs the same curve
as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dina.io.atomic import ensure_dir, write_text


class MetricsLog:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        ensure_dir(self.path.parent)

    def rows(self, stage: str | None = None) -> list[dict]:
        if not self.path.exists():
            return []
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in rows if stage is None or r.get("stage") == stage]

    def truncate_after(self, stage: str, step: int) -> None:
        keep = [r for r in self.rows() if not (r.get("stage") == stage and r.get("step", -1) >= step)]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def write(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
