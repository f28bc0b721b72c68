import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from dina.errors import BadCheckpoint
from dina.vision.encoder import SAEConfig, SemanticEncoder
from dina.vision.preprocess import PreprocessConfig, preprocess_images
from dina.weights.qwen2_5_vl import from_qwen2_5_vl, load_qwen2_5_vl_vision, to_qwen2_5_vl

CFG = SAEConfig(dim=32, depth=2, heads=2, mlp_dim=48, out_dim=24, bias=True)


def _qwen_state(prefix: str = "visual.", merger: str = "visual.merger.") -> dict[str, torch.Tensor]:
    """A random checkpoint named like Hugging Face Qwen2.5-VL's vision tower."""
    g = torch.Generator().manual_seed(0)
    d, f, m = CFG.dim, CFG.mlp_dim, 4 * CFG.dim

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.1

    state = {prefix + "patch_embed.proj.weight": r(d, 3, 2, 14, 14)}
    for i in range(CFG.depth):
        b = f"{prefix}blocks.{i}."
        state |= {b + "norm1.weight": 1 + r(d), b + "norm2.weight": 1 + r(d)}
        state |= {b + "attn.qkv.weight": r(3 * d, d), b + "attn.qkv.bias": r(3 * d)}
        state |= {b + "attn.proj.weight": r(d, d), b + "attn.proj.bias": r(d)}
        for name, shape in (("gate_proj", (f, d)), ("up_proj", (f, d)), ("down_proj", (d, f))):
            state |= {f"{b}mlp.{name}.weight": r(*shape), f"{b}mlp.{name}.bias": r(shape[0])}
    state |= {merger + "ln_q.weight": 1 + r(d), merger + "mlp.0.weight": r(m, m), merger + "mlp.0.bias": r(m)}
    state |= {merger + "mlp.2.weight": r(CFG.out_dim, m), merger + "mlp.2.bias": r(CFG.out_dim)}
    return state


def _rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, -1)
    return torch.cat([-b, a], -1)


