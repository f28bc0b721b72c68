"""`dina data shapes` and `dina data judge` through the real entry point."""

from __future__ import annotations

import json

import pytest

from dina.cli.main import main


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dina: error:"), err
    return err[0]


def test_generate_then_judge(tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["data", "shapes", "--out", str(out), "--n", "4", "--seed", "2", "--split", "val"]) == 0
    assert "images/s" in capsys.readouterr().out
    report = tmp_path / "judge.json"
    argv = ["data", "judge", "--manifest", str(out / "manifest.jsonl"), "--json", str(report), "--no-read-signs"]
    assert main(argv) == 0
    assert "exact scene 1.000" in capsys.readouterr().out
    result = json.loads(report.read_text())
    assert result["n"] == 4 and result["exact_scene_accuracy"] == 1.0 and result["sign_accuracy"] is None


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "shapes", "--out", "{tmp}/w", "--n", "0", "--seed", "1"],
        ["data", "shapes", "--out", "{tmp}/w", "--n", "-2", "--seed", "1"],
        ["data", "shapes", "--out", "{tmp}/w", "--n", "2", "--seed", "-1"],
        ["data", "shapes", "--out", "{tmp}/w", "--n", "2", "--seed", "1", "--split", "dev"],
        ["data", "shapes", "--out", "{tmp}/file", "--n", "2", "--seed", "1"],
        ["data", "judge", "--manifest", "{tmp}/none.jsonl", "--json", "{tmp}/r.json"],
        ["data", "judge", "--manifest", "{tmp}/file", "--json", "{tmp}/r.json"],
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv):
    (tmp_path / "file").write_text("{not json\n")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    _one_error_line(capsys)


def test_judge_names_a_missing_image(tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["data", "shapes", "--out", str(out), "--n", "2", "--seed", "0"]) == 0
    (out / "images" / "train_000000.png").unlink()
    argv = ["data", "judge", "--manifest", str(out / "manifest.jsonl"), "--json", str(tmp_path / "r.json")]
    assert main(argv) == 2
    assert "train_000000.png" in _one_error_line(capsys)
