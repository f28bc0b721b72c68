"""Adapter: Hugging Face Qwen2.5-VL vision-tower checkpoints <-> `SemanticEncoder` (report Sec.
4.1.1 "we directly adopt Qwen2.5-ViT as the encoder"; release §3, §9 key names).

All name mapping lives here. Accepted layouts (detected by where `patch_embed.proj.weight` is):
- Hugging Face Qwen2.5-VL: `visual.` (older saves) or `model.visual.` (newer), merger under `<prefix>merger.`;
- the LongCat release: `model.visual_tokenizer.visual_model.` + bridge `model.visual_tokenizer.visual_bridge_model.bridge.`.

Theirs -> ours (inside the prefixes):
  patch_embed.proj.weight [D, 3, T, p, p]  -> patch_embed.weight [D, 3·p·p], summed over T
  blocks.{i}.{norm1,norm2}.weight          -> vit.blocks.{i}.{norm1,norm2}.weight
  blocks.{i}.attn.{qkv,proj}.{weight,bias} -> vit.blocks.{i}.attn.{qkv,proj}.{weight,bias}
  blocks.{i}.mlp.{gate,up,down}_proj.*     -> vit.blocks.{i}.mlp.{gate,up,down}_proj.*
  merger|bridge ln_q.weight, mlp.0.*, mlp.2.* -> bridge.norm.weight, bridge.fc1.*, bridge.fc2.*

Summing the Conv3d kernel over its temporal axis is exact because the release feeds the same
frame twice (release §3); we feed it once (see `dina.vision.preprocess`). Window attention and
its `fullatt_block_indexes` are config, not weights: use `sae_qwen2_5_vl()` (or set
`window_tokens` / `full_attention_blocks`) to match the checkpoint's `config.json`.
Tensors are read with `safetensors` only (never pickle) and cast to fp32; missing, mis-shaped
or unexpected tensors raise `BadCheckpoint` naming the key and both shapes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from dina.errors import BadCheckpoint, BadInputFile
from dina.vision.encoder import SAEConfig, SemanticEncoder
from dina.weights.files import read_prefixed_tensors

# (vision tower prefix, bridge / merger prefix), tried in order.
LAYOUTS = (
    ("visual.", "visual.merger."),
    ("model.visual.", "model.visual.merger."),
    ("model.visual_tokenizer.visual_model.", "model.visual_tokenizer.visual_bridge_model.bridge."),
)
_BRIDGE_NAMES = {"bridge.norm.": "ln_q.", "bridge.fc1.": "mlp.0.", "bridge.fc2.": "mlp.2."}
_PATCH = "patch_embed.proj.weight"


def _expected_shapes(cfg: SAEConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):  # shapes only: no memory, no init cost even for the 630M tower
        return {k: v.shape for k, v in SemanticEncoder(cfg).state_dict().items()}


def _their_name(ours: str, vit_prefix: str, bridge_prefix: str) -> str:
    if ours == "patch_embed.weight":
        return vit_prefix + _PATCH
    for mine, theirs in _BRIDGE_NAMES.items():
        if ours.startswith(mine):
            return bridge_prefix + theirs + ours[len(mine) :]
    return vit_prefix + ours.removeprefix("vit.")


def _detect_layout(keys: set[str]) -> tuple[str, str]:
    for vit_prefix, bridge_prefix in LAYOUTS:
        if vit_prefix + _PATCH in keys:
            return vit_prefix, bridge_prefix
    tried = ", ".join(v + _PATCH for v, _ in LAYOUTS)
    raise BadCheckpoint(f"no Qwen2.5-VL vision tower found: none of {tried} is present")


def _patch_embed(t: torch.Tensor, name: str, cfg: SAEConfig) -> torch.Tensor:
    p = cfg.patch_size
    if t.ndim != 5 or t.shape[0] != cfg.dim or t.shape[1] != 3 or tuple(t.shape[3:]) != (p, p):
        raise BadCheckpoint(f"tensor {name} has shape {list(t.shape)}, expected [{cfg.dim}, 3, T, {p}, {p}]")
    return t.float().sum(2).reshape(cfg.dim, cfg.patch_dim)


def from_qwen2_5_vl(state: Mapping[str, torch.Tensor], cfg: SAEConfig) -> dict[str, torch.Tensor]:
    """A Qwen2.5-VL (or LongCat release) vision state dict -> our `SemanticEncoder` state dict (fp32)."""
    vit_prefix, bridge_prefix = _detect_layout(set(state))
    ours: dict[str, torch.Tensor] = {}
    used = set()
    for key, shape in _expected_shapes(cfg).items():
        name = _their_name(key, vit_prefix, bridge_prefix)
        if name not in state:
            raise BadCheckpoint(f"missing tensor {name} (expected shape {list(shape)}, for {key})")
        t = state[name]
        if key == "patch_embed.weight":
            t = _patch_embed(t, name, cfg)
        elif t.shape != shape:
            raise BadCheckpoint(f"tensor {name} has shape {list(t.shape)}, expected {list(shape)} (for {key})")
        ours[key] = t.float()
        used.add(name)
    extra = sorted(k for k in state if k.startswith((vit_prefix, bridge_prefix)) and k not in used)
    if extra:
        raise BadCheckpoint(
            f"{len(extra)} unexpected tensor(s), e.g. {extra[:3]}: the checkpoint was written by another "
            f"config (depth {cfg.depth}, bias {cfg.bias})"
        )
    return ours


def to_qwen2_5_vl(
    ours: Mapping[str, torch.Tensor], cfg: SAEConfig, *, temporal_patch: int = 2
) -> dict[str, torch.Tensor]:
    """Inverse of `from_qwen2_5_vl` in the Hugging Face `visual.` layout; the patch kernel is
    split evenly over `temporal_patch` frames so a duplicated frame gives the same embedding."""
    vit_prefix, bridge_prefix = LAYOUTS[0]
    out = {}
    for key, t in ours.items():
        if key == "patch_embed.weight":
            w = t.reshape(cfg.dim, 3, 1, cfg.patch_size, cfg.patch_size) / temporal_patch
            t = w.expand(-1, -1, temporal_patch, -1, -1).contiguous()
        out[_their_name(key, vit_prefix, bridge_prefix)] = t
    return out


def _shard_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise BadInputFile(f"checkpoint {path} does not exist")
    index = path / "model.safetensors.index.json"
    if index.is_file():  # read only the shards that hold vision tensors, not the language model's
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BadCheckpoint(f"{index} is not a valid safetensors index: {e}") from e
        prefixes = tuple(p for layout in LAYOUTS for p in layout)
        return sorted({path / f for k, f in weight_map.items() if k.startswith(prefixes)})
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise BadInputFile(f"no .safetensors files in {path}")
    return files


def read_vision_tensors(path_or_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The vision-tower / bridge tensors of a safetensors file or checkpoint directory."""
    prefixes = tuple(p for layout in LAYOUTS for p in layout)
    state: dict[str, torch.Tensor] = {}
    for file in _shard_files(Path(path_or_dir)):
        state.update(read_prefixed_tensors(file, prefixes))
    return state


def load_qwen2_5_vl_vision(path_or_dir: str | os.PathLike, cfg: SAEConfig) -> SemanticEncoder:
    """A `SemanticEncoder` (eval mode, fp32) holding the weights of a Qwen2.5-VL vision checkpoint."""
    ours = from_qwen2_5_vl(read_vision_tensors(path_or_dir), cfg)
    with torch.device("meta"):
        model = SemanticEncoder(cfg)
    model.load_state_dict(ours, strict=True, assign=True)
    return model.eval()
