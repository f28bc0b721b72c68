"""Presets as plain functions: `tiny()` trains on a 2-core CPU, `small()` on one GPU,
`longcat_next()` matches the release.

Release numbers come from `shared/reference/longcat-next-release.md` (§ cited per line).
Values it does not publish are marked "(not published)": our best reading of the report.
"""

from __future__ import annotations

from collections.abc import Callable

from dina.audio.config import audio_longcat_next, audio_tiny
from dina.config import (
    BackboneConfig,
    DepthHeadConfig,
    DinaConfig,
    VocabConfig,
)
from dina.errors import BadConfig
from dina.vision.config import vision_longcat_next, vision_tiny


def longcat_next() -> DinaConfig:
    """The released LongCat-Next shapes (~68.5B total, ~3B active parameters)."""
    return DinaConfig(
        name="longcat_next",
        # §3: Qwen2.5-VL ViT (32 x 1280, 16 heads, SwiGLU 3420); 8 x 16384 codebooks, EMA 0.99.
        # codebook_dim and the pixel decoder / refiner sizes are (not published): see vision_longcat_next.
        vision=vision_longcat_next(),
        # §7: Whisper-style encoder (32 layers inferred), 8 levels 8192..1024 at 12.5 Hz; n_mels (not published).
        audio=audio_longcat_next(),
        # §1 "Vocab": 131072 text + 53 specials, audio at 131125, visual at 150581, padded to 282624.
        vocab=VocabConfig(),
        # §1: hidden 3072, 14 dual layers, MLA, 256 experts x 1024 + 128 zero experts, top-12, scale 6,
        # n-gram embedding with ratio 78, 4 orders, 4 splits.
        backbone=BackboneConfig(ngram_vocab_ratio=78),
        # §6: depth heads of 4 layers; widths (not published), 2048 visual / 3072 audio as a vLLM port uses.
        visual_head=DepthHeadConfig(dim=2048, n_layers=4, n_heads=16, ffn_scale=4),
        audio_head=DepthHeadConfig(dim=3072, n_layers=4, n_heads=24, ffn_scale=4),
        prebuffer_dim=6144,
    )


def tiny() -> DinaConfig:
    """A few-million-parameter system that trains end to end on this CPU in minutes."""
    vision = vision_tiny()
    audio = audio_tiny()
    vocab = VocabConfig(
        text_vocab_size=4096,
        n_special=64,
        audio_codebook_sizes=audio.codebook_sizes,
        visual_codebook_sizes=vision.codebook_sizes,
        pad_to_multiple=64,
    )
    backbone = BackboneConfig(
        dim=192,
        n_layers=2,
        n_heads=6,
        n_kv_heads=2,
        attention="gqa",
        ffn_dim=512,
        n_experts=8,
        expert_dim=128,
        top_k=2,
        n_zero_experts=2,
        routed_scaling=1.0,
        rope_theta=10000.0,
        max_seq_len=2048,
    )
    head = DepthHeadConfig(dim=128, n_layers=2, n_heads=4, ffn_scale=2)
    return DinaConfig(
        name="tiny",
        vision=vision,
        audio=audio,
        vocab=vocab,
        backbone=backbone,
        visual_head=head,
        audio_head=head,
        prebuffer_dim=384,
    )


def small() -> DinaConfig:
    """A 0.83B-total / 0.15-0.20B-active model for one GPU: the release's layer design (MLA, 4 × more
    experts than selected, zero experts) at reduced width, over the tiny tokenizers' codes, so it
    trains on the same cached worlds as `tiny`."""
    base = tiny()
    backbone = BackboneConfig(
        dim=1024,
        n_layers=6,
        n_heads=16,
        n_kv_heads=16,
        attention="mla",
        q_lora_rank=512,
        kv_lora_rank=256,
        qk_nope_dim=64,
        qk_rope_dim=32,
        v_head_dim=64,
        ffn_dim=2048,
        n_experts=64,
        expert_dim=512,
        top_k=6,
        n_zero_experts=32,
        routed_scaling=3.0,
        rope_theta=1e6,
        max_seq_len=8192,
    )
    head = DepthHeadConfig(dim=512, n_layers=3, n_heads=8, ffn_scale=4)
    vocab = VocabConfig(
        text_vocab_size=32768,
        n_special=64,
        audio_codebook_sizes=base.audio.codebook_sizes,
        visual_codebook_sizes=base.vision.codebook_sizes,
        pad_to_multiple=256,
    )
    return DinaConfig(
        name="small",
        vision=base.vision,
        audio=base.audio,
        vocab=vocab,
        backbone=backbone,
        visual_head=head,
        audio_head=head,
        prebuffer_dim=2048,
    )


PRESETS: dict[str, Callable[[], DinaConfig]] = {"tiny": tiny, "small": small, "longcat_next": longcat_next}


def get_preset(name: str) -> DinaConfig:
    if name not in PRESETS:
        raise BadConfig(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
