"""Documents packed into one flat sequence for the native model (report Sec. 2.5; release §1).

Training packs whole documents one after another (`dina.sequence.packing`); attention stays
inside each document through `cu_seqlens`, positions restart at 0 in each, so a packed batch
computes exactly what its documents would alone. Since every document's first position has no
label, the label at flat index t is always predicted from the hidden state at t - 1 of the same
document.

Shapes: N packed positions, Lv / La visual / audio levels, B documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dina.errors import BadArgument
from dina.sequence.document import IGNORE, Document


@dataclass(frozen=True, kw_only=True)
class ModelBatch:
    """The concatenated tensors of `Document` plus packing structure."""

    ids_N: torch.Tensor
    guide_N: torch.Tensor
    visual_codes_NL: torch.Tensor
    audio_codes_NL: torch.Tensor
    lm_labels_N: torch.Tensor
    visual_labels_NL: torch.Tensor
    audio_labels_NL: torch.Tensor
    modality_N: torch.Tensor
    format_N: torch.Tensor  # index into `formats` of each position's document
    formats: tuple[str, ...]
    cu_seqlens: torch.Tensor  # (B + 1,) int32 document boundaries
    pos_N: torch.Tensor  # position within its document

    @property
    def n_tokens(self) -> int:
        return int(self.ids_N.shape[0])


def collate(docs: Sequence[Document], formats: Sequence[str] | None = None) -> ModelBatch:
    """Concatenate documents; `formats` fixes the format index order (default: first seen)."""
    if not docs:
        raise BadArgument("cannot collate an empty list of documents")
    names = tuple(formats) if formats is not None else tuple(dict.fromkeys(d.format for d in docs))
    unknown = {d.format for d in docs} - set(names)
    if unknown:
        raise BadArgument(f"documents of unlisted formats {sorted(unknown)}")
    for d in docs:
        if int(d.lm_labels[0]) != IGNORE or bool((d.visual_labels[0] != IGNORE).any()):
            raise BadArgument(f"{d.format}: a document's first position cannot carry a label")
    lengths = [len(d) for d in docs]

    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(d, name) for d in docs])

    return ModelBatch(
        ids_N=cat("ids"),
        guide_N=cat("guide"),
        visual_codes_NL=cat("visual_codes"),
        audio_codes_NL=cat("audio_codes"),
        lm_labels_N=cat("lm_labels"),
        visual_labels_NL=cat("visual_labels"),
        audio_labels_NL=cat("audio_labels"),
        modality_N=cat("modality"),
        format_N=torch.cat([torch.full((n,), names.index(d.format)) for d, n in zip(docs, lengths, strict=True)]),
        formats=names,
        cu_seqlens=torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32),
        pos_N=torch.cat([torch.arange(n) for n in lengths]),
    )
