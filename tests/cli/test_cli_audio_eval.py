"""`dina audio eval` on a tiny saved tokenizer (judge off), and a missing manifest: exit 2, one line."""

import json

import numpy as np
import soundfile as sf
import torch

from dina.audio.config import audio_tiny
from dina.audio.tokenizer import AudioTokenizer
from dina.cli.main import main


def test_eval_writes_json(tmp_path, capsys):
    torch.manual_seed(0)
    AudioTokenizer(audio_tiny()).save_pretrained(tmp_path / "tok")
    (tmp_path / "sw" / "wavs").mkdir(parents=True)
    t = np.arange(8000) / 16_000
    sf.write(tmp_path / "sw" / "wavs" / "0.wav", (0.2 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16_000)
    (tmp_path / "sw" / "manifest.jsonl").write_text(json.dumps({"path": "wavs/0.wav", "text": "a star"}) + "\n")
    out = tmp_path / "eval.json"
    argv = ["audio", "eval", "--tokenizer", tmp_path / "tok", "--data", tmp_path / "sw", "--json", out, "--no-judge"]
    assert main([str(a) for a in argv]) == 0
    result = json.loads(out.read_text())
    assert result["clips"] == 1 and result["tokens_per_second"] == 12.5 and result["judge_wer_original"] is None
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["clips"] == 1


def test_missing_manifest_exits_2(tmp_path, cli_fails):
    argv = [
        "audio",
        "eval",
        "--tokenizer",
        tmp_path / "tok",
        "--data",
        tmp_path / "none.jsonl",
        "--json",
        tmp_path / "o",
    ]
    cli_fails(argv, "does not exist")
    cli_fails([*argv[:-1], tmp_path / "o", "--limit", "0"], "positive integer")
    cli_fails([*argv, "--temperature", "-1"], "number >= 0")
    cli_fails([*argv, "--temperature", "hot"], "number >= 0")
    cli_fails(
        ["audio", "train", "--preset", "longcat_next", "--front-end", "trained", "--data", "d", "--out", "o"], "tiny"
    )
