"""A one-hour clip: the model only ever sees one 30 s window (encoder) or one decoder window at a time."""

import numpy as np
import pytest
import torch

from dina.audio.config import audio_tiny
from dina.audio.tokenizer import AudioTokenizer

HOUR = 3600 * 16_000


@pytest.fixture(scope="module")
def model() -> AudioTokenizer:
    torch.manual_seed(0)
    return AudioTokenizer(audio_tiny("trained")).eval()  # 30 s windows; the frozen Whisper's are 10 s


def test_a_one_hour_clip_is_encoded_window_by_window(model, monkeypatch):
    wave = np.random.default_rng(0).normal(0, 0.05, HOUR).astype(np.float32)
    frames: list[int] = []
    real = model.encoder.forward

    def forward(mel_BML, *args, **kwargs):
        frames.append(mel_BML.shape[-1])
        return real(mel_BML, *args, **kwargs)

    monkeypatch.setattr(model.encoder, "forward", forward)
    codes = model.encode(wave, 16_000)
    assert codes.codes.shape == (45_000, 8) and codes.num_samples == HOUR
    assert len(frames) == 120 and max(frames) == 3000  # 120 windows of 30 s, never the whole hour


@pytest.mark.slow
def test_a_one_hour_clip_is_decoded_window_by_window(model, monkeypatch):
    codes = model.encode(np.random.default_rng(1).normal(0, 0.05, HOUR).astype(np.float32), 16_000)
    tokens: list[int] = []
    real = model.decoder.forward

    def forward(emb_BNC):
        tokens.append(emb_BNC.shape[1])
        return real(emb_BNC)

    monkeypatch.setattr(model.decoder, "forward", forward)
    wave, sr = model.decode(codes, refine=False)
    assert sr == 16_000 and wave.shape == (HOUR,) and np.isfinite(wave).all()
    assert len(tokens) == 120 and max(tokens) == 375
