"""Configuration: one frozen, keyword-only dataclass per component, nested into `DinaConfig`.

Derived sizes (vocabulary offsets, token grid sizes, active parameters) are computed,
never repeated; `__post_init__` checks divisibility and ranges and raises `BadConfig`.
Configs round-trip through JSON (`to_dict` / `from_dict`, `save` / `load`) and are
written next to every artifact. Presets live in `dina.presets`.

Sources: report Sec. 2.2 (dNaViT), 2.3 (audio tokenizer), 2.4-2.5 (backbone,
embeddings, DepthTransformer); `shared/reference/longcat-next-release.md` §1-§8 for the
released shapes. Values the release does not publish (its "open questions") are
marked "(not published)" where they appear in `presets.longcat_next`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dina.audio.config import AudioTokenizerConfig
from dina.backbone.moe import MoEConfig
from dina.config_io import ConfigBase, _check, dataclass_from_dict
from dina.errors import BadConfig
from dina.vision.config import VisionTokenizerConfig, vision_longcat_next

__all__ = ["AudioTokenizerConfig", "ConfigBase", "VisionTokenizerConfig", "dataclass_from_dict"]


SPECIAL_TOKENS: tuple[str, ...] = (
    "<longcat_system>",
    "<longcat_user>",
    "<longcat_assistant>",
    "</longcat_s>",
    "<longcat_img_token_size>",
    "</longcat_img_token_size>",
    "<longcat_audio_start>",
    "<longcat_audio_end>",
    "<longcat_audio_pad>",
    "<longcat_img_start>",
    "<longcat_img_end>",
    "<longcat_img_pad>",
    "<longcat_img_newline>",
    "<longcat_audio_delim>",
    "<longcat_audiotext_start>",
    "<longcat_audiotext_end>",
    "<longcat_audiotext_pad>",
    "<longcat_audiogen_start>",
    "<longcat_audiogen_end>",
)


@dataclass(frozen=True, kw_only=True)
class VocabConfig(ConfigBase):
    """One id space (release §1 "Vocab"): text | specials | audio levels | visual levels | padding.

    Level i of a modality starts at `offset + sum(sizes[:i])`.
    """

    text_vocab_size: int = 131072
    n_special: int = 53
    audio_codebook_sizes: tuple[int, ...] = (8192, 4096, 2048, 1024, 1024, 1024, 1024, 1024)
    visual_codebook_sizes: tuple[int, ...] = (16384,) * 8
    pad_to_multiple: int = 1024

    def __post_init__(self) -> None:
        _check(self.text_vocab_size > 0, "text_vocab_size must be positive")
        _check(self.n_special >= len(SPECIAL_TOKENS), f"n_special must hold the {len(SPECIAL_TOKENS)} named tokens")
        _check(self.pad_to_multiple >= 1, "pad_to_multiple must be >= 1")

    @property
    def audio_offset(self) -> int:
        return self.text_vocab_size + self.n_special

    @property
    def visual_offset(self) -> int:
        return self.audio_offset + sum(self.audio_codebook_sizes)

    @property
    def size(self) -> int:
        """Rows of the shared embedding table, padded like the release (282,624)."""
        used = self.visual_offset + sum(self.visual_codebook_sizes)
        return -(-used // self.pad_to_multiple) * self.pad_to_multiple

    def codebook_sizes(self, modality: str) -> tuple[int, ...]:
        """The RVQ levels' codebook sizes of `modality` ("audio" or "visual")."""
        sizes = {"audio": self.audio_codebook_sizes, "visual": self.visual_codebook_sizes}.get(modality)
        if sizes is None:
            raise BadConfig(f"unknown modality {modality!r}, expected 'audio' or 'visual'")
        return sizes

    def level_offsets(self, modality: str) -> tuple[int, ...]:
        """Start id of each RVQ level of `modality` ("audio" or "visual")."""
        sizes = self.codebook_sizes(modality)
        start = self.audio_offset if modality == "audio" else self.visual_offset
        offsets, acc = [], start
        for s in sizes:
            offsets.append(acc)
            acc += s
        return tuple(offsets)


