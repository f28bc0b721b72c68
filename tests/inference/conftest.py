"""A model directory as `dina train model` writes one, from a random tiny model (for the pipeline
and evaluation tests: they check plumbing and shapes, not quality)."""

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

from dina.audio.config import audio_tiny
from dina.audio.tokenizer import AudioTokenizer
from dina.model.native import NativeModel
from dina.presets import tiny
from dina.text.bpe import TextTokenizer
from dina.vision.tokenizer import VisionTokenizer


@pytest.fixture(scope="session")
def make_model_dir(tmp_path_factory) -> Callable[..., Path]:
    """`make(texts, never_end_speech=False)`: a seeded random tiny model, a BPE trained on `texts`
    and untrained tiny vision and audio tokenizers, saved together; `never_end_speech` forbids the
    audio head's end class, so speech runs until max_new_tokens."""

    def make(texts: Sequence[str], *, never_end_speech: bool = False) -> Path:
        d = tmp_path_factory.mktemp("model")
        cfg = dataclasses.replace(tiny(), audio=audio_tiny("trained"))
        torch.manual_seed(0)
        model = NativeModel(cfg)
        if never_end_speech:
            with torch.no_grad():
                model.audio_head.heads[0].bias[-1] = -1e4
        model.save_pretrained(d)
        TextTokenizer.train(texts, cfg.vocab).save(d)
        VisionTokenizer(cfg.vision).save_pretrained(d / "vision")
        AudioTokenizer(cfg.audio).save_pretrained(d / "audio")
        return d

    return make
