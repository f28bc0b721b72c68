import json
import math

import numpy as np
import pytest
import torch

from dina.audio.config import AudioTokenizerConfig, audio_longcat_next, audio_tiny
from dina.audio.decoder import AudioDecoderConfig
from dina.audio.encoder import AudioEncoderConfig
from dina.audio.mel import MelConfig
from dina.audio.refiner import MelRefinerConfig
from dina.audio.tokenizer import AudioCodes, AudioTokenizer
from dina.audio.vocoder import VocoderConfig
from dina.errors import BadAudio, BadCheckpoint, BadCodes, BadConfig, BadInputFile
from dina.quantize import RVQConfig

SMALL = AudioTokenizerConfig(
    mel=MelConfig(n_mels=16),
    encoder=AudioEncoderConfig(n_mels=16, dim=16, depth=1, heads=2, mlp_dim=32, max_frames=16),  # 4-token windows
    rvq=RVQConfig(dim=64, codebook_sizes=(8, 8, 4)),
    decoder=AudioDecoderConfig(
        token_dim=64, dim=16, depth=1, heads=2, mlp_dim=32, n_mels=16, post_net_dim=16, max_frames=16
    ),
    refiner=MelRefinerConfig(n_mels=16, cond_dim=64, channels=8, dilations=(1,), time_dim=8, groups=4, steps=2),
    vocoder=VocoderConfig(n_mels=16, dim=16, depth=1, mlp_ratio=2),
    griffin_lim_iters=4,
)


@pytest.fixture(scope="module")
def model() -> AudioTokenizer:
    torch.manual_seed(0)
    return AudioTokenizer(SMALL).eval()


def speech_like(samples: int, sr: int = 16_000, seed: int = 0) -> np.ndarray:
    t = np.arange(samples) / sr
    noise = np.random.default_rng(seed).standard_normal(samples)
    return (0.3 * np.sin(2 * np.pi * 150 * t) * np.sin(2 * np.pi * 3 * t) + 0.01 * noise).astype(np.float32)


@pytest.mark.parametrize("samples", [160, 1279, 1281, 16_000, 12_345])
def test_codes_are_12_5_hz_and_decode_to_the_original_length(model, samples):
    codes = model.encode(speech_like(samples), 16_000)
    assert codes.codes.shape == (math.ceil(samples / 1280), 3) and codes.num_samples == samples
    wave, sr = model.decode(codes)
    assert sr == 16_000 and wave.shape == (samples,) and wave.dtype == np.float32 and np.isfinite(wave).all()


def test_silence_and_clipping_encode(model):
    assert model.encode(np.zeros(8000, np.float32), 16_000).codes.shape == (7, 3)
    clipped = np.clip(speech_like(8000) * 20, -1, 1)
    assert model.encode(clipped, 16_000).codes.shape == (7, 3)


def test_any_rate_and_channels_are_converted_first(model):
    mono16 = speech_like(16_000)
    t = np.arange(44_100) / 44_100
    stereo44 = np.stack([0.3 * np.sin(2 * np.pi * 150 * t) * np.sin(2 * np.pi * 3 * t)] * 2, axis=1).astype(np.float32)
    a, b = model.encode(mono16, 16_000), model.encode(stereo44, 44_100)
    assert a.codes.shape == b.codes.shape and b.num_samples == 16_000


def test_long_audio_is_encoded_in_windows(model):
    wave = torch.from_numpy(speech_like(10 * 1280))  # 10 tokens, windows of 4
    mels = model.mel_windows(wave)
    assert [m.shape[-1] for m in mels] == [32, 32, 16]
    codes = model.encode(wave.numpy(), 16_000).codes
    by_hand = [model.rvq.encode(model.encoder(model.front_end(wave[s : s + 5120]))[0]) for s in (0, 5120, 10240)]
    assert torch.equal(codes, torch.cat(by_hand))
    changed = wave.clone()
    changed[5120:] = 0.0  # only the second and third windows change
    assert torch.equal(model.encode(changed.numpy(), 16_000).codes[:4], codes[:4])


def test_decode_of_codes_is_exact_and_deterministic(model):
    codes = model.encode(speech_like(6000), 16_000)
    emb = model.rvq.decode(codes.codes)
    by_hand = sum(model.rvq.codebooks[level].embed_KD[codes.codes[:, level]] for level in range(3))
    torch.testing.assert_close(emb, by_hand)
    a, b = model.decode(codes)[0], model.decode(codes)[0]
    assert np.array_equal(a, b)


