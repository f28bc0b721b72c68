"""Adapter: Whisper encoder checkpoints (OpenAI or Hugging Face names) <-> `AudioEncoder` (report
Sec. 2.3, the audio tokenizer's Whisper-style encoder; `../shared/reference/longcat-next-release.md`
§7, which has the same conv1 / conv2 / sinusoids / pre-LN blocks / final LayerNorm layout).

All name mapping lives here. The key names below are facts about the public OpenAI (`whisper`
package) and Hugging Face (`transformers` `WhisperModel`) model definitions; no code is copied.
Accepted layouts, detected by which block container holds keys:
- OpenAI: `encoder.` + `blocks.{i}.`, positions in the buffer `encoder.positional_embedding`;
- Hugging Face: `model.encoder.` (`WhisperModel`, `...ForConditionalGeneration`) or `encoder.`
  (`WhisperForAudioClassification`, a bare encoder) + `layers.{i}.`, positions in `embed_positions.weight`.
Decoder tensors (`decoder.`, `model.decoder.`, `proj_out.`) are ignored.

Ours (AudioEncoder)   OpenAI (in `encoder.`)       Hugging Face (in `model.encoder.` / `encoder.`)
conv1.*, conv2.*      conv1.*, conv2.*             conv1.*, conv2.*
positions_FD          positional_embedding         embed_positions.weight
blocks.{i}.           blocks.{i}.                  layers.{i}.
  attn_norm.*           attn_ln.*                    self_attn_layer_norm.*
  q.*, k.weight         attn.query.*, attn.key.weight  self_attn.q_proj.*, self_attn.k_proj.weight
  v.*, out.*            attn.value.*, attn.out.*     self_attn.v_proj.*, self_attn.out_proj.*
  mlp_norm.*            mlp_ln.*                     final_layer_norm.*
  fc1.*, fc2.*          mlp.0.*, mlp.2.*             fc1.*, fc2.*
norm.*                ln_post.*                    layer_norm.*

Our positions are fixed sinusoids (a non-persistent buffer, not a parameter); Whisper's are the
same sinusoids (sines then cosines, timescales 1 .. 10,000), so the checkpoint's table is checked
against ours within the rounding of its dtype rather than loaded, and a checkpoint with
learned or otherwise different positions is refused. Attention heads cannot be read from tensor
shapes: `whisper_encoder_config` takes them as an argument, by default dim // 64 (true of every
Whisper size, tiny 384 / 6 to large 1280 / 20). LayerNorm eps is 1e-5 in both layouts.
Tensors are read with `safetensors` only (never pickle); missing, mis-shaped or unexpected
tensors raise `BadCheckpoint` naming the key and both shapes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from dina.audio.encoder import AudioEncoder, AudioEncoderConfig, sinusoids
from dina.errors import BadCheckpoint, BadInputFile
from dina.weights.files import read_prefixed_tensors

POSITIONS = "positions_FD"  # our (non-persistent) buffer's name


@dataclass(frozen=True)
class WhisperLayout:
    """Where one naming keeps the encoder: prefix, block container, and per-module names."""

    name: str  # "openai" or "hf"
    prefix: str
    blocks: str  # the container of the transformer blocks, inside the prefix
    positions: str
    top: Mapping[str, str]  # our top-level module -> theirs
    block: Mapping[str, str]  # our block submodule -> theirs


_OPENAI_TOP = {"conv1": "conv1", "conv2": "conv2", "norm": "ln_post"}
_OPENAI_BLOCK = {
    "attn_norm": "attn_ln",
    "q": "attn.query",
    "k": "attn.key",
    "v": "attn.value",
    "out": "attn.out",
    "mlp_norm": "mlp_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
}
_HF_TOP = {"conv1": "conv1", "conv2": "conv2", "norm": "layer_norm"}
_HF_BLOCK = {
    "attn_norm": "self_attn_layer_norm",
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "out": "self_attn.out_proj",
    "mlp_norm": "final_layer_norm",
    "fc1": "fc1",
    "fc2": "fc2",
}

# Tried in order; OpenAI and bare Hugging Face share the `encoder.` prefix and differ in `blocks` / `layers`.
LAYOUTS = (
    WhisperLayout("openai", "encoder.", "blocks", "positional_embedding", _OPENAI_TOP, _OPENAI_BLOCK),
    WhisperLayout("hf", "model.encoder.", "layers", "embed_positions.weight", _HF_TOP, _HF_BLOCK),
    WhisperLayout("hf", "encoder.", "layers", "embed_positions.weight", _HF_TOP, _HF_BLOCK),
)
_PREFIXES = tuple(sorted({layout.prefix for layout in LAYOUTS}))
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.([a-z_0-9]+)\.(weight|bias)")


def _their_name(ours: str, layout: WhisperLayout) -> str:
    """Our `AudioEncoder` state-dict key (or `positions_FD`) -> the checkpoint's key."""
    if ours == POSITIONS:
        return layout.prefix + layout.positions
    m = _BLOCK_KEY.fullmatch(ours)
    if m:
        i, module, param = m.groups()
        return f"{layout.prefix}{layout.blocks}.{i}.{layout.block[module]}.{param}"
    module, param = ours.split(".")
    return f"{layout.prefix}{layout.top[module]}.{param}"


