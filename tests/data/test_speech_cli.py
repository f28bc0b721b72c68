"""`dina data speech` and `dina data transcribe`: a summary line on success, one error line and exit 2 on bad input."""

from __future__ import annotations

import json

import pytest

from dina.cli.main import main


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dina: error:")
    return lines[0]


def test_speech_then_transcribe(tmp_path, capsys):
    out = tmp_path / "sw"
    assert (
        main(["data", "speech", "--out", str(out), "--n", "3", "--seed", "4", "--voices", "flite/slt,flite/awb"]) == 0
    )
    summary = capsys.readouterr().out.strip()
    assert summary.startswith("speech: 3 utterances") and "utt/s" in summary and "\n" not in summary
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["voice"] for r in rows} <= {"flite/slt", "flite/awb"}

    asr_json = tmp_path / "asr.json"
    assert main(["data", "transcribe", "--manifest", str(out / "manifest.jsonl"), "--json", str(asr_json)]) == 0
    printed = capsys.readouterr().out
    assert "WER" in printed and "flite" in printed
    result = json.loads(asr_json.read_text())
    assert result["n"] == 3 and set(result["wer_per_engine"]) == {"flite"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "speech", "--out", "{tmp}/w", "--n", "0"], "positive integer"),
        (["data", "speech", "--out", "{tmp}/w", "--n", "many"], "positive integer"),
        (["data", "speech", "--out", "{tmp}/w", "--n", "2", "--seed", "-1"], "seed"),
        (["data", "speech", "--out", "{tmp}/file", "--n", "2", "--voices", "flite/slt"], "is a file"),
        (["data", "speech", "--out", "{tmp}/w", "--n", "2", "--voices", "flite/nobody"], "unknown flite voice"),
        (["data", "speech", "--out", "{tmp}/w", "--n", "2", "--voices", ","], "voice list is empty"),
        (["data", "transcribe", "--manifest", "{tmp}/missing.jsonl"], "does not exist"),
        (["data", "transcribe", "--manifest", "{tmp}/bad.jsonl"], "line 2"),
        (["data", "transcribe", "--manifest", "{tmp}/corrupt.jsonl"], "corrupt"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("x")
    (tmp_path / "bad.jsonl").write_text('{"path": "a.wav", "text": "hi"}\n[1, 2]\n')
    (tmp_path / "corrupt.wav").write_bytes(b"not a wav file at all")
    (tmp_path / "corrupt.jsonl").write_text('{"path": "corrupt.wav", "text": "hi"}\n')
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    assert message in _one_error_line(capsys)
