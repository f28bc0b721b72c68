"""`dina.audio.evaluate`: MCD against a direct computation, codebook usage, token rate, the
whole evaluation on a tiny manifest (judge off), bad data paths, first-chunk latency."""

import json
import math
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf
import torch

from dina.audio import stream
from dina.audio.config import audio_tiny
from dina.audio.evaluate import (
    FIRST_CHUNK_TOKENS,
    codebook_stats,
    evaluate_audio,
    first_chunk_latency_ms,
    load_speech,
    mcd_per_frame,
    mel_cepstral_distortion,
    token_rates,
)
from dina.audio.mel import MelConfig
from dina.audio.tokenizer import AudioCodes, AudioTokenizer
from dina.errors import BadInputFile, BadManifest


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(0)
    return AudioTokenizer(audio_tiny()).eval()


def write_clips(folder, seconds=(0.96, 0.5, 0.7)):
    """Tones with a little noise as a SpeechWorld-like manifest; returns the manifest path."""
    (folder / "wavs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, s in enumerate(seconds):
        t = np.arange(round(s * 16_000)) / 16_000
        wave = 0.2 * np.sin(2 * np.pi * (150 + 50 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(folder / "wavs" / f"{i}.wav", wave.astype(np.float32), 16_000)
        rows.append({"path": f"wavs/{i}.wav", "text": "a red circle", "voice": f"v{i % 2}"})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "manifest.jsonl"


def test_mcd_is_zero_for_identical_mels_and_matches_a_direct_computation():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(20, 7, generator=gen)
    b = a + 0.1 * torch.randn(20, 7, generator=gen)
    assert mel_cepstral_distortion(a, a) == 0.0
    assert mel_cepstral_distortion(a, b) > 0.0
    cfg = MelConfig(n_mels=20)
    ln_a = (cfg.scale * a.double().numpy() - cfg.offset) * math.log(10) / 2  # ln amplitude, Whisper scaling undone
    ln_b = (cfg.scale * b.double().numpy() - cfg.offset) * math.log(10) / 2
    m = np.arange(20)[:, None]  # the real cepstrum of the symmetric log spectrum, by its definition
    cos = np.cos(np.pi * np.arange(1, 13)[:, None, None] * (m + 0.5) / 20)
    ca, cb = (cos * ln_a).sum(1) / 20, (cos * ln_b).sum(1) / 20
    expected = (10 / math.log(10)) * np.sqrt(2 * ((ca - cb) ** 2).sum(axis=0))
    np.testing.assert_allclose(mcd_per_frame(a, b, cfg), expected, rtol=1e-10)
    assert mel_cepstral_distortion(a, b, cfg) == pytest.approx(expected.mean())
    # a level change moves c0 only: no distortion
    assert mel_cepstral_distortion(a.double(), a.double() + 0.3) == pytest.approx(0.0, abs=1e-9)


def test_codebook_usage_per_level_and_tokens_per_second():
    codes = [
        AudioCodes(codes=torch.tensor([[0, 1], [1, 1], [2, 1]]), num_samples=3 * 1280),
        AudioCodes(codes=torch.tensor([[0, 3]]), num_samples=1280),
    ]
    stats = codebook_stats(codes, (4, 8))
    assert stats["codebook_usage"] == [0.75, 0.25]
    level1 = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))  # exp(entropy) of ids 1, 1, 1, 3
    assert stats["codebook_perplexity"][1] == pytest.approx(level1, abs=1e-3)
    rates = token_rates(codes, (4, 8))
    assert rates["tokens"] == 4 and rates["tokens_per_second"] == 12.5 and rates["bits_per_second"] == 12.5 * 5
    short = [AudioCodes(codes=torch.zeros(2, 2, dtype=torch.long), num_samples=1600)]  # 0.1 s in 2 tokens
    assert token_rates(short, (4, 8))["tokens_per_second"] == 12.5
    assert token_rates(short, (4, 8))["tokens_per_second_unpadded"] == 20.0


def test_eval_without_judge_writes_every_field(tmp_path, tokenizer):
    manifest = write_clips(tmp_path / "sw")
    result = evaluate_audio(tokenizer, tmp_path / "sw", judge=False, progress=False)
    for key in (
        "mel_l1",
        "mel_l1_decoder",
        "mel_cepstral_distortion",
        "codebook_usage",
        "tokens_per_second",
        "judge_wer_original",
        "judge_wer_reconstructed",
        "judge_wer_by_voice",
        "speaker_similarity",
        "encode_rtf",
        "decode_rtf",
        "first_chunk_latency_ms",
        "clips",
        "seconds",
        "refine",
        "vocoder",
    ):
        assert key in result, key
    assert result["clips"] == 3 and result["seconds"] == pytest.approx(2.16)
    assert result["mel_l1"] > 0 and result["mel_cepstral_distortion"] > 0
    assert len(result["codebook_usage"]) == 8 and all(0 < u <= 1 for u in result["codebook_usage"])
    assert result["tokens"] == 12 + 7 + 9 and result["judge_wer_original"] is None
    assert result["encode_rtf"] > 0 and result["decode_rtf"] > 0
    assert result["first_chunk_latency_ms"] > 0
    if result["speaker_similarity"] is None:
        assert result["speaker_similarity_note"]
    else:
        assert -1 <= result["speaker_similarity"] <= 1
    assert [c["path"] for c in result["per_clip"]] == ["wavs/0.wav", "wavs/1.wav", "wavs/2.wav"]
    json.dumps(result)  # JSON-serializable as is
    limited = evaluate_audio(
        tokenizer, manifest, limit=1, judge=False, refine=False, wave_from_mel="griffin-lim", progress=False
    )
    assert limited["clips"] == 1 and limited["refine"] is False and limited["vocoder"] == "griffin-lim"
    assert limited["first_chunk_latency_ms"] is None  # Griffin-Lim does not stream
    assert tokenizer.config.wave_from_mel == "vocoder"  # the tokenizer itself is left as it was


def test_bad_data_paths(tmp_path):
    with pytest.raises(BadInputFile, match="does not exist"):
        load_speech(tmp_path / "missing")
    with pytest.raises(BadInputFile, match=r"holds no manifest\.jsonl"):
        load_speech(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"path": "a.wav"}\n')
    with pytest.raises(BadManifest, match="missing key"):
        load_speech(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"path": "a.wav", "text": "hi"}\n')
    with pytest.raises(BadInputFile, match=r"a\.wav does not exist"):
        load_speech(tmp_path / "manifest.jsonl")


class FakeStreamingWaveDecoder:
    """Holds the first chunk back (look-ahead), then returns 160 samples per token pushed."""

    pushes: ClassVar[list[int]] = []

    def __init__(self, model, refine):
        self.model, self.refine, self.seen = model, refine, 0

    def push(self, codes_tL):
        FakeStreamingWaveDecoder.pushes.append(codes_tL.shape[0])
        self.seen += codes_tL.shape[0]
        return torch.zeros(0) if self.seen <= FIRST_CHUNK_TOKENS else torch.zeros(160 * codes_tL.shape[0])

    def flush(self):
        return torch.zeros(160)


def test_first_chunk_latency_pushes_until_samples_come_out(monkeypatch, tokenizer):
    codes = AudioCodes(codes=torch.zeros(10, 8, dtype=torch.long), num_samples=10 * 1280)
    monkeypatch.setattr(stream, "StreamingWaveDecoder", FakeStreamingWaveDecoder)
    FakeStreamingWaveDecoder.pushes = []
    latency = first_chunk_latency_ms(tokenizer, codes, refine=True, repeats=2)
    assert latency >= 0
    assert FakeStreamingWaveDecoder.pushes == [FIRST_CHUNK_TOKENS, 1] * 3  # warm-up + 2 repeats
