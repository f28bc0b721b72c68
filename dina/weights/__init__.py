"""Adapters from foreign checkpoint formats to dina's modules (one module per format)."""

from dina.weights.qwen2_5_vl import from_qwen2_5_vl, load_qwen2_5_vl_vision, to_qwen2_5_vl
from dina.weights.whisper import (
    from_whisper,
    load_whisper_encoder,
    to_whisper,
    whisper_audio_encoder,
    whisper_encoder_config,
)

__all__ = [
    "from_qwen2_5_vl",
    "from_whisper",
    "load_qwen2_5_vl_vision",
    "load_whisper_encoder",
    "to_qwen2_5_vl",
    "to_whisper",
    "whisper_audio_encoder",
    "whisper_encoder_config",
]