def detect_whisper_layout(keys: set[str] | Mapping[str, object]) -> WhisperLayout:
    """The layout whose block container (`encoder.blocks.`, `model.encoder.layers.`, `encoder.layers.`) has keys."""
    for layout in LAYOUTS:
        start = f"{layout.prefix}{layout.blocks}."
        if any(k.startswith(start) for k in keys):
            return layout
    tried = ", ".join(f"{layout.prefix}{layout.blocks}.0.*" for layout in LAYOUTS)
    raise BadCheckpoint(f"no Whisper encoder found: none of {tried} is present")


def _tensor(state: Mapping[str, torch.Tensor], name: str, what: str) -> torch.Tensor:
    if name not in state:
        raise BadCheckpoint(f"missing tensor {name} (needed for the {what})")
    return state[name]


def whisper_encoder_config(
    path_or_state: str | os.PathLike | Mapping[str, torch.Tensor], heads: int | None = None
) -> AudioEncoderConfig:
    """The `AudioEncoderConfig` of a Whisper checkpoint: n_mels, dim, depth, mlp_dim and
    max_frames from tensor shapes; `heads` given, or dim // 64 (every Whisper size)."""
    state = _as_state(path_or_state)
    layout = detect_whisper_layout(state)
    conv1 = _tensor(state, layout.prefix + "conv1.weight", "mel bins and width")
    if conv1.ndim != 3:
        raise BadCheckpoint(f"tensor {layout.prefix}conv1.weight has shape {list(conv1.shape)}, expected [D, M, 3]")
    dim, n_mels = int(conv1.shape[0]), int(conv1.shape[1])
    start = f"{layout.prefix}{layout.blocks}."
    indices = (k[len(start) :].split(".", 1)[0] for k in state if k.startswith(start))
    depth = 1 + max(int(i) for i in indices if i.isdigit())
    fc1 = _tensor(state, _their_name("blocks.0.fc1.weight", layout), "MLP width")
    positions = _tensor(state, layout.prefix + layout.positions, "position count")
    heads = dim // 64 if heads is None else heads
    if heads < 1:
        raise BadCheckpoint(f"cannot split width {dim} into {heads} heads: pass heads= (Whisper uses dim // 64)")
    return AudioEncoderConfig(
        n_mels=n_mels, dim=dim, depth=depth, heads=heads, mlp_dim=int(fc1.shape[0]), max_frames=int(positions.shape[0])
    )


def _check_positions(t: torch.Tensor, name: str, cfg: AudioEncoderConfig) -> None:
    """Refuse positions that are not our fixed sinusoids (up to the rounding of their dtype)."""
    expected = sinusoids(cfg.max_frames, cfg.dim)
    if t.shape != expected.shape:
        raise BadCheckpoint(
            f"tensor {name} has shape {list(t.shape)}, expected {list(expected.shape)} (for {POSITIONS})"
        )
    tol = 1e-3 if not t.is_floating_point() else max(1e-3, 2 * torch.finfo(t.dtype).eps)
    err = (t.float() - expected).abs().max().item()
    if not err <= tol:  # also catches NaN
        raise BadCheckpoint(
            f"tensor {name} is not Whisper's sinusoidal position table (max difference {err:.3g} > {tol:.3g}): "
            "our AudioEncoder has fixed sinusoids and cannot load learned positions"
        )


