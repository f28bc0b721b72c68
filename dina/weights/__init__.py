"""Adapters from foreign checkpoint formats to dina's modules (one module per format)."""

from dina.weights.qwen2_5_vl import from_qwen2_5_vl, load_qwen2_5_vl_vision, to_qwen2_5_vl

__all__ = ["from_qwen2_5_vl", "load_qwen2_5_vl_vision", "to_qwen2_5_vl"]