def _reference(s: dict[str, torch.Tensor], frames: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """Qwen2.5-VL's vision forward written out directly (full attention, one image):
    frames (N, 3, 2, 14, 14) in merge-block order -> (N/4, out)."""
    p = "visual."
    x = F.conv3d(frames, s[p + "patch_embed.proj.weight"], stride=(2, 14, 14)).reshape(len(frames), -1)
    hd = CFG.dim // CFG.heads
    rows = torch.arange(2 * th)[:, None].expand(-1, 2 * tw).reshape(th, 2, tw, 2).permute(0, 2, 1, 3).reshape(-1)
    cols = torch.arange(2 * tw)[None, :].expand(2 * th, -1).reshape(th, 2, tw, 2).permute(0, 2, 1, 3).reshape(-1)
    inv = 1.0 / 10000 ** (torch.arange(0, hd // 2, 2).float() / (hd // 2))
    freqs = torch.cat([rows[:, None] * inv, cols[:, None] * inv], -1)
    cos, sin = torch.cat([freqs, freqs], -1).cos()[:, None], torch.cat([freqs, freqs], -1).sin()[:, None]
    for i in range(CFG.depth):
        b = f"{p}blocks.{i}."
        h = _rms(x, s[b + "norm1.weight"])
        q, k, v = F.linear(h, s[b + "attn.qkv.weight"], s[b + "attn.qkv.bias"]).view(len(x), 3, CFG.heads, hd).unbind(1)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        att = torch.softmax(torch.einsum("qhd,khd->hqk", q, k) / hd**0.5, -1)
        o = torch.einsum("hqk,khd->qhd", att, v).reshape(len(x), -1)
        x = x + F.linear(o, s[b + "attn.proj.weight"], s[b + "attn.proj.bias"])
        h = _rms(x, s[b + "norm2.weight"])
        gate = F.silu(F.linear(h, s[b + "mlp.gate_proj.weight"], s[b + "mlp.gate_proj.bias"]))
        up = F.linear(h, s[b + "mlp.up_proj.weight"], s[b + "mlp.up_proj.bias"])
        x = x + F.linear(gate * up, s[b + "mlp.down_proj.weight"], s[b + "mlp.down_proj.bias"])
    m = p + "merger."
    h = _rms(x, s[m + "ln_q.weight"]).reshape(-1, 4 * CFG.dim)
    h = F.gelu(F.linear(h, s[m + "mlp.0.weight"], s[m + "mlp.0.bias"]))
    return F.linear(h, s[m + "mlp.2.weight"], s[m + "mlp.2.bias"])


def _packed(seed: int = 0, size: tuple[int, int] = (56, 84)):  # type: ignore[no-untyped-def]
    image = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    return preprocess_images([image], PreprocessConfig(min_pixels=28 * 28))


def test_loaded_encoder_matches_qwen_reference(tmp_path: Path) -> None:
    state = _qwen_state()
    save_file(state, tmp_path / "model.safetensors")
    enc = load_qwen2_5_vl_vision(tmp_path / "model.safetensors", CFG)
    packed = _packed()
    frames = packed.patches_NP.reshape(-1, 3, 1, 14, 14).expand(-1, -1, 2, -1, -1)  # the release's duplicated frame
    # Patch embedding: Conv3d over the duplicated frame == our Linear on one frame.
    conv = F.conv3d(frames, state["visual.patch_embed.proj.weight"], stride=(2, 14, 14)).flatten(1)
    torch.testing.assert_close(enc.patch_embed(packed.patches_NP), conv, rtol=1e-5, atol=1e-5)
    out = enc(packed).features_ND
    torch.testing.assert_close(out, _reference(state, frames, *packed.grid_hw[0]), rtol=1e-4, atol=1e-5)
    assert torch.equal(out, enc(packed).features_ND)


def test_round_trip_and_release_layout(tmp_path: Path) -> None:
    state = _qwen_state()
    ours = from_qwen2_5_vl(state, CFG)
    assert set(ours) == set(SemanticEncoder(CFG).state_dict())
    again = from_qwen2_5_vl(to_qwen2_5_vl(ours, CFG), CFG)
    assert all(torch.allclose(again[k], ours[k], atol=1e-6) for k in ours)
    release = {
        k.replace("visual.merger.", "model.visual_tokenizer.visual_bridge_model.bridge.").replace(
            "visual.", "model.visual_tokenizer.visual_model."
        ): v.bfloat16()
        for k, v in state.items()
    }
    assert set(release) != set(state)
    loaded = from_qwen2_5_vl(release, CFG)
    assert loaded["vit.blocks.1.mlp.up_proj.weight"].dtype == torch.float32
    torch.testing.assert_close(loaded["bridge.fc2.bias"], ours["bridge.fc2.bias"], rtol=1e-2, atol=1e-2)


def test_directory_with_index_reads_only_vision_shards(tmp_path: Path) -> None:
    save_file(_qwen_state(), tmp_path / "model-00002-of-00002.safetensors")
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"not a safetensors file")  # language model
    weight_map = {k: "model-00002-of-00002.safetensors" for k in _qwen_state()}
    weight_map["model.embed_tokens.weight"] = "model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    enc = load_qwen2_5_vl_vision(tmp_path, CFG)
    assert enc(_packed()).features_ND.shape == (6, CFG.out_dim)


def test_missing_and_misshaped_tensors_name_key_and_shapes(tmp_path: Path) -> None:
    state = _qwen_state()
    del state["visual.blocks.1.attn.proj.bias"]
    with pytest.raises(BadCheckpoint, match=r"visual\.blocks\.1\.attn\.proj\.bias.*\[32\]"):
        from_qwen2_5_vl(state, CFG)
    state = _qwen_state()
    state["visual.blocks.0.mlp.up_proj.weight"] = torch.zeros(40, 32)
    with pytest.raises(BadCheckpoint, match=r"up_proj\.weight has shape \[40, 32\], expected \[48, 32\]"):
        from_qwen2_5_vl(state, CFG)
    state = _qwen_state()
    state["visual.patch_embed.proj.weight"] = torch.zeros(32, 3, 2, 16, 16)
    with pytest.raises(BadCheckpoint, match=r"\[32, 3, 2, 16, 16\], expected \[32, 3, T, 14, 14\]"):
        from_qwen2_5_vl(state, CFG)
    with pytest.raises(BadCheckpoint, match="unexpected"):
        from_qwen2_5_vl(_qwen_state(), replace(CFG, depth=1))
    with pytest.raises(BadCheckpoint, match=r"no Qwen2\.5-VL vision tower"):
        from_qwen2_5_vl({"model.embed_tokens.weight": torch.zeros(2)}, CFG)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(BadCheckpoint):
        load_qwen2_5_vl_vision(tmp_path / "bad.safetensors", CFG)
