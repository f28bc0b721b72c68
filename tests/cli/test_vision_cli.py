"""`dina vision ...` on bad input: one line on stderr, exit 2."""

import numpy as np
import pytest
import torch

from dina.cli.main import main
from dina.io.images import save_png
from dina.vision.config import vision_tiny
from dina.vision.tokenizer import VisionCodes, VisionTokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer"
    torch.manual_seed(0)
    VisionTokenizer(vision_tiny()).save_pretrained(path)
    return path


def test_encode_decode_round_trip_through_files(tmp_path, tokenizer, capsys):
    save_png(tmp_path / "a.png", np.full((56, 84, 3), 120, dtype=np.uint8))
    assert (
        main(
            [
                "vision",
                "encode",
                str(tmp_path / "a.png"),
                "--tokenizer",
                str(tokenizer),
                "--out",
                str(tmp_path / "c.safetensors"),
            ]
        )
        == 0
    )
    assert VisionCodes.load(tmp_path / "c.safetensors").codes[0].shape == (2, 3, 8)
    assert (
        main(
            [
                "vision",
                "decode",
                str(tmp_path / "c.safetensors"),
                "--tokenizer",
                str(tokenizer),
                "--out",
                str(tmp_path / "d"),
                "--no-refine",
            ]
        )
        == 0
    )
    assert (tmp_path / "d" / "0000.png").exists()


def test_bad_inputs(tmp_path, tokenizer, cli_fails):
    (tmp_path / "t.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cli_fails(
        ["vision", "encode", tmp_path / "t.png", "--tokenizer", tokenizer, "--out", tmp_path / "c.safetensors"],
        "corrupt",
    )
    cli_fails(
        ["vision", "encode", tmp_path / "none.png", "--tokenizer", tokenizer, "--out", tmp_path / "c"],
        "does not exist",
    )
    cli_fails(
        ["vision", "eval", "--tokenizer", tmp_path / "nope", "--images", tmp_path, "--json", tmp_path / "e.json"],
        "does not exist",
    )
    decode = ["vision", "decode", tmp_path / "c.safetensors", "--tokenizer", tokenizer, "--out", tmp_path / "o"]
    cli_fails([*decode, "--temperature", "-1"], "expected a finite number >= 0")
    bad = VisionCodes(codes=(torch.full((2, 2, 8), 5000),), sizes=((56, 56),), original_sizes=((56, 56),))
    bad.save(tmp_path / "bad.safetensors")
    cli_fails(
        ["vision", "decode", tmp_path / "bad.safetensors", "--tokenizer", tokenizer, "--out", tmp_path / "o"],
        "ids must be in",
    )
    cli_fails(
        ["vision", "train", "--data", tmp_path / "missing", "--out", tmp_path / "run", "--steps", "2"],
        "does not exist",
    )
    cli_fails(
        [
            "vision",
            "study",
            "rvq-depth",
            "--out",
            tmp_path / "s",
            "--data",
            tmp_path,
            "--val",
            tmp_path,
            "--tokenizer",
            tmp_path / "none",
        ],
        "trained tokenizer",
    )
