"""The DepthTransformer head: all L RVQ levels of one position, causally over the levels.

Report Sec. 2.5.2; `longcat-next-release.md` §6 (OmniImageHead / OmniAudioHead). For one
sequence position with final-normed backbone hidden state h and codes c_0 … c_{L-1}:

- level inputs: position 0 is h; position j is Σ_{i<j} E_i[c_i], the same level embedding
  tables the backbone reads (no Pre-Buffer); all L go through `hidden_norm` (RMSNorm) and
  `hidden_proj` (Linear, no bias) to the head's width D;
- `n_layers` blocks: x + causal attention(RMSNorm(x)) over the L positions (q, v, out biased,
  k not), then x + FFN_l(RMSNorm(x)) with a *position-specific* feed-forward: position l
  uses rows l of `linear1` viewed (F/L, L, D) and columns l of `linear2` viewed (D, L, F/L),
  F = ffn_scale · D, GELU (the release's linear biases are ignored, so ours have none);
- `headnorm` (RMSNorm), then classifier l: Linear(D -> K_l + 1): the extra class is "end".

`forward` is teacher-forced training: given the true codes, it returns every level's logits at
once. `step` is decoding: one level at a time, keeping each block's keys and values of the
earlier levels (`LevelCache`, a buffer of all L levels allocated at level 0, with q, k and v fused
into one projection), so level l runs one position, not L; the engine samples between steps.
`multi_level_loss` is the cross-entropy per level, combined with per-level weights.

Shapes: N positions, M backbone width, L levels, D head width, F feed-forward width, K_l codes;
in decoding H heads, E = D / H per head, t levels so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from dina.config import DepthHeadConfig
from dina.config_io import _check
from dina.errors import BadArgument
from dina.layers.norm import RMSNorm


class LevelAttention(nn.Module):
    """Causal multi-head attention over the L level positions of each sequence position."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x_NLD: torch.Tensor) -> torch.Tensor:
        N, L, D = x_NLD.shape
        Dh = D // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(N, L, self.heads, Dh).transpose(1, 2)

        # Written out rather than through SDPA: over L = 8 positions, batched matmuls are several
        # times faster on CPU than the fused kernel (`dina bench train`).
        scores = split(self.q(x_NLD)) @ split(self.k(x_NLD)).transpose(-1, -2) * Dh**-0.5
        causal = torch.ones(L, L, dtype=torch.bool, device=x_NLD.device).tril()
        y = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1) @ split(self.v(x_NLD))
        return self.out(y.transpose(1, 2).reshape(N, L, D))

    def step(self, x_ND: torch.Tensor, level: int, kv: LevelKV) -> torch.Tensor:
        """One new level position per row, attending to itself and the earlier levels held in `kv`
        (its keys and values are written there at `level`) -> (N, D)."""
        N, D = x_ND.shape
        Dh = D // self.heads
        qkv_N3HE = F.linear(x_ND, kv.qkv_weight, kv.qkv_bias).view(N, 3, self.heads, Dh)
        kv.kv_2NHLE[:, :, :, level] = qkv_N3HE[:, 1:].transpose(0, 1)
        keys_NHtE, values_NHtE = kv.kv_2NHLE[:, :, :, : level + 1]
        # One query over at most L keys: here the fused kernel is the faster one (one call, not five).
        y_NH1E = F.scaled_dot_product_attention(qkv_N3HE[:, 0, :, None], keys_NHtE, values_NHtE)
        return F.linear(y_NH1E.reshape(N, D), self.out.weight, self.out.bias)

    def new_kv(self, N: int, levels: int, like: torch.Tensor) -> LevelKV:
        """An empty per-level key/value buffer for N rows, with q, k, v fused into one projection
        (one matmul per level instead of three; the weights are read once per buffer)."""
        D = self.q.weight.shape[0]
        assert self.q.bias is not None and self.v.bias is not None
        return LevelKV(
            qkv_weight=torch.cat([self.q.weight, self.k.weight, self.v.weight]),
            qkv_bias=torch.cat([self.q.bias, self.q.bias.new_zeros(D), self.v.bias]),
            kv_2NHLE=like.new_empty(2, N, self.heads, levels, D // self.heads),
        )


@dataclass(kw_only=True)
class LevelKV:
    """One block's decoding state over the L levels of N positions: the fused q/k/v projection
    (the key has no bias: zeros) and the keys and values, (2, N, H, L, Dh), filled up to the
    current level."""

    qkv_weight: torch.Tensor  # (3D, D)
    qkv_bias: torch.Tensor  # (3D,)
    kv_2NHLE: torch.Tensor


class PositionFFN(nn.Module):
    """A feed-forward with its own weights per level position (F/L hidden units each)."""

    def __init__(self, dim: int, hidden: int, levels: int) -> None:
        super().__init__()
        _check(hidden % levels == 0, f"depth head feed-forward width {hidden} must divide by {levels} levels")
        self.levels = levels
        self.linear1 = nn.Linear(dim, hidden, bias=False)
        self.linear2 = nn.Linear(hidden, dim, bias=False)

    def step(self, x_ND: torch.Tensor, level: int) -> torch.Tensor:
        """The feed-forward of position `level` alone."""
        D, L = x_ND.shape[-1], self.levels
        w1_HD = self.linear1.weight.view(-1, L, D)[:, level]
        w2_DH = self.linear2.weight.view(D, L, -1)[:, level]
        return F.linear(F.gelu(F.linear(x_ND, w1_HD)), w2_DH)

    def forward(self, x_NLD: torch.Tensor) -> torch.Tensor:
        D, L = x_NLD.shape[-1], self.levels
        w1_LHD = self.linear1.weight.view(-1, L, D).transpose(0, 1)  # position l: rows l of (F/L, L, D)
        w2_LDH = self.linear2.weight.view(D, L, -1).transpose(0, 1)  # position l: columns l of (D, L, F/L)
        h_NLH = F.gelu(torch.einsum("nld,lhd->nlh", x_NLD, w1_LHD))
        return torch.einsum("nlh,ldh->nld", h_NLH, w2_LDH)


class DepthBlock(nn.Module):
    def __init__(self, cfg: DepthHeadConfig, levels: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(cfg.dim), RMSNorm(cfg.dim)
        self.attn = LevelAttention(cfg.dim, cfg.n_heads)
        self.ffn = PositionFFN(cfg.dim, cfg.ffn_scale * cfg.dim, levels)

    def forward(self, x_NLD: torch.Tensor) -> torch.Tensor:
        x_NLD = x_NLD + self.attn(self.norm1(x_NLD))
        return x_NLD + self.ffn(self.norm2(x_NLD))

    def step(self, x_ND: torch.Tensor, level: int, kv: LevelKV) -> torch.Tensor:
        x_ND = x_ND + self.attn.step(self.norm1(x_ND), level, kv)
        return x_ND + self.ffn.step(self.norm2(x_ND), level)


class DepthTransformer(nn.Module):
    """Backbone hidden state + the codes' level embeddings -> logits of every level (teacher forced)."""

    def __init__(self, cfg: DepthHeadConfig, model_dim: int, codebook_sizes: Sequence[int]) -> None:
        super().__init__()
        self.codebook_sizes = tuple(codebook_sizes)
        levels = len(self.codebook_sizes)
        self.hidden_norm = RMSNorm(model_dim)
        self.hidden_proj = nn.Linear(model_dim, cfg.dim, bias=False)
        self.blocks = nn.ModuleList(DepthBlock(cfg, levels) for _ in range(cfg.n_layers))
        self.headnorm = RMSNorm(cfg.dim)
        self.heads = nn.ModuleList(nn.Linear(cfg.dim, k + 1) for k in self.codebook_sizes)

    @property
    def end_class(self) -> tuple[int, ...]:
        """Per level, the index of the extra "end" class (= the level's codebook size)."""
        return self.codebook_sizes

    def forward(self, hidden_NM: torch.Tensor, code_emb_NLM: torch.Tensor) -> list[torch.Tensor]:
        """(N, M) hidden states and (N, L, M) level embeddings E_l[c_l] -> L logits (N, K_l + 1)."""
        L = len(self.codebook_sizes)
        if code_emb_NLM.ndim != 3 or code_emb_NLM.shape[1] != L or code_emb_NLM.shape[0] != hidden_NM.shape[0]:
            raise BadArgument(f"depth head expects (N, {L}, M) level embeddings, got {tuple(code_emb_NLM.shape)}")
        prefix_NLM = code_emb_NLM.cumsum(dim=1)[:, :-1]  # position j: Σ_{i<j} E_i[c_i]
        x_NLM = torch.cat([hidden_NM[:, None], prefix_NLM], dim=1)
        x_NLD = self.hidden_proj(self.hidden_norm(x_NLM))
        for block in self.blocks:
            x_NLD = block(x_NLD)
        x_NLD = self.headnorm(x_NLD)
        return [head(x_NLD[:, level]) for level, head in enumerate(self.heads)]

    def new_cache(self) -> LevelCache:
        return LevelCache()

    def step(self, cache: LevelCache, x_NM: torch.Tensor) -> torch.Tensor:
        """Decoding: the next level's input per row (the hidden state h at level 0, then the sum
        of the codes' level embeddings so far) -> that level's logits (N, K_l + 1). Equal to
        `forward`'s logits of that level, computing one position per level instead of all L."""
        level, L = cache.level, len(self.codebook_sizes)
        if level >= L:
            raise BadArgument(f"all {L} levels are decoded already")
        x_ND = F.linear(self.hidden_norm(x_NM), self.hidden_proj.weight)
        if level == 0:
            cache.blocks = [cast(DepthBlock, b).attn.new_kv(x_ND.shape[0], L, x_ND) for b in self.blocks]
        for block, kv in zip(self.blocks, cache.blocks, strict=True):
            x_ND = cast(DepthBlock, block).step(x_ND, level, kv)
        cache.level += 1
        head = cast(nn.Linear, self.heads[level])
        return F.linear(self.headnorm(x_ND), head.weight, head.bias)


class LevelCache:
    """What `DepthTransformer.step` keeps between the levels of a batch of positions: each block's
    keys and values of the levels run so far (`LevelKV`, allocated for all L levels at level 0)."""

    def __init__(self) -> None:
        self.blocks: list[LevelKV] = []
        self.level = 0


def multi_level_loss(
    logits: list[torch.Tensor], codes_NL: torch.Tensor, weights: Sequence[float] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_l w_l CE_l / Σ_l w_l, per-level CE (L,)); equal weights by default."""
    w = torch.tensor([1.0] * len(logits) if weights is None else list(weights))
    if w.shape != (len(logits),) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise BadArgument(f"need {len(logits)} non-negative level weights with a positive sum, got {weights}")
    per_level = torch.stack([F.cross_entropy(lg, codes_NL[:, i]) for i, lg in enumerate(logits)])
    return (w * per_level).sum() / w.sum(), per_level.detach()
