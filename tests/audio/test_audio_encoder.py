import math

import pytest
import torch

from dina.audio.encoder import (
    SAMPLES_PER_TOKEN,
    AudioEncoderConfig,
    AudioTokenEncoder,
    audio_encoder_longcat_next,
    audio_encoder_tiny,
    pad_to_tokens,
    sinusoids,
)
from dina.audio.mel import LogMel, MelConfig
from dina.errors import BadArgument, BadConfig

SMALL = AudioEncoderConfig(n_mels=16, dim=32, depth=2, heads=2, mlp_dim=64, max_frames=16)  # windows of 4 tokens


def _model(cfg: AudioEncoderConfig = SMALL, seed: int = 0) -> AudioTokenEncoder:
    torch.manual_seed(seed)
    return AudioTokenEncoder(cfg).eval()


@pytest.mark.parametrize("samples", [1, 160, 1279, 1280, 1281, 16_000, 16_001, 40_000])
def test_any_length_gives_ceil_t_over_1280_tokens_at_12_5_hz(samples: int) -> None:
    wave = pad_to_tokens(torch.randn(samples, generator=torch.Generator().manual_seed(samples)) * 0.1)
    n = max(1, math.ceil(samples / SAMPLES_PER_TOKEN))
    assert wave.shape == (n * SAMPLES_PER_TOKEN,)
    cfg = AudioEncoderConfig(n_mels=80, dim=32, depth=1, heads=2, mlp_dim=64)
    mel = LogMel(MelConfig(n_mels=80))(wave)
    assert mel.shape[-1] == 8 * n
    with torch.no_grad():
        tokens = _model(cfg)(mel)
    assert tokens.shape == (1, n, cfg.token_dim)
    assert 16_000 / SAMPLES_PER_TOKEN == 12.5


def test_padding_is_masked_batched_equals_alone() -> None:
    model = _model()
    long, short = torch.randn(1, 16, 32), torch.randn(1, 16, 16)
    batch = torch.cat([long, torch.cat([short, torch.full((1, 16, 16), 3.0)], dim=2)])
    with torch.no_grad():
        out = model(batch, torch.tensor([32, 16]))
        alone_long, alone_short = model(long), model(short)
    torch.testing.assert_close(out[0], alone_long[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1, :2], alone_short[0], rtol=1e-5, atol=1e-5)


def test_attention_is_bidirectional_within_a_window() -> None:
    model = _model()
    mel = torch.randn(1, 16, 32)
    later = mel.clone()
    later[..., -8:] += 1.0  # change only the last token's frames
    with torch.no_grad():
        a, b = model(mel), model(later)
    assert (a[0, 0] - b[0, 0]).abs().max() > 1e-4  # the first token sees the future


def test_one_call_covers_one_window_at_most() -> None:
    model = _model()
    assert SMALL.window_tokens == 4
    with torch.no_grad():
        assert model(torch.randn(1, 16, 32)).shape == (1, 4, SMALL.token_dim)
    with pytest.raises(BadArgument, match="window by window"):
        model(torch.randn(1, 16, 8 * 10))  # 40 encoder frames > 16 positions


def test_bridge_keeps_the_regrouped_frames_in_its_residual() -> None:
    model = _model()
    with torch.no_grad():
        for p in (model.bridge.down.weight, model.bridge.down.bias):
            p.zero_()
        x = torch.randn(1, 8, SMALL.dim)
        out = model.bridge(x)
    expected = torch.nn.functional.layer_norm(x.reshape(1, 2, 4 * SMALL.dim), (4 * SMALL.dim,), eps=SMALL.norm_eps)
    torch.testing.assert_close(out, expected)


def test_sinusoids_follow_whisper_layout() -> None:
    pos = sinusoids(10, 8)
    torch.testing.assert_close(pos[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    torch.testing.assert_close(pos[3, 0], torch.tensor(math.sin(3.0)))  # fastest timescale 1
    torch.testing.assert_close(pos[3, 3], torch.tensor(math.sin(3.0 / 10_000)))  # slowest 10,000


def test_presets() -> None:
    full = audio_encoder_longcat_next()
    assert (full.dim, full.depth, full.n_mels, full.token_dim, full.window_tokens) == (1280, 32, 128, 5120, 375)
    assert sum(p.numel() for p in AudioTokenEncoder(audio_encoder_tiny()).parameters()) < 3_000_000


def test_bad_input_and_config() -> None:
    model = _model()
    with pytest.raises(BadArgument, match="multiple of 8"):
        model(torch.randn(1, 16, 12))
    with pytest.raises(BadArgument, match=r"\(B, 16, L\)"):
        model(torch.randn(1, 15, 16))
    with pytest.raises(BadArgument, match="1-D"):
        pad_to_tokens(torch.zeros(2, 100))
    with pytest.raises(BadConfig):
        AudioEncoderConfig(dim=30, heads=4)
    with pytest.raises(BadConfig):
        AudioEncoderConfig(pool=2)
