"""Packing variable-length samples into fixed token budgets instead of padding them.

A batch of images at native resolution has wildly different lengths (a 56x56 image is
6 tokens, a 448x448 one 258): padding every sample to the longest wastes most of the
compute. Packing places whole documents one after another in rows of `budget` tokens
(first-fit decreasing), and attention is confined to each document by a block-diagonal
causal mask, so a packed row computes exactly what the documents would alone
(`tests/sequence/test_packing.py` checks this against per-document attention).

Shapes: R rows, T = budget tokens per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dina.errors import BadArgument, BadInputFile
from dina.sequence.segments import Sample

PAD_DOC = -1


@dataclass(frozen=True, kw_only=True)
class PackedBatch:
    """Documents packed into rows: `doc_ids_RT` names the document of each position (-1 = padding)."""

    doc_ids_RT: torch.Tensor
    positions_RT: torch.Tensor
    rows: tuple[tuple[int, ...], ...]

    @property
    def budget(self) -> int:
        return self.doc_ids_RT.shape[1]

    @property
    def padding_fraction(self) -> float:
        return float((self.doc_ids_RT == PAD_DOC).float().mean())

    def attention_mask(self) -> torch.Tensor:
        """(R, 1, T, T) bool, True where query t may attend key s: same document and s <= t."""
        doc = self.doc_ids_RT
        same = (doc[:, :, None] == doc[:, None, :]) & (doc[:, :, None] != PAD_DOC)
        causal = torch.ones(self.budget, self.budget, dtype=torch.bool).tril()
        mask = same & causal
        # Padding queries attend to themselves so softmax never sees an empty row (their output is unused).
        mask |= torch.eye(self.budget, dtype=torch.bool) & (doc == PAD_DOC)[:, :, None]
        return mask[:, None]

    def cu_seqlens(self, row: int) -> torch.Tensor:
        """Cumulative document boundaries of one row, as variable-length attention kernels take them."""
        lengths = [int((self.doc_ids_RT[row] == d).sum()) for d in self.rows[row]]
        return torch.tensor([0, *np.cumsum(lengths).tolist()], dtype=torch.int32)


@dataclass(frozen=True, kw_only=True)
class PackingResult:
    batch: PackedBatch
    skipped: tuple[int, ...]


def _first_fit_decreasing(lengths: Sequence[int], budget: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        for r, room in enumerate(free):
            if lengths[i] <= room:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(budget - lengths[i])
    return [sorted(row) for row in rows]


def pack_lengths(lengths: Sequence[int], budget: int, *, oversize: str = "skip") -> PackingResult:
    """Pack documents of the given lengths into rows of `budget` tokens.

    A document longer than the budget is skipped and counted (`oversize="skip"`) or
    refused (`oversize="error"`).
    """
    if budget <= 0:
        raise BadArgument(f"token budget must be positive, got {budget}")
    if oversize not in ("skip", "error"):
        raise BadArgument(f"oversize must be 'skip' or 'error', got {oversize!r}")
    too_long = tuple(i for i, n in enumerate(lengths) if n > budget)
    if too_long and oversize == "error":
        raise BadInputFile(f"sample {too_long[0]} has {lengths[too_long[0]]} tokens, over the budget of {budget}")
    keep = [i for i in range(len(lengths)) if i not in set(too_long)]
    rows = [[keep[j] for j in row] for row in _first_fit_decreasing([lengths[i] for i in keep], budget)]
    doc = torch.full((len(rows), budget), PAD_DOC, dtype=torch.long)
    pos = torch.zeros((len(rows), budget), dtype=torch.long)
    for r, row in enumerate(rows):
        t = 0
        for i in row:
            doc[r, t : t + lengths[i]] = i
            pos[r, t : t + lengths[i]] = torch.arange(lengths[i])
            t += lengths[i]
    batch = PackedBatch(doc_ids_RT=doc, positions_RT=pos, rows=tuple(tuple(r) for r in rows))
    return PackingResult(batch=batch, skipped=too_long)


def pack_samples(samples: Sequence[Sample], budget: int, *, oversize: str = "skip") -> PackingResult:
    return pack_lengths([s.num_tokens for s in samples], budget, oversize=oversize)


@dataclass(frozen=True, kw_only=True)
class PackingStats:
    """Padding with and without packing for the same documents."""

    n_documents: int
    real_tokens: int
    padded_tokens: int
    padded_fraction: float
    packed_rows: int
    packed_tokens: int
    packed_fraction: float
    padding_avoided: float
    skipped: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def packing_stats(lengths: Sequence[int], budget: int, batch_size: int) -> PackingStats:
    """Compare padding each batch of `batch_size` documents to its longest with packing into `budget` rows.

    `padding_avoided` is the share of the padded layout's pad tokens that packing removes.
    """
    if batch_size <= 0:
        raise BadArgument(f"batch size must be positive, got {batch_size}")
    result = pack_lengths(lengths, budget)
    kept = [n for i, n in enumerate(lengths) if i not in set(result.skipped)]
    real = sum(kept)
    padded = sum(max(kept[i : i + batch_size]) * len(kept[i : i + batch_size]) for i in range(0, len(kept), batch_size))
    packed = result.batch.doc_ids_RT.numel()
    pad_padded, pad_packed = padded - real, packed - real
    return PackingStats(
        n_documents=len(kept),
        real_tokens=real,
        padded_tokens=padded,
        padded_fraction=pad_padded / max(padded, 1),
        packed_rows=len(result.batch.rows),
        packed_tokens=packed,
        packed_fraction=pad_packed / max(packed, 1),
        padding_avoided=1.0 - pad_packed / pad_padded if pad_padded else 0.0,
        skipped=len(result.skipped),
    )


def iterate_packed(
    samples: Sequence[Sample], budget: int, *, seed: int, window: int = 256, epochs: int = 1
) -> Iterator[tuple[PackedBatch, list[Sample]]]:
    """Yield packed batches over shuffled windows of samples; the same seed gives the same batches.

    Each epoch draws its permutation from (seed, epoch), so a resumed run can restart at any epoch.
    """
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(samples))
        for start in range(0, len(order), window):
            chunk = [samples[i] for i in order[start : start + window]]
            result = pack_samples(chunk, budget)
            yield result.batch, chunk
