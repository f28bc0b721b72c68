"""The SAE's multi-aspect alignment objective (report Sec. 2.2.2, eq. 2): L_SAE = -log P(A | z_p, Q).

No pretrained vision-language encoder can be downloaded here, so dina trains its own SAE the
way the report aligns one: a small text decoder must answer questions (captions, counts,
colors, shapes, positions, relations, the sign's word) from the encoder's features alone.
The report uses an LLM (Qwen3-1.7B, Sec. 4.1.1) as that decoder; ours is a few-layer causal
transformer with cross-attention to the image tokens — a departure forced by the CPU.

Image tokens carry no absolute position of their own (the SAE uses 2-D rotary positions,
which are relative), so the decoder adds a 2-D sinusoidal code of each token's normalized
(row, col) to its keys: the SAE is free to encode *what* is where relative to its
neighbours, and the decoder reads *where* from the grid, as an LLM reads it from raster order.

Generative sufficiency (eq. 1, second property; Sec. 2.2.4 "intrinsic information recovery").
The report's SAE is a large ViT pre-trained on billions of tokens whose residual stream keeps
the pixels (eq. 7). Our tiny SAE, trained on 2,000 captioned images, does not: trained on
eq. 2 alone its features collapse and a decoder reconstructs worse from them than from a random
encoder (measured by `dina vision study random-encoder`). `PixelProbe` stands in for what
scale provides: a *linear* map from each token's feature to its 28×28 pixels, trained with
the SAE, so that the pixels stay linearly present in z_p next to the semantics. Departure
(ours), weighted by `VisionTrainPlan.sae_pixel_weight` (0 turns it off).

Legend: B examples (question sequences), I images, S image tokens (padded per batch), T text tokens,
D width, V vocabulary.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dina.errors import BadConfig, BadInputFile
from dina.io.atomic import write_json

PAD, BOS, EOS, UNK = 0, 1, 2, 3
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


class WordVocab:
    """A word-level vocabulary over the worlds' text (lowercased; punctuation kept as tokens)."""

    def __init__(self, words: list[str]) -> None:
        self.words = ["<pad>", "<bos>", "<eos>", "<unk>", *words]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: list[str]) -> WordVocab:
        return cls(sorted({w for t in texts for w in _WORD.findall(t.lower())}))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, UNK) for w in _WORD.findall(text.lower())]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids if i > UNK)

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, {"words": self.words[4:]})

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordVocab:
        path = Path(path)
        if not path.is_file():
            raise BadInputFile(f"vocabulary {path} is missing")
        return cls(json.loads(path.read_text())["words"])


@dataclass(frozen=True, kw_only=True)
class AnswerDecoderConfig:
    vocab_size: int
    feature_dim: int
    dim: int = 128
    depth: int = 2
    heads: int = 4
    max_text: int = 96

    def __post_init__(self) -> None:
        if self.dim % self.heads or self.dim % 4:
            raise BadConfig("answer decoder dim must divide by heads and by 4")


class PixelProbe(nn.Module):
    """Linear probe: one SAE feature (F) -> its token's pixels in merge-block patch order (merge²·P)."""

    def __init__(self, feature_dim: int, token_values: int) -> None:
        super().__init__()
        self.proj = nn.Linear(feature_dim, token_values)

    def loss(self, features_TF: torch.Tensor, patches_NP: torch.Tensor) -> torch.Tensor:
        """Mean squared error against the CLIP-normalized patches (N = T·merge² rows, merge-block order)."""
        target = patches_NP.reshape(features_TF.shape[0], -1)
        return F.mse_loss(self.proj(features_TF), target)


