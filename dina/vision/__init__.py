"""dNaViT, the vision tokenizer (report Sec. 2.2): preprocessing and the SAE encoder."""

from dina.vision.encoder import EncoderOutput, SAEConfig, SemanticEncoder, sae_qwen2_5_vl, sae_tiny
from dina.vision.preprocess import (
    PackedImages,
    PreprocessConfig,
    denormalize,
    patchify,
    preprocess_images,
    smart_resize,
    unpatchify,
)

__all__ = [
    "EncoderOutput",
    "PackedImages",
    "PreprocessConfig",
    "SAEConfig",
    "SemanticEncoder",
    "denormalize",
    "patchify",
    "preprocess_images",
    "sae_qwen2_5_vl",
    "sae_tiny",
    "smart_resize",
    "unpatchify",
]
