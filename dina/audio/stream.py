"""Streaming mel decode: codes arrive chunk by chunk, mel frames leave as soon as they are final.

Report Sec. 2.3 and the LongCat-Flash-Omni report §2.2 / §6.2 (streaming speech output). The
mel decoder is causal up to its post-net, whose look-ahead is `LOOKAHEAD_MEL` frames (one
token), and the mel refiner is causal (`dina.audio.decoder`, `dina.audio.refiner`). So after N
tokens of a decoder window, mel frames [0, 8N - 8) can no longer change: `push` re-runs the
window's prefix (bounded by the decoder's 30 s of positions, as offline decoding is) and emits
exactly those frames; `flush` emits the held-back last token at the end of the stream.

Equality with offline `AudioTokenizer.decode_mel`: exact up to float rounding without the
refiner or with it at temperature 0 (tested). At temperature > 0 the refiner's start noise is
drawn per window offline and per call here, so the two differ by the sampled detail; use
temperature 0 where streaming must match offline.

The wave: `StreamingWaveDecoder` feeds the final mel frames to the neural vocoder's own stream
(`dina.audio.vocoder.StreamingVocoder`, causal with a bounded look-ahead), so samples leave
as soon as no later code can change them; joined, they equal `AudioTokenizer.decode` with the
vocoder within float rounding (tested at 1e-4), so chunk joins cannot click. The Griffin-Lim
fallback is iterative over the whole spectrogram and does not stream.
"""

from __future__ import annotations

import torch

from dina.audio.decoder import LOOKAHEAD_MEL
from dina.audio.encoder import MEL_PER_TOKEN, SAMPLES_PER_TOKEN
from dina.audio.tokenizer import AudioCodes, AudioTokenizer
from dina.audio.vocoder import StreamingVocoder


class StreamingMelDecoder:
    """Feed (t, L) code chunks with `push`; each call returns the (M, F) mel frames that became final."""

    def __init__(self, model: AudioTokenizer, *, refine: bool | None = None, seed: int = 0) -> None:
        self.model = model
        self.refine = model.refines(refine)
        self.seed = seed
        self.window_tokens = model.config.decoder.max_frames // 4
        self._window: list[torch.Tensor] = []  # (D,) code embeddings of the current decoder window
        self._emitted = 0  # frames of the current window already returned

    def _take(self, final_frames: int) -> torch.Tensor:
        """Decode the window so far and return its frames in [emitted, final_frames)."""
        generator = torch.Generator().manual_seed(self.seed)
        mel = self.model.decode_window(torch.stack(self._window), self.refine, 0.0, generator)
        out = mel[:, self._emitted : final_frames]
        self._emitted = max(self._emitted, final_frames)
        return out

    @torch.no_grad()
    def push(self, codes_tL: torch.Tensor) -> torch.Tensor:
        """Append a chunk of codes; returns the newly final mel frames (possibly none)."""
        n_mels = self.model.config.mel.n_mels
        if codes_tL.ndim == 2 and codes_tL.shape[0] == 0:
            return torch.zeros(n_mels, 0)
        AudioCodes(codes=codes_tL, num_samples=SAMPLES_PER_TOKEN * codes_tL.shape[0]).check(
            self.model.config.codebook_sizes
        )
        outputs = []
        for emb_D in self.model.rvq.decode(codes_tL):  # token by token: a window may close inside a chunk
            if len(self._window) == self.window_tokens:
                outputs.append(self.flush())
            self._window.append(emb_D)
        outputs.append(self._take(max(0, MEL_PER_TOKEN * len(self._window) - LOOKAHEAD_MEL)))
        return torch.cat(outputs, dim=-1)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """End the current window (or the stream): returns its remaining frames and starts a new window."""
        if not self._window:
            return torch.zeros(self.model.config.mel.n_mels, 0)
        out = self._take(MEL_PER_TOKEN * len(self._window))
        self._window, self._emitted = [], 0
        return out


class StreamingWaveDecoder:
    """Codes in, 16 kHz samples out: `StreamingMelDecoder` then the vocoder's stream.

    `push` returns the (T,) samples that became final; `flush` ends the stream and returns the rest.
    """

    def __init__(self, model: AudioTokenizer, *, refine: bool | None = None, seed: int = 0) -> None:
        self.mel = StreamingMelDecoder(model, refine=refine, seed=seed)
        self.vocoder = StreamingVocoder(model.vocoder)

    @torch.no_grad()
    def push(self, codes_tL: torch.Tensor) -> torch.Tensor:
        return self.vocoder.push(self.mel.push(codes_tL))

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        last = self.vocoder.push(self.mel.flush())
        return torch.cat([last, self.vocoder.flush()])
