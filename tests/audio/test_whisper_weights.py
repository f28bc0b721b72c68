from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from dina.audio.encoder import AudioEncoder, AudioEncoderConfig, sinusoids
from dina.errors import BadCheckpoint, BadInputFile
from dina.weights.whisper import (
    detect_whisper_layout,
    from_whisper,
    load_whisper_encoder,
    to_whisper,
    whisper_audio_encoder,
    whisper_encoder_config,
)

CFG = AudioEncoderConfig(n_mels=8, dim=32, depth=2, heads=2, mlp_dim=48, max_frames=16)


def _openai_state(cfg: AudioEncoderConfig = CFG, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random checkpoint named like OpenAI Whisper's encoder, plus a decoder tensor to ignore."""
    g = torch.Generator().manual_seed(seed)
    d, f = cfg.dim, cfg.mlp_dim

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.2

    e = "encoder."
    state = {e + "conv1.weight": r(d, cfg.n_mels, 3), e + "conv1.bias": r(d)}
    state |= {e + "conv2.weight": r(d, d, 3), e + "conv2.bias": r(d)}
    state[e + "positional_embedding"] = sinusoids(cfg.max_frames, d)
    for i in range(cfg.depth):
        b = f"{e}blocks.{i}."
        for ln in ("attn_ln", "mlp_ln"):
            state |= {f"{b}{ln}.weight": 1 + r(d), f"{b}{ln}.bias": r(d)}
        for lin in ("query", "value", "out"):
            state |= {f"{b}attn.{lin}.weight": r(d, d), f"{b}attn.{lin}.bias": r(d)}
        state[b + "attn.key.weight"] = r(d, d)
        state |= {
            b + "mlp.0.weight": r(f, d),
            b + "mlp.0.bias": r(f),
            b + "mlp.2.weight": r(d, f),
            b + "mlp.2.bias": r(d),
        }
    state |= {e + "ln_post.weight": 1 + r(d), e + "ln_post.bias": r(d)}
    state["decoder.token_embedding.weight"] = r(10, d)
    return state


# OpenAI -> Hugging Face, written out here independently of the adapter's tables.
_TO_HF = [
    ("positional_embedding", "embed_positions.weight"),
    ("blocks.", "layers."),
    ("attn_ln.", "self_attn_layer_norm."),
    ("attn.query.", "self_attn.q_proj."),
    ("attn.key.", "self_attn.k_proj."),
    ("attn.value.", "self_attn.v_proj."),
    ("attn.out.", "self_attn.out_proj."),
    ("mlp_ln.", "final_layer_norm."),
    ("mlp.0.", "fc1."),
    ("mlp.2.", "fc2."),
    ("ln_post.", "layer_norm."),
]


def _hf_state(prefix: str = "model.encoder.", cfg: AudioEncoderConfig = CFG) -> dict[str, torch.Tensor]:
    out = {}
    for key, t in _openai_state(cfg).items():
        if key.startswith("encoder."):
            for a, b in _TO_HF:
                key = key.replace(a, b)
            key = prefix + key.removeprefix("encoder.")
        else:
            key = "model." + key if prefix == "model.encoder." else key
        out[key] = t
    return out


def _reference(s: dict[str, torch.Tensor], mel: torch.Tensor, cfg: AudioEncoderConfig = CFG) -> torch.Tensor:
    """Whisper's encoder forward written out directly on the OpenAI-named tensors: (B, M, L) -> (B, F, D)."""
    e, d, hd = "encoder.", cfg.dim, cfg.dim // cfg.heads

    def ln(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, (d,), s[name + ".weight"], s[name + ".bias"], 1e-5)

    x = F.gelu(F.conv1d(mel, s[e + "conv1.weight"], s[e + "conv1.bias"], padding=1))
    x = F.gelu(F.conv1d(x, s[e + "conv2.weight"], s[e + "conv2.bias"], stride=2, padding=1)).transpose(1, 2)
    x = x + s[e + "positional_embedding"][: x.shape[1]]
    B, T, _ = x.shape
    for i in range(cfg.depth):
        b = f"{e}blocks.{i}."
        h = ln(x, b + "attn_ln")
        q = F.linear(h, s[b + "attn.query.weight"], s[b + "attn.query.bias"]).view(B, T, cfg.heads, hd)
        k = F.linear(h, s[b + "attn.key.weight"]).view(B, T, cfg.heads, hd)
        v = F.linear(h, s[b + "attn.value.weight"], s[b + "attn.value.bias"]).view(B, T, cfg.heads, hd)
        att = torch.softmax(torch.einsum("bqhd,bkhd->bhqk", q, k) / hd**0.5, -1)
        o = torch.einsum("bhqk,bkhd->bqhd", att, v).reshape(B, T, d)
        x = x + F.linear(o, s[b + "attn.out.weight"], s[b + "attn.out.bias"])
        h = F.gelu(F.linear(ln(x, b + "mlp_ln"), s[b + "mlp.0.weight"], s[b + "mlp.0.bias"]))
        x = x + F.linear(h, s[b + "mlp.2.weight"], s[b + "mlp.2.bias"])
    return ln(x, e + "ln_post")


def _mel() -> torch.Tensor:
    return torch.randn(2, CFG.n_mels, 24, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("prefix", [None, "model.encoder.", "encoder."])
def test_loaded_encoder_matches_whisper_reference(tmp_path: Path, prefix: str | None) -> None:
    state = _openai_state() if prefix is None else _hf_state(prefix)
    save_file(state, tmp_path / "model.safetensors")
    torch.manual_seed(5)
    enc = load_whisper_encoder(AudioEncoder(CFG), tmp_path).eval()  # a directory holding model.safetensors
    with torch.no_grad():
        out = enc(_mel())
    torch.testing.assert_close(out, _reference(_openai_state(), _mel()), rtol=1e-4, atol=1e-5)
    # Every parameter landed (the forward could hide a swapped pair of equal-shaped tensors).
    ours = from_whisper(state, CFG)
    assert set(ours) == set(enc.state_dict())
    assert all(torch.equal(enc.state_dict()[k], v) for k, v in ours.items())
    assert torch.equal(enc.state_dict()["blocks.1.k.weight"], _openai_state()["encoder.blocks.1.attn.key.weight"])
    assert torch.equal(enc.norm.bias, _openai_state()["encoder.ln_post.bias"])


def test_layout_detection_and_round_trip(tmp_path: Path) -> None:
    assert detect_whisper_layout(_openai_state()).name == "openai"
    assert detect_whisper_layout(_hf_state("model.encoder.")).prefix == "model.encoder."
    assert (detect_whisper_layout(_hf_state("encoder.")).name, detect_whisper_layout(_hf_state("encoder.")).prefix) == (
        "hf",
        "encoder.",
    )
    ours = from_whisper(_openai_state(), CFG)
    encoder_only = {k: v for k, v in _openai_state().items() if k.startswith("encoder.")}
    back = to_whisper(ours, CFG)
    assert set(back) == set(encoder_only)
    assert all(torch.equal(back[k], encoder_only[k]) for k in back)
    hf_encoder = {k: v for k, v in _hf_state().items() if k.startswith("model.encoder.")}
    assert set(to_whisper(ours, CFG, layout="hf")) == set(hf_encoder)
    # bf16 / fp16 checkpoints: positions pass within their rounding, weights come back fp32.
    for dtype in (torch.float16, torch.bfloat16):
        low = {k: v.to(dtype) for k, v in _hf_state().items()}
        save_file(low, tmp_path / "low.safetensors")
        enc = whisper_audio_encoder(tmp_path / "low.safetensors", heads=CFG.heads)
        assert enc.state_dict()["blocks.0.fc2.weight"].dtype == torch.float32
        torch.testing.assert_close(enc.conv1.weight, low["model.encoder.conv1.weight"].float())
    with pytest.raises(BadCheckpoint, match="unknown Whisper layout"):
        to_whisper(ours, CFG, layout="ct2")


def test_config_inferred_from_shapes() -> None:
    assert whisper_encoder_config(_openai_state(), heads=2) == CFG
    assert whisper_encoder_config(_hf_state("encoder."), heads=2) == CFG
    wide = AudioEncoderConfig(n_mels=4, dim=128, depth=3, heads=2, mlp_dim=16, max_frames=8)
    assert whisper_encoder_config(_openai_state(wide)) == wide  # heads default: dim // 64
    with pytest.raises(BadCheckpoint, match="heads"):
        whisper_encoder_config(_openai_state())  # 32 // 64 == 0 heads
    enc = whisper_audio_encoder(_hf_state(), heads=2)
    assert not enc.training
    torch.testing.assert_close(enc(_mel()), _reference(_openai_state(), _mel()), rtol=1e-4, atol=1e-5)


def test_missing_misshaped_and_unexpected_tensors_name_key_and_shapes() -> None:
    state = _openai_state()
    del state["encoder.blocks.1.attn.out.bias"]
    with pytest.raises(BadCheckpoint, match=r"missing tensor encoder\.blocks\.1\.attn\.out\.bias.*\[32\]"):
        from_whisper(state, CFG)
    state = _hf_state()
    state["model.encoder.layers.0.fc1.weight"] = torch.zeros(40, 32)
    with pytest.raises(BadCheckpoint, match=r"layers\.0\.fc1\.weight has shape \[40, 32\], expected \[48, 32\]"):
        load_whisper_encoder(AudioEncoder(CFG), state)
    state = _openai_state()
    state["encoder.conv1.weight"] = torch.zeros(32, 80, 3)
    with pytest.raises(BadCheckpoint, match=r"conv1\.weight has shape \[32, 80, 3\], expected \[32, 8, 3\]"):
        from_whisper(state, CFG)
    state = _openai_state()
    state["encoder.blocks.0.attn.key.bias"] = torch.zeros(32)  # Whisper's key has no bias
    with pytest.raises(BadCheckpoint, match=r"unexpected.*attn\.key\.bias"):
        from_whisper(state, CFG)
    with pytest.raises(BadCheckpoint, match="unexpected"):
        from_whisper(_openai_state(), AudioEncoderConfig(n_mels=8, dim=32, depth=1, heads=2, mlp_dim=48, max_frames=16))


def test_positions_must_be_whisper_sinusoids() -> None:
    state = _openai_state()
    del state["encoder.positional_embedding"]
    with pytest.raises(BadCheckpoint, match=r"missing tensor encoder\.positional_embedding.*\[16, 32\]"):
        from_whisper(state, CFG)
    state = _hf_state()
    state["model.encoder.embed_positions.weight"] = sinusoids(20, 32)
    with pytest.raises(BadCheckpoint, match=r"embed_positions\.weight has shape \[20, 32\], expected \[16, 32\]"):
        from_whisper(state, CFG)
    state = _hf_state()
    state["model.encoder.embed_positions.weight"] = sinusoids(16, 32) + 0.01 * torch.randn(16, 32)  # learned
    with pytest.raises(BadCheckpoint, match="not Whisper's sinusoidal position table"):
        from_whisper(state, CFG)


def test_unknown_layout_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadCheckpoint, match="no Whisper encoder found"):
        from_whisper({"model.embed_tokens.weight": torch.zeros(2)}, CFG)
    with pytest.raises(BadCheckpoint, match="no Whisper encoder found"):
        whisper_encoder_config(AudioEncoder(CFG).state_dict())  # our own names are not a Whisper layout
    with pytest.raises(BadInputFile, match="does not exist"):
        load_whisper_encoder(AudioEncoder(CFG), tmp_path)  # a directory without model.safetensors
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(BadCheckpoint, match="not a readable safetensors"):
        load_whisper_encoder(AudioEncoder(CFG), tmp_path / "bad.safetensors")
