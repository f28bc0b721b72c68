"""Hashed n-gram embeddings ("over-embedding") of the LongCat-Flash-Lite backbone (release §1).

For text token t with id x_t and V text ids, m = `ngram_vocab_ratio` · V, orders o = 2 … n and
splits s = 0 … k-1, table j = (o - 2) · k + s has m + 2j + 1 rows (odd moduli) of width D / J
(J = (n - 1) · k tables) and a projection back to D:

    id_j(t) = (Σ_{d < o} x_{t-d} · V^d) mod (m + 2j + 1)      (V^d taken mod the modulus)
    e(t)    = mean(word(x_t), proj_0(E_0[id_0(t)]), …, proj_{J-1}(E_{J-1}[id_{J-1}(t)]))

Context positions before the document's start count as 0, and so does everything at or before
the latest non-text token (ids ≥ V: special tokens, image and audio codes): the context
restarts after them. A non-text token's own embedding is its plain word embedding. Release
values: V = 131,072, ratio 78, n = 4, k = 4: 12 tables of 10,223,617 … rows × 256, 31.4 B
parameters. Parameter names (`embedders.{j}`, `post_projs.{j}`) follow the release's
`model.ngram_embeddings.*`.

Shapes: N packed tokens, D width, J tables, W = D / J table width.
"""

from __future__ import annotations

import torch
from torch import nn

from dina.config import BackboneConfig
from dina.config_io import _check


class NgramEmbedding(nn.Module):
    """The J hashed tables and projections; `forward` mixes them with the word embedding."""

    def __init__(self, cfg: BackboneConfig, text_vocab: int) -> None:
        super().__init__()
        _check(cfg.ngram_vocab_ratio > 0, "n-gram embeddings are off (ngram_vocab_ratio 0)")
        self.text_vocab, self.orders, self.splits = text_vocab, cfg.ngram_orders, cfg.ngram_splits
        n_tables = (cfg.ngram_orders - 1) * cfg.ngram_splits
        _check(cfg.ngram_orders >= 2 and cfg.dim % n_tables == 0, f"dim {cfg.dim} must split into {n_tables} tables")
        base = cfg.ngram_vocab_ratio * text_vocab
        self.moduli = [base + 2 * j + 1 for j in range(n_tables)]
        width = cfg.dim // n_tables
        self.embedders = nn.ModuleList(nn.Embedding(m, width) for m in self.moduli)
        self.post_projs = nn.ModuleList(nn.Linear(width, cfg.dim, bias=False) for _ in range(n_tables))

    def contexts(self, ids_N: torch.Tensor, cu_seqlens: torch.Tensor) -> torch.Tensor:
        """(N, n) ids x_{t-d} for d = 0 … n-1, zero before the document start or a non-text token."""
        n = ids_N.shape[0]
        index_N = torch.arange(n)
        starts_N = torch.repeat_interleave(cu_seqlens[:-1], cu_seqlens.diff())
        last_other_N = torch.where(ids_N >= self.text_vocab, index_N, -1).cummax(0).values
        first_N = torch.maximum(starts_N, last_other_N + 1)  # the earliest position t's context may read
        cols = []
        for d in range(self.orders):
            src_N = index_N - d
            ok_N = src_N >= first_N
            cols.append(torch.where(ok_N, ids_N[src_N.clamp(min=0)], 0))
        return torch.stack(cols, dim=1)

    def hashed_ids(self, ids_N: torch.Tensor, cu_seqlens: torch.Tensor) -> list[torch.Tensor]:
        """Per table j, the (N,) row id_j(t) (int64: every product stays below 2^63)."""
        ctx_Nn = self.contexts(ids_N, cu_seqlens)
        out = []
        for j, modulus in enumerate(self.moduli):
            order = 2 + j // self.splits
            total_N = torch.zeros_like(ids_N)
            for d in range(order):
                total_N += (ctx_Nn[:, d] % modulus) * pow(self.text_vocab, d, modulus)
            out.append(total_N % modulus)
        return out

    def forward(self, ids_N: torch.Tensor, word_ND: torch.Tensor, cu_seqlens: torch.Tensor) -> torch.Tensor:
        """(N,) ids, their (N, D) word embeddings, document boundaries -> (N, D) input embeddings."""
        total_ND = word_ND.clone()
        for j, rows_N in enumerate(self.hashed_ids(ids_N, cu_seqlens)):
            total_ND = total_ND + self.post_projs[j](self.embedders[j](rows_N))
        mixed_ND = total_ND / (1 + len(self.moduli))
        return torch.where((ids_N < self.text_vocab)[:, None], mixed_ND, word_ND)
