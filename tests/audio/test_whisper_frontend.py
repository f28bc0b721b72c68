"""The frozen Whisper tiny.en front end: shapes, independence of rows, no trainable state, bad input."""

import numpy as np
import pytest
import torch

from dina.audio.config import audio_tiny
from dina.audio.encoder import AudioEncoderConfig, audio_encoder_whisper_tiny
from dina.audio.tokenizer import AudioTokenizer
from dina.audio.whisper_frontend import FrozenWhisperEncoder
from dina.errors import BadArgument, BadConfig


@pytest.fixture(scope="module")
def whisper() -> FrozenWhisperEncoder:
    return FrozenWhisperEncoder()


def _mel(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(seed)) * 0.3


def test_features_are_50_hz_and_384_wide(whisper):
    for frames in (8, 80, 264):
        out = whisper(_mel(frames))
        assert out.shape == (1, (frames - 1) // 2 + 1, 384) and torch.isfinite(out).all()
    assert list(whisper.parameters()) == [] and whisper.state_dict() == {}


def test_batched_rows_equal_rows_alone_and_padding_is_zero(whisper):
    a, b = _mel(64, 1), _mel(40, 2)
    batch = torch.cat([a, torch.nn.functional.pad(b, (0, 24))])
    out = whisper(batch, torch.tensor([64, 40]))
    torch.testing.assert_close(out[0], whisper(a)[0])
    torch.testing.assert_close(out[1, :20], whisper(b)[0])
    assert out[1, 20:].abs().max() == 0


def test_the_tokenizer_saves_no_whisper_weights(tmp_path):
    model = AudioTokenizer(audio_tiny("whisper-tiny.en")).eval()
    assert not any(k.startswith("encoder.encoder.") for k in model.state_dict())
    codes = model.encode(np.zeros(16_000, dtype=np.float32), 16_000)
    assert codes.codes.shape == (13, 8)
    model.save_pretrained(tmp_path)
    again = AudioTokenizer.from_pretrained(tmp_path)
    torch.testing.assert_close(again.encode(np.zeros(16_000, dtype=np.float32), 16_000).codes, codes.codes)


def test_bad_input_and_config(whisper):
    with pytest.raises(BadArgument, match="80"):
        whisper(torch.zeros(1, 64, 16))
    with pytest.raises(BadArgument, match="3000"):
        whisper(torch.zeros(1, 80, 3008))
    with pytest.raises(BadConfig, match="front_end"):
        AudioEncoderConfig(front_end="wav2vec")
    with pytest.raises(BadConfig, match="384"):
        AudioEncoderConfig(n_mels=80, dim=256, heads=4, front_end="whisper-tiny.en")
    with pytest.raises(BadConfig, match="front end"):
        audio_tiny("hubert")
    assert audio_encoder_whisper_tiny().token_dim == 1536


def test_the_cli_offers_every_front_end():
    from dina.audio.encoder import FRONT_ENDS
    from dina.cli.audio import FRONT_ENDS as CLI_FRONT_ENDS

    assert CLI_FRONT_ENDS == FRONT_ENDS
