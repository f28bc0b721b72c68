"""`AudioTokenizer`: speech <-> 12.5 Hz residual codes (report Sec. 2.3, Fig. 6; release §7).

encode: any rate / channels -> 16 kHz mono -> padded to whole 80 ms tokens -> per 30 s window:
Whisper log-mel (its dynamic-range maximum per window, as Whisper processes 30 s windows) ->
encoder + pool-by-4 bridge -> residual VQ -> (T, L) ids.

decode: ids -> summed code embeddings -> causal mel decoder, per window of the decoder's
positions -> flow-matching mel refiner (`dina.audio.refiner`; optional) -> log-mel -> vocoder ->
16 kHz wave cut to the original length. The vocoder is the neural one (`dina.audio.vocoder`) or
the Griffin-Lim fallback (`dina.audio.griffin_lim`), as `config.wave_from_mel` says. Whether
decode runs the refiner by default is `config.refine_on_decode` (off in `tiny`, where it was
measured to lower fidelity; see `dina.audio.config.audio_tiny`).

Memory is bounded by one window on both sides: a wave of any length is never passed to the
model whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dina.audio.config import WAVE_FROM_MEL, AudioTokenizerConfig
from dina.audio.decoder import AudioDecoder
from dina.audio.encoder import SAMPLES_PER_TOKEN, AudioTokenEncoder, pad_to_tokens
from dina.audio.griffin_lim import mel_to_wave
from dina.audio.mel import LogMel
from dina.audio.refiner import MelRefiner
from dina.audio.vocoder import StreamingVocoder, Vocoder
from dina.errors import BadArgument, BadCodes
from dina.io.audio import mono_at
from dina.io.codes import load_codes_file, save_codes_file
from dina.quantize import ResidualVQ, check_level_ids
from dina.training.checkpoint import Pretrained

SAMPLE_RATE = 16_000


@dataclass(frozen=True, kw_only=True)
class AudioCodes:
    """One clip's codes: (T, L) int64 ids at 12.5 Hz and the clip's length in 16 kHz samples."""

    codes: torch.Tensor
    num_samples: int

    def check(self, codebook_sizes: tuple[int, ...]) -> None:
        """Refuse a wrong shape or level count, ids out of range, or a length the codes cannot cover."""
        c = self.codes
        if c.ndim != 2 or c.shape[1] != len(codebook_sizes):
            raise BadCodes(f"audio codes must be (T, {len(codebook_sizes)}), got {tuple(c.shape)}")
        if c.dtype.is_floating_point or c.dtype == torch.bool:
            raise BadCodes(f"audio codes must be integers, got {c.dtype}")
        if c.shape[0] == 0:
            raise BadCodes("audio codes are empty")
        check_level_ids(c, codebook_sizes)
        if not 0 < self.num_samples <= c.shape[0] * SAMPLES_PER_TOKEN:
            raise BadCodes(f"{c.shape[0]} tokens cannot hold {self.num_samples} samples")

    @property
    def seconds(self) -> float:
        return self.num_samples / SAMPLE_RATE

    def save(self, path: str | os.PathLike) -> None:
        save_audio_codes(path, [self])

    @classmethod
    def load(cls, path: str | os.PathLike) -> AudioCodes:
        clips = load_audio_codes(path)
        if len(clips) != 1:
            raise BadCodes(f"{path} holds {len(clips)} clips, expected one")
        return clips[0]


def save_audio_codes(path: str | os.PathLike, clips: list[AudioCodes]) -> None:
    """Several clips' codes in one file (`dina.io.codes`; clip lengths in the metadata), atomically."""
    save_codes_file(path, [c.codes for c in clips], {"num_samples": [c.num_samples for c in clips]})


def load_audio_codes(path: str | os.PathLike) -> list[AudioCodes]:
    """The clips of a file written by `save_audio_codes`; anything else is `BadCodes`."""
    codes, meta = load_codes_file(path, "audio", "num_samples")
    try:
        lengths = [int(n) for n in meta["num_samples"]]
    except (TypeError, ValueError) as e:
        raise BadCodes(f"{path} is not a dina audio codes file: {e}") from e
    return [AudioCodes(codes=c, num_samples=n) for c, n in zip(codes, lengths, strict=True)]


