"""`dina audio encode|decode` through files, and bad input: one line on stderr, exit 2."""

import numpy as np
import pytest
import soundfile as sf
import torch

from dina.audio.config import audio_tiny
from dina.audio.tokenizer import AudioCodes, AudioTokenizer, load_audio_codes, save_audio_codes
from dina.cli.main import main
from dina.io.audio import load_audio


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer"
    torch.manual_seed(0)
    AudioTokenizer(audio_tiny()).save_pretrained(path)
    return path


def test_encode_decode_round_trip_through_files(tmp_path, tokenizer, capsys):
    t = np.arange(44_100) / 44_100
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(tmp_path / "a.wav", np.stack([tone, tone], axis=1), 44_100)  # 1 s, stereo, 44.1 kHz
    sf.write(tmp_path / "b.wav", tone[:4410], 44_100)  # 0.1 s
    out = tmp_path / "codes.safetensors"
    assert (
        main(
            [
                "audio",
                "encode",
                str(tmp_path / "a.wav"),
                str(tmp_path / "b.wav"),
                "--tokenizer",
                str(tokenizer),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    clips = load_audio_codes(out)
    assert [c.codes.shape for c in clips] == [(13, 8), (2, 8)] and [c.num_samples for c in clips] == [16_000, 1600]
    assert main(["audio", "decode", str(out), "--tokenizer", str(tokenizer), "--out", str(tmp_path / "wav")]) == 0
    assert [load_audio(tmp_path / "wav" / f"000{i}.wav").shape for i in (0, 1)] == [(16_000,), (1600,)]
    assert "decoded 2 clip(s)" in capsys.readouterr().out
    options = ["--refine", "--temperature", "0", "--wave-from-mel", "griffin-lim"]
    argv = ["audio", "decode", str(out), "--tokenizer", str(tokenizer), "--out", str(tmp_path / "gl"), *options]
    assert main(argv) == 0
    assert load_audio(tmp_path / "gl" / "0001.wav").shape == (1600,)


def test_bad_inputs(tmp_path, tokenizer, cli_fails):
    (tmp_path / "t.wav").write_bytes(b"RIFF....WAVEfmt truncated")
    cli_fails(
        ["audio", "encode", tmp_path / "t.wav", "--tokenizer", tokenizer, "--out", tmp_path / "c.safetensors"],
        "corrupt",
    )
    cli_fails(
        ["audio", "encode", tmp_path / "none.wav", "--tokenizer", tokenizer, "--out", tmp_path / "c"],
        "does not exist",
    )
    cli_fails(
        ["audio", "encode", tmp_path / "t.wav", "--tokenizer", tmp_path / "nope", "--out", tmp_path / "c"],
        "does not exist",
    )
    save_audio_codes(tmp_path / "bad.safetensors", [AudioCodes(codes=torch.full((2, 8), 9000), num_samples=100)])
    cli_fails(
        ["audio", "decode", tmp_path / "bad.safetensors", "--tokenizer", tokenizer, "--out", tmp_path / "o"],
        "ids must be in",
    )
    save_audio_codes(
        tmp_path / "levels.safetensors", [AudioCodes(codes=torch.zeros(2, 3, dtype=torch.long), num_samples=100)]
    )
    cli_fails(
        ["audio", "decode", tmp_path / "levels.safetensors", "--tokenizer", tokenizer, "--out", tmp_path / "o"],
        "(T, 8)",
    )
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    cli_fails(
        ["audio", "decode", tmp_path / "junk.safetensors", "--tokenizer", tokenizer, "--out", tmp_path / "o"],
        "not a dina audio codes file",
    )