def test_decode_runs_the_mel_refiner(model):
    codes = model.encode(speech_like(6000), 16_000)
    coarse = model.decode_mel(codes, refine=False)
    # Untrained, the refiner's zero head returns the coarse mel (exactly at temperature 0).
    torch.testing.assert_close(model.decode_mel(codes, temperature=0.0), coarse)
    torch.nn.init.normal_(model.refiner.out.weight, std=0.1)
    try:
        refined = model.decode_mel(codes, seed=1)
        assert torch.equal(refined, model.decode_mel(codes, seed=1)) and not torch.allclose(refined, coarse)
    finally:
        torch.nn.init.zeros_(model.refiner.out.weight)


def test_save_and_load_round_trip(tmp_path, model):
    codes = model.encode(speech_like(5000), 16_000)
    codes.save(tmp_path / "c.safetensors")
    again = AudioCodes.load(tmp_path / "c.safetensors")
    assert torch.equal(again.codes, codes.codes) and again.num_samples == 5000
    loaded = AudioTokenizer.from_pretrained(model.save_pretrained(tmp_path / "tok"))
    assert torch.equal(loaded.encode(speech_like(5000), 16_000).codes, codes.codes)
    np.testing.assert_array_equal(loaded.decode(codes)[0], model.decode(codes)[0])


def test_a_mismatched_tokenizer_directory_names_the_key(tmp_path, model):
    path = model.save_pretrained(tmp_path / "tok")
    cfg = json.loads((path / "config.json").read_text())
    cfg["rvq"]["codebook_sizes"] = [8, 8, 8]
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        BadCheckpoint, match=r"'rvq\.codebooks\.2\.embed_KD' has shape \(4, 64\), the model expects \(8, 64\)"
    ):
        AudioTokenizer.from_pretrained(path)
    with pytest.raises(BadInputFile):
        AudioTokenizer.from_pretrained(tmp_path / "missing")


def test_bad_codes_are_refused(tmp_path, model):
    good = model.encode(speech_like(3000), 16_000)
    bad = [
        AudioCodes(codes=good.codes[:, :2], num_samples=3000),  # wrong level count
        AudioCodes(codes=good.codes.clone().fill_(8), num_samples=3000),  # out of range
        AudioCodes(codes=good.codes.float(), num_samples=3000),
        AudioCodes(codes=good.codes[:0], num_samples=1),
        AudioCodes(codes=good.codes, num_samples=10 * 1280),  # more samples than the tokens hold
    ]
    for codes in bad:
        with pytest.raises(BadCodes):
            model.decode(codes)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BadCodes):
        AudioCodes.load(tmp_path / "junk.safetensors")
    with pytest.raises(BadInputFile):
        AudioCodes.load(tmp_path / "none.safetensors")


def test_bad_audio_is_refused(model):
    for wave in (np.zeros(0, np.float32), np.full(100, np.nan, np.float32), np.zeros((2, 2, 2), np.float32)):
        with pytest.raises(BadAudio):
            model.encode(wave, 16_000)
    with pytest.raises(BadAudio, match="float"):
        model.encode(np.zeros(100, np.int16), 16_000)


def test_presets_agree():
    assert audio_tiny().frame_rate == 12.5 and audio_longcat_next().codebook_sizes[0] == 8192
    with pytest.raises(BadConfig):
        AudioTokenizerConfig(mel=MelConfig(n_mels=80))  # the release encoder takes 128 bins


def test_decode_follows_the_configs_refiner_choice():
    tiny = AudioTokenizer(audio_tiny("trained")).eval()  # tiny decodes without the refiner (measured)
    assert tiny.refines(None) is False and tiny.refines(True) is True
    codes = tiny.encode(speech_like(4000), 16_000)
    torch.nn.init.normal_(tiny.refiner.out.weight, std=0.1)  # a refiner that changes the mel
    torch.testing.assert_close(tiny.decode_mel(codes), tiny.decode_mel(codes, refine=False))
    assert not torch.allclose(tiny.decode_mel(codes, refine=True), tiny.decode_mel(codes, refine=False))