def from_whisper(state: Mapping[str, torch.Tensor], cfg: AudioEncoderConfig) -> dict[str, torch.Tensor]:
    """A Whisper checkpoint (OpenAI or Hugging Face names) -> our `AudioEncoder` state dict (fp32)."""
    layout = detect_whisper_layout(state)
    with torch.device("meta"):  # shapes only
        expected = {k: v.shape for k, v in AudioEncoder(cfg).state_dict().items()}
    pos_name = layout.prefix + layout.positions
    if pos_name not in state:
        raise BadCheckpoint(f"missing tensor {pos_name} (expected shape {[cfg.max_frames, cfg.dim]}, for {POSITIONS})")
    _check_positions(state[pos_name], pos_name, cfg)
    ours: dict[str, torch.Tensor] = {}
    used = {pos_name}
    for key, shape in expected.items():
        name = _their_name(key, layout)
        if name not in state:
            raise BadCheckpoint(f"missing tensor {name} (expected shape {list(shape)}, for {key})")
        t = state[name]
        if t.shape != shape:
            raise BadCheckpoint(f"tensor {name} has shape {list(t.shape)}, expected {list(shape)} (for {key})")
        ours[key] = t.float()
        used.add(name)
    extra = sorted(k for k in state if k.startswith(layout.prefix) and k not in used)
    if extra:
        raise BadCheckpoint(
            f"{len(extra)} unexpected tensor(s), e.g. {extra[:3]}: the checkpoint was written by another "
            f"config (depth {cfg.depth}, dim {cfg.dim})"
        )
    return ours


def to_whisper(
    ours: Mapping[str, torch.Tensor], cfg: AudioEncoderConfig, *, layout: str = "openai"
) -> dict[str, torch.Tensor]:
    """Inverse of `from_whisper`: our state dict -> `layout` ("openai": `encoder.`, "hf":
    `model.encoder.`) names, with the sinusoidal position table added."""
    chosen = next((lo for lo in LAYOUTS if lo.name == layout), None)
    if chosen is None:
        raise BadCheckpoint(f"unknown Whisper layout {layout!r}: use 'openai' or 'hf'")
    out = {_their_name(k, chosen): t for k, t in ours.items()}
    out[_their_name(POSITIONS, chosen)] = sinusoids(cfg.max_frames, cfg.dim)
    return out


def read_whisper_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The encoder tensors of a `.safetensors` file, or of `model.safetensors` in a directory."""
    file = Path(path)
    if file.is_dir():
        file = file / "model.safetensors"
    if not file.is_file():
        raise BadInputFile(f"Whisper checkpoint {file} does not exist (give a .safetensors file or its directory)")
    return read_prefixed_tensors(file, _PREFIXES)  # decoder tensors are never read


def _as_state(path_or_state: str | os.PathLike | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if isinstance(path_or_state, Mapping):
        return path_or_state
    return read_whisper_tensors(path_or_state)


def load_whisper_encoder(
    encoder: AudioEncoder, path_or_state: str | os.PathLike | Mapping[str, torch.Tensor]
) -> AudioEncoder:
    """Load a Whisper checkpoint (path or state dict) into `encoder` strictly; returns it."""
    ours = from_whisper(_as_state(path_or_state), encoder.cfg)
    encoder.load_state_dict(ours, strict=True)
    return encoder


def whisper_audio_encoder(
    path_or_state: str | os.PathLike | Mapping[str, torch.Tensor], heads: int | None = None
) -> AudioEncoder:
    """A new `AudioEncoder` (eval mode, fp32) sized by `whisper_encoder_config` and holding the checkpoint."""
    state = _as_state(path_or_state)
    return load_whisper_encoder(AudioEncoder(whisper_encoder_config(state, heads)), state).eval()
