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

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from dina.errors import BadConfig, BadInputFile
from dina.io.atomic import write_json


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise BadConfig(message)


class ConfigBase:
    """JSON round-trip for the frozen config dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if not isinstance(data, dict):
            raise BadConfig(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise BadConfig(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
        kwargs = {}
        for name, value in data.items():
            kind = hints[name]
            if isinstance(kind, type) and issubclass(kind, ConfigBase):
                value = kind.from_dict(value)
            elif typing.get_origin(kind) is tuple and isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise BadConfig(f"{cls.__name__}: {e}") from e

    def save(self, directory: str | os.PathLike, name: str = "config.json") -> Path:
        path = Path(directory) / name
        write_json(path, {"type": type(self).__name__, **self.to_dict()})
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, name: str = "config.json") -> Self:
        path = Path(directory) / name
        if not path.is_file():
            raise BadInputFile(f"no {name} in {directory}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadConfig(f"{path} is not valid JSON: {e}") from e
        kind = data.pop("type", cls.__name__) if isinstance(data, dict) else None
        _check(kind == cls.__name__, f"{path} holds a {kind}, expected a {cls.__name__}")
        return cls.from_dict(data)


@dataclass(frozen=True, kw_only=True)
class VisionTokenizerConfig(ConfigBase):
    """dNaViT (Sec. 2.2): SAE encoder -> 2x2 merge -> RVQ -> pixel decoder (+ flow refiner).

    One token per `token_px` = patch_size * merge pixels; `levels` codebooks of `codebook_size`.
    """

    patch_size: int = 14
    merge: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280
    encoder_dim: int = 1280
    encoder_depth: int = 32
    encoder_heads: int = 16
    encoder_mlp_dim: int = 3420
    codebook_dim: int = 1280
    levels: int = 8
    codebook_size: int = 16384
    ema_decay: float = 0.99
    decoder_dim: int = 1024
    decoder_depth: int = 24
    decoder_heads: int = 16
    refiner_dim: int = 512
    refiner_depth: int = 8
    refiner_steps: int = 28

    def __post_init__(self) -> None:
        _check(self.encoder_dim % self.encoder_heads == 0, "vision encoder_dim must divide by encoder_heads")
        _check((self.encoder_dim // self.encoder_heads) % 4 == 0, "vision head dim must divide by 4 (2-D rotary)")
        _check(self.decoder_dim % self.decoder_heads == 0, "vision decoder_dim must divide by decoder_heads")
        _check(self.levels >= 1 and self.codebook_size >= 2, "vision needs >= 1 level of >= 2 codes")
        _check(0.0 < self.ema_decay < 1.0, "vision ema_decay must be in (0, 1)")
        _check(self.min_pixels <= self.max_pixels, "vision min_pixels must be <= max_pixels")
        _check(self.min_pixels >= self.token_px**2, "vision min_pixels must cover at least one token")

    @property
    def token_px(self) -> int:
        """Side in pixels of the square covered by one visual token (28 in the release)."""
        return self.patch_size * self.merge

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (self.codebook_size,) * self.levels


@dataclass(frozen=True, kw_only=True)
class AudioTokenizerConfig(ConfigBase):
    """Audio tokenizer (Sec. 2.3): Whisper-style log-mel -> encoder (50 Hz) -> pool by 4 -> RVQ at 12.5 Hz."""

    sample_rate: int = 16_000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 128
    encoder_dim: int = 1280
    encoder_depth: int = 32
    encoder_heads: int = 20
    pool: int = 4
    codebook_sizes: tuple[int, ...] = (8192, 4096, 2048, 1024, 1024, 1024, 1024, 1024)
    codebook_dim: int = 1280
    ema_decay: float = 0.99
    decoder_dim: int = 1280
    decoder_depth: int = 8
    flow_steps: int = 10
    output_sample_rate: int = 24_000

    def __post_init__(self) -> None:
        _check(self.encoder_dim % self.encoder_heads == 0, "audio encoder_dim must divide by encoder_heads")
        _check(self.sample_rate % self.hop_length == 0, "audio sample_rate must divide by hop_length")
        _check(len(self.codebook_sizes) >= 1, "audio needs at least one codebook level")
        _check(all(s >= 2 for s in self.codebook_sizes), "audio codebooks need >= 2 codes each")
        _check(0.0 < self.ema_decay < 1.0, "audio ema_decay must be in (0, 1)")

    @property
    def frame_rate(self) -> float:
        """Tokens per second: mel hop rate / 2 (strided conv) / pool = 12.5 Hz in the release."""
        return self.sample_rate / self.hop_length / 2 / self.pool

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)


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

    def level_offsets(self, modality: str) -> tuple[int, ...]:
        """Start id of each RVQ level of `modality` ("audio" or "visual")."""
        sizes = {"audio": self.audio_codebook_sizes, "visual": self.visual_codebook_sizes}.get(modality)
        if sizes is None:
            raise BadConfig(f"unknown modality {modality!r}, expected 'audio' or 'visual'")
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


@dataclass(frozen=True, kw_only=True)
class DepthHeadConfig(ConfigBase):
    """DepthTransformer head (Sec. 2.5.2, release §6): causal over the RVQ levels of one position."""

    dim: int = 2048
    n_layers: int = 4
    n_heads: int = 16
    ffn_scale: int = 4

    def __post_init__(self) -> None:
        _check(self.dim % self.n_heads == 0, "depth head dim must divide by n_heads")


@dataclass(frozen=True, kw_only=True)
class DinaConfig(ConfigBase):
    """A whole DiNA system: the two tokenizers, the vocabulary, the backbone and its heads."""

    name: str = "longcat_next"
    vision: VisionTokenizerConfig = field(default_factory=VisionTokenizerConfig)
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