def grid_position_code(grid_hw: tuple[int, int], dim: int) -> torch.Tensor:
    """(h*w, dim) sinusoidal code of each token's normalized (row, col), raster order."""
    h, w = grid_hw
    rows = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    cols = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    rr, cc = torch.meshgrid(rows, cols, indexing="ij")
    freqs = 2.0 ** torch.arange(dim // 4, dtype=torch.float32) * math.pi
    parts = [f(x.reshape(-1, 1) * freqs) for x in (rr, cc) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=-1)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2, self.norm3 = nn.RMSNorm(dim), nn.RMSNorm(dim), nn.RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_x = nn.Linear(dim, dim, bias=False)
        self.kv_x = nn.Linear(dim, 2 * dim, bias=False)
        self.out_self = nn.Linear(dim, dim, bias=False)
        self.out_x = nn.Linear(dim, dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        return x.view(B, T, self.heads, D // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        B, H, T, Dh = x.shape
        return x.transpose(1, 2).reshape(B, T, H * Dh)

    def forward(
        self, x_BTD: torch.Tensor, img_ISD: torch.Tensor, img_mask_IS: torch.Tensor, owner_B: torch.Tensor | None
    ) -> torch.Tensor:
        q, k, v = (self._split(t) for t in self.qkv(self.norm1(x_BTD)).chunk(3, dim=-1))
        x_BTD = x_BTD + self.out_self(self._merge(F.scaled_dot_product_attention(q, k, v, is_causal=True)))
        q = self._split(self.q_x(self.norm2(x_BTD)))
        k, v = (self._split(t) for t in self.kv_x(img_ISD).chunk(2, dim=-1))  # once per image
        if owner_B is not None:
            k, v, img_mask_IS = k[owner_B], v[owner_B], img_mask_IS[owner_B]
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=img_mask_IS[:, None, None, :])
        x_BTD = x_BTD + self.out_x(self._merge(attn))
        return x_BTD + self.mlp(self.norm3(x_BTD))


class AnswerDecoder(nn.Module):
    """Reads `<bos> question answer <eos>` causally while cross-attending to the image tokens."""

    def __init__(self, config: AnswerDecoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.dim)
        self.pos = nn.Embedding(c.max_text, c.dim)
        self.img_in = nn.Sequential(nn.RMSNorm(c.feature_dim), nn.Linear(c.feature_dim, c.dim))
        self.blocks = nn.ModuleList([_Block(c.dim, c.heads) for _ in range(c.depth)])
        self.norm = nn.RMSNorm(c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size, bias=False)

    def image_keys(
        self, features: list[torch.Tensor], grids: list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (S_i, F) features -> padded keys (B, S, D) with grid codes, and a key mask (B, S)."""
        S = max(f.shape[0] for f in features)
        keys = features[0].new_zeros(len(features), S, self.config.dim)
        mask = torch.zeros(len(features), S, dtype=torch.bool)
        for i, (f, g) in enumerate(zip(features, grids, strict=True)):
            keys[i, : f.shape[0]] = self.img_in(f) + grid_position_code(g, self.config.dim)
            mask[i, : f.shape[0]] = True
        return keys, mask

    def forward(
        self,
        ids_BT: torch.Tensor,
        img_ISD: torch.Tensor,
        img_mask_IS: torch.Tensor,
        owner_B: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, V) for the next token at every position.

        Sequence b reads image `owner_B[b]` of the I images (None: image b, I = B). The image keys
        and values are projected once per image and then gathered, not once per sequence: an SAE
        step asks ~9 questions of each image, so this is ~9x less cross-attention projection work.
        """
        T = ids_BT.shape[1]
        x = self.embed(ids_BT) + self.pos(torch.arange(T))
        for block in self.blocks:
            x = block(x, img_ISD, img_mask_IS, owner_B)
        return self.head(self.norm(x))


def encode_qa(vocab: WordVocab, question: str, answer: str, max_text: int) -> tuple[list[int], list[int]]:
    """(ids, answer mask): `<bos> question answer <eos>`; the loss falls on the answer and `<eos>` only."""
    q, a = vocab.encode(question), vocab.encode(answer)
    ids = [BOS, *q, *a, EOS][:max_text]
    mask = [0] * (1 + len(q)) + [1] * (len(a) + 1)
    return ids, mask[: len(ids)]


def batch_qa(seqs: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """`encode_qa` outputs -> (ids, answer mask), both (B, T) long, right-padded with `PAD` and 0."""
    T = max(len(ids) for ids, _ in seqs)
    ids_BT = torch.full((len(seqs), T), PAD, dtype=torch.long)
    mask_BT = torch.zeros(len(seqs), T, dtype=torch.long)
    for b, (s_ids, s_mask) in enumerate(seqs):
        ids_BT[b, : len(s_ids)], mask_BT[b, : len(s_mask)] = torch.tensor(s_ids), torch.tensor(s_mask)
    return ids_BT, mask_BT


def answer_loss(logits_BTV: torch.Tensor, ids_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting token t+1 where token t+1 is part of the answer."""
    target, weight = ids_BT[:, 1:], mask_BT[:, 1:].float()
    ce = F.cross_entropy(logits_BTV[:, :-1].transpose(1, 2), target, reduction="none")
    return (ce * weight).sum() / weight.sum().clamp(min=1.0)


@torch.no_grad()
def greedy_answer(
    decoder: AnswerDecoder, vocab: WordVocab, img_BSD: torch.Tensor, img_mask_BS: torch.Tensor, question: str
) -> list[str]:
    """Answer one question for every image in the batch, greedily, up to 24 words."""
    B = img_BSD.shape[0]
    ids = torch.tensor([[BOS, *vocab.encode(question)]] * B)
    done = torch.zeros(B, dtype=torch.bool)
    out: list[list[int]] = [[] for _ in range(B)]
    for _ in range(24):
        nxt = decoder(ids, img_BSD, img_mask_BS)[:, -1].argmax(-1)
        for i in range(B):
            if not done[i] and int(nxt[i]) != EOS:
                out[i].append(int(nxt[i]))
        done |= nxt == EOS
        if bool(done.all()) or ids.shape[1] >= decoder.config.max_text - 1:
            break
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    return [vocab.decode(o) for o in out]
