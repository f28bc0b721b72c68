import pytest
import torch

from dina.audio.decoder import (
    LOOKAHEAD_MEL,
    AudioDecoder,
    AudioDecoderConfig,
    audio_decoder_longcat_next,
    audio_decoder_tiny,
)
from dina.errors import BadArgument, BadConfig

SMALL = AudioDecoderConfig(
    token_dim=24, dim=32, depth=2, heads=2, mlp_dim=64, n_mels=16, post_net_dim=16, max_frames=64
)


def _decoder(seed: int = 0) -> AudioDecoder:
    torch.manual_seed(seed)
    return AudioDecoder(SMALL).eval()


def test_eight_mel_frames_per_token() -> None:
    with torch.no_grad():
        for n in (1, 2, 7):
            assert _decoder()(torch.randn(3, n, 24)).shape == (3, 16, 8 * n)


def test_everything_before_the_post_net_is_causal() -> None:
    dec = _decoder()
    emb = torch.randn(1, 6, 24)
    later = emb.clone()
    later[:, 4:] += 1.0  # change tokens 4 and 5
    with torch.no_grad():
        a, b = dec.hidden(emb), dec.hidden(later)
        full_a, full_b = dec(emb), dec(later)
    torch.testing.assert_close(a[..., :32], b[..., :32])  # mel frames of tokens 0..3 unchanged
    assert (a[..., 32:] - b[..., 32:]).abs().max() > 1e-4
    # The post-net looks ahead exactly LOOKAHEAD_MEL frames: earlier frames are untouched.
    torch.testing.assert_close(full_a[..., : 32 - LOOKAHEAD_MEL], full_b[..., : 32 - LOOKAHEAD_MEL])
    assert (full_a[..., 32 - LOOKAHEAD_MEL : 32] - full_b[..., 32 - LOOKAHEAD_MEL : 32]).abs().max() > 1e-6


def test_a_prefix_decodes_like_the_whole() -> None:
    dec = _decoder()
    emb = torch.randn(2, 8, 24)
    with torch.no_grad():
        whole, prefix = dec.hidden(emb), dec.hidden(emb[:, :5])
    torch.testing.assert_close(prefix, whole[..., :40])


def test_start_frame_offsets_the_positions() -> None:
    dec = _decoder()
    emb = torch.randn(1, 2, 24)
    with torch.no_grad():
        a, b = dec.hidden(emb), dec.hidden(emb, start_frame=8)
    assert (a - b).abs().max() > 1e-4


def test_presets_and_bad_input() -> None:
    full = audio_decoder_longcat_next()
    assert (full.token_dim, full.dim, full.depth) == (5120, 1280, 8)
    tiny = audio_decoder_tiny()
    assert sum(p.numel() for p in AudioDecoder(tiny).parameters()) < 3_000_000
    dec = _decoder()
    with pytest.raises(BadArgument, match="embeddings"):
        dec(torch.randn(1, 3, 23))
    with pytest.raises(BadArgument, match="embeddings"):
        dec(torch.randn(1, 0, 24))
    with pytest.raises(BadArgument, match="windows"):
        dec(torch.randn(1, 17, 24))  # 68 frames > 64 positions
    with pytest.raises(BadConfig):
        AudioDecoderConfig(dim=30, heads=4)