@dataclass(frozen=True, kw_only=True)
class BackboneConfig(ConfigBase):
    """LongCat-Flash MoE backbone (release §1): dual-attention layers with a shortcut MoE and zero experts."""

    dim: int = 3072
    n_layers: int = 14
    n_heads: int = 32
    n_kv_heads: int = 32
    attention: str = "mla"
    q_lora_rank: int = 1536
    kv_lora_rank: int = 512
    qk_nope_dim: int = 128
    qk_rope_dim: int = 64
    v_head_dim: int = 128
    ffn_dim: int = 6144
    n_experts: int = 256
    expert_dim: int = 1024
    top_k: int = 12
    n_zero_experts: int = 128
    routed_scaling: float = 6.0
    norm_eps: float = 1e-5
    rope_theta: float = 1e7
    max_seq_len: int = 131072
    ngram_vocab_ratio: int = 0
    ngram_orders: int = 4
    ngram_splits: int = 4

    def __post_init__(self) -> None:
        _check(self.attention in ("mla", "gqa"), f"attention must be 'mla' or 'gqa', got {self.attention!r}")
        _check(self.dim % self.n_heads == 0, "backbone dim must divide by n_heads")
        _check(self.n_heads % self.n_kv_heads == 0, "n_heads must be a multiple of n_kv_heads")
        _check(1 <= self.top_k <= self.n_experts + self.n_zero_experts, "top_k must be in [1, experts + zero experts]")
        _check(self.routed_scaling > 0, "routed_scaling must be positive")
        _check(self.ngram_vocab_ratio >= 0, "ngram_vocab_ratio must be >= 0 (0 disables n-gram embeddings)")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def rope_dim(self) -> int:
        """Rotary width per head: MLA rotates only its `qk_rope_dim` part, GQA the whole head."""
        return self.qk_rope_dim if self.attention == "mla" else self.head_dim

    @property
    def moe(self) -> MoEConfig:
        """The shortcut MoE's config, derived from these fields."""
        return MoEConfig(
            dim=self.dim,
            n_experts=self.n_experts,
            expert_hidden=self.expert_dim,
            n_zero_experts=self.n_zero_experts,
            top_k=self.top_k,
            routed_scaling=self.routed_scaling,
        )


@dataclass(frozen=True, kw_only=True)
class DepthHeadConfig(ConfigBase):
    """DepthTransformer head (Sec. 2.5.2, release §6): causal over the RVQ levels of one position."""

    dim: int = 2048
    n_layers: int = 4
    n_heads: int = 16
    ffn_scale: int = 4
    level_weights: tuple[float, ...] = ()  # per-level loss weights; () = equal

    def __post_init__(self) -> None:
        _check(self.dim % self.n_heads == 0, "depth head dim must divide by n_heads")
        _check(all(w >= 0 for w in self.level_weights), "level_weights must be >= 0")
        _check(not self.level_weights or sum(self.level_weights) > 0, "level_weights must have a positive sum")


@dataclass(frozen=True, kw_only=True)
class DinaConfig(ConfigBase):
    """A whole DiNA system: the two tokenizers, the vocabulary, the backbone and its heads."""

    name: str = "longcat_next"
    vision: VisionTokenizerConfig = field(default_factory=vision_longcat_next)
    audio: AudioTokenizerConfig = field(default_factory=AudioTokenizerConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    visual_head: DepthHeadConfig = field(default_factory=DepthHeadConfig)
    audio_head: DepthHeadConfig = field(default_factory=lambda: DepthHeadConfig(dim=3072))
    prebuffer_dim: int = 6144

    def __post_init__(self) -> None:
        _check(
            self.vocab.visual_codebook_sizes == self.vision.codebook_sizes,
            f"vocab visual codebooks {self.vocab.visual_codebook_sizes} differ from the vision tokenizer's "
            f"{self.vision.codebook_sizes}",
        )
        _check(
            self.vocab.audio_codebook_sizes == self.audio.codebook_sizes,
            f"vocab audio codebooks {self.vocab.audio_codebook_sizes} differ from the audio tokenizer's "
            f"{self.audio.codebook_sizes}",
        )
        for name, head, sizes in (
            ("visual_head", self.visual_head, self.vocab.visual_codebook_sizes),
            ("audio_head", self.audio_head, self.vocab.audio_codebook_sizes),
        ):
            _check(
                not head.level_weights or len(head.level_weights) == len(sizes),
                f"{name}.level_weights needs one weight per level ({len(sizes)})",
            )
