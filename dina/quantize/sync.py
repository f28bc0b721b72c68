"""How a quantizer agrees with its data-parallel peers: the `CodebookSync` hook.

Report Sec. 2.2.3 updates codebooks by EMA over "a batch of residual vectors"; under
data parallelism that batch is the union of every rank's batch. The quantizer never
talks to `torch.distributed` itself (STYLE: parallelism from outside): it calls a
`CodebookSync` at the two points where ranks must agree, and `dina.distributed`
installs one that talks to the process group. The default `LocalCodebookSync` is the
single-process identity.

Legend: K = codebook entries, D = codebook dim, M = candidate vectors on this rank,
R = rows asked for.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor


class CodebookSync(Protocol):
    """The two collective steps of an EMA codebook update.

    Every rank must call these in the same order with the same shapes (the quantizer
    does so as long as every rank runs the same number of training forwards).
    """

    def reduce_stats_(self, counts_K: Tensor, sums_KD: Tensor) -> None:
        """Sum this batch's assignment counts n_k and residual sums Σr over ranks, in place."""
        ...

    def choose_rows(self, candidates_MD: Tensor, n_rows: int, generator: torch.Generator) -> Tensor:
        """Pick `n_rows` of the candidates (R, D), returning the same rows on every rank."""
        ...


def sample_rows(candidates_MD: Tensor, n_rows: int, generator: torch.Generator) -> Tensor:
    """`n_rows` random rows of `candidates_MD` -> (R, D); distinct rows while M >= R.

    With fewer candidates than rows we sample with replacement: duplicates collide at
    the next assignment, the losers die again and are restarted from a later batch.
    """
    n_candidates = candidates_MD.shape[0]
    if n_candidates == 0:
        raise ValueError("cannot choose codebook rows from an empty batch")
    if n_candidates >= n_rows:
        rows_R = torch.randperm(n_candidates, generator=generator)[:n_rows]
    else:
        rows_R = torch.randint(n_candidates, (n_rows,), generator=generator)
    return candidates_MD.index_select(0, rows_R.to(candidates_MD.device))


class LocalCodebookSync:
    """Single process: the statistics are already global, and choices need no agreement."""

    def reduce_stats_(self, counts_K: Tensor, sums_KD: Tensor) -> None:
        del counts_K, sums_KD  # already the whole batch

    def choose_rows(self, candidates_MD: Tensor, n_rows: int, generator: torch.Generator) -> Tensor:
        return sample_rows(candidates_MD, n_rows, generator)
