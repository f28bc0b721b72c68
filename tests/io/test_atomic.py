"""Atomic writes never leave a half-written file and never destroy the previous one."""

import pytest

from dina.errors import BadInputFile
from dina.io.atomic import atomic_path, ensure_dir, write_json, write_text


def test_failed_write_keeps_previous_file(tmp_path):
    dest = tmp_path / "out.json"
    write_json(dest, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text('{"v": 2, "half')
        raise RuntimeError("crash mid-write")
    assert dest.read_text() == '{\n  "v": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left behind


def test_write_replaces_and_creates_parents(tmp_path):
    dest = tmp_path / "a" / "b" / "c.txt"
    write_text(dest, "one")
    write_text(dest, "two")
    assert dest.read_text() == "two"


def test_directory_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInputFile, match="not a directory"):
        ensure_dir(tmp_path / "f" / "sub")
    with pytest.raises(BadInputFile, match="not a directory"):
        write_text(tmp_path / "f" / "x.txt", "y")


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from dina.io.atomic import write_text

    write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~mask
