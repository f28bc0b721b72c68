import numpy as np
import pytest
import torch
from test_audio_tokenizer import SMALL  # the same small tokenizer (tests/audio is on sys.path)

from dina.audio.stream import StreamingMelDecoder, StreamingWaveDecoder
from dina.audio.tokenizer import AudioTokenizer
from dina.errors import BadCodes


@pytest.fixture(scope="module")
def model() -> AudioTokenizer:
    torch.manual_seed(0)
    m = AudioTokenizer(SMALL).eval()
    torch.nn.init.normal_(m.refiner.out.weight, std=0.1)  # a refiner that changes the mel
    return m


def _codes(model, tokens=10):
    t = np.arange(tokens * 1280) / 16_000
    return model.encode((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16_000)


@pytest.mark.parametrize("refine", [False, True])
def test_streaming_equals_offline(model, refine):
    codes = _codes(model)  # 10 tokens; decoder windows of 4 tokens
    offline = model.decode_mel(codes, refine=refine, temperature=0.0)
    stream = StreamingMelDecoder(model, refine=refine)
    parts, sizes = [], []
    start = 0
    for n in (1, 3, 2, 4):
        out = stream.push(codes.codes[start : start + n])
        start += n
        parts.append(out)
        sizes.append(out.shape[-1])
    parts.append(stream.flush())
    torch.testing.assert_close(torch.cat(parts, dim=-1), offline, atol=1e-5, rtol=1e-5)
    # One token is held back for the post-net's look-ahead (8 frames), and windows close at 4 tokens.
    assert sizes == [0, 24, 16, 32]


@pytest.mark.parametrize("chunks", [(1, 1, 1, 1, 1, 1, 1, 1, 1, 1), (1, 3, 2, 4), (10,)])
def test_streaming_wave_equals_offline_decode(model, chunks):
    """Samples leave chunk by chunk and join into the offline vocoder output (no clicks at joins)."""
    codes = _codes(model)
    offline, _ = model.decode(codes, refine=False)
    stream = StreamingWaveDecoder(model, refine=False)
    parts, start = [], 0
    for n in chunks:
        parts.append(stream.push(codes.codes[start : start + n]))
        start += n
    parts.append(stream.flush())
    assert sum(p.numel() for p in parts[:-1]) > 0  # samples left before the end of the stream
    joined = torch.cat(parts)[: codes.num_samples]
    torch.testing.assert_close(joined, torch.from_numpy(offline), atol=1e-4, rtol=1e-4)


def test_bad_chunks(model):
    stream = StreamingMelDecoder(model)
    with pytest.raises(BadCodes):
        stream.push(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(BadCodes):
        stream.push(torch.full((2, 3), 99))
    assert stream.flush().shape == (16, 0)
