"""The backbone's inputs: one embedding table for every id, additive level sums, the Pre-Buffer.

Report Sec. 2.5.1 (additive multi-level embedding), 2.5.3 (text-guided audio), 3.2.1 (the
Pre-Buffer); `longcat-next-release.md` §1 "Vocab" and §4:
- one table `embed_tokens` of `VocabConfig.size` rows holds text and special tokens, then the
  audio levels, then the visual levels, each level at its own offset (`VocabConfig.level_offsets`);
- an image position's embedding is Σ_l E[offset_l + c_l] followed by the Pre-Buffer,
  e + SwiGLU(LayerNorm(e)) (LayerNorm with bias; no MLP biases);
- an audio position's embedding is Σ_l E[offset_l + c_l]; a text-guided audio position adds the
  text stream's token embedding to it;
- the DepthTransformer heads read the same level rows (`level_embeddings`).
Codes are checked against their level's codebook size: the release's inference reads index
K at level l as level l+1's row 0 (a quirk, §4); dina refuses it instead.

Shapes: N positions, L levels, D width.
"""

from __future__ import annotations

import torch
from torch import nn

from dina.config import VocabConfig
from dina.errors import BadCodes
from dina.layers.mlp import SwiGLU
from dina.quantize import check_level_ids


class PreBuffer(nn.Module):
    """e + SwiGLU(LayerNorm(e)): a residual block between the summed codes and the backbone."""

    def __init__(self, dim: int, hidden: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.pre_layernorm = nn.LayerNorm(dim, eps=eps)
        self.mlp = SwiGLU(dim, hidden)

    def forward(self, e_ND: torch.Tensor) -> torch.Tensor:
        return e_ND + self.mlp(self.pre_layernorm(e_ND))


class MultimodalEmbedding(nn.Module):
    """The shared table and the Pre-Buffer; one method per kind of position."""

    def __init__(self, vocab: VocabConfig, dim: int, prebuffer_dim: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.vocab = vocab
        self.embed_tokens = nn.Embedding(vocab.size, dim)
        self.pre_buffer = PreBuffer(dim, prebuffer_dim, eps=eps)

    def text_ids(self, ids_N: torch.Tensor) -> torch.Tensor:
        """The rows of text and special tokens: the ids themselves, checked to be below the audio offset."""
        if ids_N.numel() and (int(ids_N.min()) < 0 or int(ids_N.max()) >= self.vocab.audio_offset):
            raise BadCodes(f"text ids must be in [0, {self.vocab.audio_offset})")
        return ids_N

    def level_ids(self, modality: str, codes_NL: torch.Tensor) -> torch.Tensor:
        """(N, L) codes of `modality` ("audio" or "visual") -> their (N, L) rows offset_l + c_l, checked."""
        offsets, sizes = self.vocab.level_offsets(modality), self.vocab.codebook_sizes(modality)
        if codes_NL.ndim != 2 or codes_NL.shape[1] != len(offsets):
            raise BadCodes(f"{modality} codes must be (N, {len(offsets)}), got {tuple(codes_NL.shape)}")
        check_level_ids(codes_NL, sizes, where=f"{modality} ")
        return codes_NL + torch.tensor(offsets, device=codes_NL.device)

    def level_rows(self, modality: str, level: int, codes_N: torch.Tensor) -> torch.Tensor:
        """(N,) codes of one level -> their (N, D) rows E[offset_level + c], checked (decoding draws
        one level at a time)."""
        sizes = self.vocab.codebook_sizes(modality)[level : level + 1]
        check_level_ids(codes_N[:, None], sizes, where=f"{modality} ", first_level=level)
        return self.embed_tokens(codes_N + self.vocab.level_offsets(modality)[level])

    def text(self, ids_N: torch.Tensor) -> torch.Tensor:
        """Text and special tokens (ids below the audio offset)."""
        return self.embed_tokens(self.text_ids(ids_N))

    def level_embeddings(self, modality: str, codes_NL: torch.Tensor) -> torch.Tensor:
        """(N, L) codes -> (N, L, D) rows E[offset_l + c_l] of `modality` ("audio" or "visual")."""
        return self.embed_tokens(self.level_ids(modality, codes_NL))

    def image(self, codes_NL: torch.Tensor) -> torch.Tensor:
        """Visual positions: the Pre-Buffer of the level sum."""
        return self.pre_buffer(self.level_embeddings("visual", codes_NL).sum(dim=1))

    def audio(self, codes_NL: torch.Tensor, text_ids_N: torch.Tensor | None = None) -> torch.Tensor:
        """Audio positions: the level sum, plus the text stream's embedding where speech is text-guided."""
        e_ND = self.level_embeddings("audio", codes_NL).sum(dim=1)
        return e_ND if text_ids_N is None else e_ND + self.text(text_ids_N)
