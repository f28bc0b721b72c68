"""Shared layers: RMSNorm, per-frame GroupNorm, SwiGLU, rotary (1-D/2-D), packed attention, ViT blocks."""

from dina.layers.attention import SelfAttention, packed_attention
from dina.layers.mlp import SwiGLU
from dina.layers.norm import FrameGroupNorm, RMSNorm
from dina.layers.rope import RotaryTables, apply_rope, rope_angles_1d, rope_angles_2d, rotary_tables
from dina.layers.vit import ViTBlock, ViTConfig, ViTStack

__all__ = [
    "FrameGroupNorm",
    "RMSNorm",
    "RotaryTables",
    "SelfAttention",
    "SwiGLU",
    "ViTBlock",
    "ViTConfig",
    "ViTStack",
    "apply_rope",
    "packed_attention",
    "rope_angles_1d",
    "rope_angles_2d",
    "rotary_tables",
]
