"""The CLI contract: bad input is one line on stderr and exit 2; usage errors too; no traceback."""

import subprocess
import sys

import pytest

from dina.cli.main import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "dina.cli.main", *args], capture_output=True, text=True, timeout=120)


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = _run("data", "shapes", "--out", str(tmp_path / "file"), "--n", "3", "--seed", "0")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("dina: error:")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["data", "shapes", "--out", "x", "--n", "0", "--seed", "0"],
        ["data", "shapes", "--out", "x", "--n", "-4", "--seed", "0"],
        ["data", "shapes", "--out", "x", "--n", "ten", "--seed", "0"],
        ["data", "pack", "--manifest", "/nonexistent/manifest.jsonl"],
        ["demo", "--seed", "-1"],
    ],
)
def test_usage_and_argument_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dina: error:") and err.count("\n") == 1


def test_unexpected_errors_keep_their_traceback(monkeypatch, capsys):
    import dina.cli.data as data_cli

    def boom(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(data_cli, "_run_pack", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["data", "pack", "--manifest", "m.jsonl"])


def test_help_lists_the_commands():
    proc = _run("--help")
    assert proc.returncode == 0
    for command in ("data", "demo"):
        assert command in proc.stdout
