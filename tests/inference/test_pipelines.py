"""The five pipelines and `dina generate` (report Sec. 2.5; release §2): each turns its inputs into a
prompt, runs the engine and decodes what comes back; a model directory is self-contained; bad
input is refused. A random tiny model stands in for a trained one: these tests check plumbing and
shapes, not quality (`dina eval model` measures that)."""

import json
import shutil

import numpy as np
import pytest
import torch

from dina.audio.encoder import SAMPLES_PER_TOKEN
from dina.cli.main import main
from dina.errors import BadArgument, BadAudio, BadInputFile
from dina.inference.engine import GenerationConfig
from dina.inference.pipelines import Pipelines
from dina.inference.sampling import GREEDY
from dina.io.audio import save_wav
from dina.io.images import save_png

TEXTS = ["a red circle on the left", "Describe the image.", "Transcribe the audio.", "Say: hello", "2 3"] * 4


@pytest.fixture(scope="module")
def model_dir(make_model_dir):
    """A random tiny model whose audio head never ends a segment, with its three tokenizers."""
    return make_model_dir(TEXTS, never_end_speech=True)


@pytest.fixture(scope="module")
def pipes(model_dir):
    return Pipelines.load(model_dir)


def _greedy(n: int, **kw) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=n, text=GREEDY, image=GREEDY, audio=GREEDY, **kw)


def _tone(seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _picture() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (56, 84, 3), dtype=np.uint8)


def test_a_model_directory_must_hold_its_tokenizers(tmp_path, model_dir):
    partial = tmp_path / "partial"
    shutil.copytree(model_dir, partial)
    shutil.rmtree(partial / "vision")
    with pytest.raises(BadInputFile, match=r"no vision tokenizer \(vision/\)"):
        Pipelines.load(partial)


def test_see_hear_and_reply_return_text(pipes):
    for text in (
        pipes.see([_picture()], gen=_greedy(6)),
        pipes.see([_picture(), _picture()], "what?", gen=_greedy(6)),
        pipes.hear(_tone(), 16_000, gen=_greedy(6)),
        pipes.reply("hello", gen=_greedy(6)),
    ):
        assert isinstance(text, str)


def test_paint_decodes_the_generated_grid_at_28_px_per_token(pipes):
    picture = pipes.paint("a red circle", 2, 3, gen=_greedy(2 * 4 + 1))
    assert picture.complete and picture.codes.shape == (2, 3, 8)
    assert picture.image.shape == (56, 84, 3) and picture.image.dtype == np.uint8
    cut = pipes.paint("a red circle", 3, 3, gen=_greedy(5))  # one full row, then max_new_tokens
    assert not cut.complete and cut.codes.shape == (1, 3, 8) and cut.image.shape == (28, 84, 3)
    same = pipes.paint("a red circle", 2, 3, gen=_greedy(2 * 4 + 1))
    assert torch.equal(same.codes, picture.codes)
    with pytest.raises(BadArgument, match="image size"):
        pipes.paint("a red circle", 0, 3)


@pytest.mark.parametrize("delay", [0, None])
def test_speak_and_chat_decode_the_speech_they_generate(pipes, delay):
    speech = pipes.speak("hello", gen=_greedy(12, delay=delay))
    assert not speech.complete  # this model's audio head never ends a segment
    # Parallel: the audio starts at step 1; serial: only once the text ends, which this model's
    # text stream never does within 12 steps, so the speech is empty (and marked incomplete).
    frames = 12 - 1 if delay == 0 else 0  # step 0 reads audiotext_start
    assert speech.codes.shape == (frames, 8)
    assert speech.wave.dtype == np.float32 and speech.wave.shape == (frames * SAMPLES_PER_TOKEN,)
    assert speech.text  # the guiding text stream
    answer = pipes.chat(_tone(), 16_000, gen=_greedy(12, delay=delay))
    assert answer.codes.shape == (frames, 8)


def test_voice_cloning_refuses_a_silent_reference(pipes):
    with pytest.raises(BadAudio, match="silence"):
        pipes.speak("hello", gen=_greedy(4), reference=(np.zeros(16_000, dtype=np.float32), 16_000))
    cloned = pipes.speak("hello", gen=_greedy(8), reference=(_tone(), 16_000))
    assert cloned.codes.shape[0] >= 1
    with pytest.raises(BadArgument):
        pipes.speak("  ")


def test_generate_cli_writes_each_pipelines_files(tmp_path, model_dir, capsys):
    image, clip = tmp_path / "in.png", tmp_path / "in.wav"
    save_png(image, _picture())
    save_wav(clip, _tone(), 16_000)
    base = ["generate", "--model", str(model_dir), "--max-new-tokens", "12", "--temperature", "0"]
    runs = {
        "paint": ["--prompt", "a red circle", "--image-size", "2x2"],
        "see": ["--image", str(image)],
        "hear": ["--audio", str(clip)],
        "speak": ["--prompt", "hello", "--speak", "--delay", "1"],
        "chat": ["--audio", str(clip), "--speak"],
        "reply": ["--prompt", "hello", "--stream"],
    }
    for name, extra in runs.items():
        out = tmp_path / name
        assert main([*base, *extra, "--out", str(out)]) == 0, name
        result = json.loads((out / "result.json").read_text())
        assert result["pipeline"] == name
        expected = {"paint": "image.png", "speak": "speech.wav", "chat": "speech.wav"}.get(name, "reply.txt")
        assert (out / expected).is_file()
    serial = tmp_path / "serial"
    assert main([*base, "--prompt", "hello", "--speak", "--delay", "serial", "--out", str(serial)]) == 0
    result = json.loads((serial / "result.json").read_text())
    assert result["speech"] is None and not result["complete"] and not (serial / "speech.wav").exists()
    capsys.readouterr()
    for bad in (["--image-size", "0x2", "--prompt", "x"], ["--delay", "soon", "--prompt", "x"], []):
        assert main([*base, *bad, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("dina: error:")
