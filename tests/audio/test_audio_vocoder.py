import json
import math

import pytest
import torch

from dina.audio.mel import LogMel, MelConfig
from dina.audio.vocoder import (
    HOP,
    StreamingVocoder,
    Vocoder,
    VocoderConfig,
    vocoder_longcat_next,
    vocoder_loss,
    vocoder_tiny,
)
from dina.errors import BadArgument, BadConfig

SMALL = VocoderConfig(dim=32, depth=3, mlp_ratio=2, lookahead=2)  # left_context 4 + 3 · 6 = 22 frames
P = SMALL.frame_offset  # 240: synthesis frame f covers samples [160 f - 240, 160 f + 400)


def _vocoder(seed: int = 0) -> Vocoder:
    torch.manual_seed(seed)
    return Vocoder(SMALL).eval()


def _mel(frames: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 80, frames, generator=torch.Generator().manual_seed(seed))


def test_160_samples_per_mel_frame() -> None:
    voc = _vocoder()
    with torch.no_grad():
        for frames in (1, 7, 100):
            wave = voc(_mel(frames, batch=2))
            assert wave.shape == (2, HOP * frames) and wave.dtype == torch.float32
            assert torch.isfinite(wave).all()


@pytest.mark.parametrize("chunk", [1, 3, 7, 40])
def test_streaming_equals_offline(chunk: int) -> None:
    voc = _vocoder()
    mel = _mel(40)[0]
    with torch.no_grad():
        offline = voc(mel[None])[0]
    stream = StreamingVocoder(voc)
    parts: list[torch.Tensor] = []
    bound = SMALL.left_context + SMALL.lookahead + SMALL.n_fft // HOP - 1
    for start in range(0, 40, chunk):
        parts.append(stream.push(mel[:, start : start + chunk]))
        received = min(40, start + chunk)
        # Final: every sample before the first synthesis frame that can still change.
        assert sum(p.numel() for p in parts) == max(0, HOP * (received - SMALL.lookahead) - P)
        assert stream.buffered_frames <= bound  # the window re-run per push stays bounded
    parts.append(stream.flush())
    torch.testing.assert_close(torch.cat(parts), offline, atol=1e-4, rtol=1e-4)
    # flush starts a new stream
    assert stream.push(mel[:, :0]).numel() == 0 and stream.flush().numel() == 0
    assert stream.push(mel[:, :2]).numel() == 0  # all look-ahead
    assert stream.push(mel[:, 2:5]).numel() == HOP * 3 - P  # frames 0-2 final, frame 3 starts at 240


def test_lookahead_and_history_are_bounded() -> None:
    voc = _vocoder()
    mel = _mel(40)
    with torch.no_grad():
        base = voc(mel)[0]
        future, past = mel.clone(), mel.clone()
        future[..., 20:] += 1.0  # frames >= 20 touch network frames >= 20 - lookahead = 18 ...
        past[..., :5] += 1.0  # frames < 5 touch network frames <= 4 + left_context = 26 ...
        after, before = voc(future)[0], voc(past)[0]
    # ... so the samples before synthesis frame 18, [0, 160 · 18 - P), are unchanged,
    first_changed = HOP * (20 - SMALL.lookahead) - P
    torch.testing.assert_close(after[:first_changed], base[:first_changed], atol=1e-6, rtol=0)
    assert (after[first_changed : first_changed + HOP] - base[first_changed : first_changed + HOP]).abs().max() > 1e-5
    # ... and the samples after synthesis frame 26's last one, 160 · 26 - P + n_fft - 1, too
    last_changed = HOP * (4 + SMALL.left_context) - P + SMALL.n_fft - 1
    torch.testing.assert_close(before[last_changed + 1 :], base[last_changed + 1 :], atol=1e-6, rtol=0)
    # (the change fades towards that bound; it does pass embed's own reach, network frame 8)
    embed_reach = HOP * (4 + SMALL.kernel - 1 - SMALL.lookahead) - P + SMALL.n_fft
    assert (before[embed_reach:] - base[embed_reach:]).abs().max() > 1e-7


def _harmonic_waves(batch: int = 4, seconds: float = 0.5) -> torch.Tensor:
    """Sums of 8 harmonics of a pitch gliding between 110 and 260 Hz, a different glide per row."""
    t = torch.arange(int(16_000 * seconds), dtype=torch.float64) / 16_000
    rows = []
    for b in range(batch):
        pitch = 110 + 50 * b + 60 * torch.sin(2 * math.pi * (1 + b) * t)
        phase = 2 * math.pi * torch.cumsum(pitch, 0) / 16_000
        rows.append(0.1 * sum(torch.sin(k * phase) / k for k in range(1, 9)))
    return torch.stack(rows).float()


def test_short_training_lowers_every_loss() -> None:
    torch.manual_seed(0)
    voc = Vocoder(SMALL)
    front = LogMel(MelConfig(n_mels=80))
    waves = _harmonic_waves()
    opt = torch.optim.AdamW(voc.parameters(), lr=2e-3)
    history = []
    for _ in range(60):
        parts = vocoder_loss(voc, waves, front)
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in parts.items()})
    assert set(history[0]) == {"loss", "spectral_convergence", "log_magnitude", "mel_l1"}
    for key in history[0]:
        first, last = (sum(h[key] for h in rows) / 5 for rows in (history[:5], history[-5:]))
        assert last < first, key


def test_presets_and_config_round_trip(tmp_path) -> None:
    tiny = vocoder_tiny()
    assert 500_000 <= sum(p.numel() for p in Vocoder(tiny).parameters()) <= 1_500_000
    full = vocoder_longcat_next()
    assert (full.n_mels, full.dim, full.depth) == (128, 512, 8)
    for cfg in (tiny, full, SMALL):
        assert VocoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    SMALL.save(tmp_path)
    assert VocoderConfig.load(tmp_path) == SMALL


@pytest.mark.parametrize(
    "bad",
    [{"n_fft": 500}, {"n_fft": 160}, {"lookahead": 7}, {"lookahead": -1}, {"dim": 0}, {"norm_eps": 0.0}],
)
def test_bad_config(bad: dict) -> None:
    with pytest.raises(BadConfig):
        VocoderConfig(**bad)


def test_bad_config_field() -> None:
    with pytest.raises(BadConfig, match="unknown"):
        VocoderConfig.from_dict({"hop": 256})


def test_bad_mel_shapes() -> None:
    voc = _vocoder()
    for mel in (torch.randn(80, 10), torch.randn(1, 79, 10), torch.randn(1, 80, 0)):
        with pytest.raises(BadArgument, match="log-mel"):
            voc(mel)
    stream = StreamingVocoder(voc)
    for mel in (torch.randn(1, 80, 3), torch.randn(128, 3)):
        with pytest.raises(BadArgument, match="mel chunks"):
            stream.push(mel)
    with pytest.raises(BadArgument, match="front end"):
        vocoder_loss(voc, torch.randn(1, 1600), LogMel(MelConfig(n_mels=128)))