class AudioTokenizer(Pretrained, nn.Module):
    """Encoder + bridge + residual VQ (tokenizer), mel decoder + vocoder (de-tokenizer)."""

    config_class = AudioTokenizerConfig
    checkpoint_kind = "audio_tokenizer"

    def __init__(self, config: AudioTokenizerConfig) -> None:
        super().__init__()
        self.config = config
        self.front_end = LogMel(config.mel)
        self.encoder = AudioTokenEncoder(config.encoder)
        self.rvq = ResidualVQ(config.rvq)
        self.decoder = AudioDecoder(config.decoder)
        self.refiner = MelRefiner(config.refiner)
        self.vocoder = Vocoder(config.vocoder)

    # ---- tokenizer -------------------------------------------------------------------------
    def mel_windows(self, wave_T: torch.Tensor) -> list[torch.Tensor]:
        """A 16 kHz wave -> its log-mel, one (M, ≤ 8·window_tokens) tensor per encoder window."""
        padded = pad_to_tokens(wave_T)
        step = self.config.encoder.window_tokens * SAMPLES_PER_TOKEN
        return [self.front_end(padded[s : s + step])[0] for s in range(0, padded.shape[0], step)]

    @torch.no_grad()
    def encode(self, wave: np.ndarray | torch.Tensor, sr: int) -> AudioCodes:
        """A clip at any rate and channel count -> (ceil(T / 1280), L) codes at 12.5 Hz."""
        if isinstance(wave, torch.Tensor):
            wave = wave.detach().cpu().numpy()
        wave_T = torch.from_numpy(mono_at(wave, sr, SAMPLE_RATE).copy())
        tokens = [self.encoder(mel[None])[0] for mel in self.mel_windows(wave_T)]
        codes = self.rvq.encode(torch.cat(tokens))
        return AudioCodes(codes=codes, num_samples=int(wave_T.shape[0]))

    # ---- de-tokenizer ----------------------------------------------------------------------
    @torch.no_grad()
    def decode_mel(
        self, codes: AudioCodes, *, refine: bool | None = None, temperature: float = 1.0, seed: int = 0
    ) -> torch.Tensor:
        """Codes -> (M, 8T) log-mel: the mel decoder, then (if `refine`) the flow refiner, per
        window of the decoder's positions; sampling is seeded by `seed`."""
        codes.check(self.config.codebook_sizes)
        emb = self.rvq.decode(codes.codes)
        step = self.config.decoder.max_frames // 4
        generator = torch.Generator().manual_seed(seed)
        windows = [emb[s : s + step] for s in range(0, emb.shape[0], step)]
        refine = self.refines(refine)
        return torch.cat([self.decode_window(w, refine, temperature, generator) for w in windows], dim=-1)

    def refines(self, refine: bool | None) -> bool:
        """Whether decode runs the mel refiner: `refine`, or the config's `refine_on_decode` if None."""
        return self.config.refine_on_decode if refine is None else refine

    @torch.no_grad()
    def decode_window(
        self, emb_ND: torch.Tensor, refine: bool, temperature: float, generator: torch.Generator
    ) -> torch.Tensor:
        """One decoder window's (N, D) code embeddings -> (M, 8N) log-mel: decoder, then refiner."""
        mel = self.decoder(emb_ND[None])
        if refine:
            mel = self.refiner.refine(mel, emb_ND[None], temperature=temperature, generator=generator)
        return mel[0]

    @torch.no_grad()
    def mel_to_wave(self, mel_MF: torch.Tensor, wave_from_mel: str | None = None) -> torch.Tensor:
        """(M, F) log-mel -> (160 F,) wave by the neural vocoder, fed one decoder window at a time
        (`StreamingVocoder`, exact and memory-bounded), or by the Griffin-Lim fallback."""
        how = wave_from_mel or self.config.wave_from_mel
        if how == "griffin-lim":
            return mel_to_wave(mel_MF, self.config.mel, gl_iters=self.config.griffin_lim_iters)
        if how != "vocoder":
            raise BadArgument(f"wave_from_mel must be one of {', '.join(WAVE_FROM_MEL)}, got {how!r}")
        stream = StreamingVocoder(self.vocoder)
        step = self.config.decoder.max_frames * 2  # a decoder window's mel frames
        parts = [stream.push(mel_MF[:, s : s + step]) for s in range(0, mel_MF.shape[1], step)]
        return torch.cat([*parts, stream.flush()])

    @torch.no_grad()
    def decode(
        self,
        codes: AudioCodes,
        *,
        refine: bool | None = None,
        temperature: float = 1.0,
        seed: int = 0,
        wave_from_mel: str | None = None,
    ) -> tuple[np.ndarray, int]:
        """Codes -> (float32 wave of the clip's original length, 16000)."""
        mel = self.decode_mel(codes, refine=refine, temperature=temperature, seed=seed)
        wave = self.mel_to_wave(mel, wave_from_mel)
        return wave[: codes.num_samples].numpy().astype(np.float32), SAMPLE_RATE
