"""The audio tokenizer's configuration, nesting every component's (report Sec. 2.3, release §7).

`audio_tiny()` trains on this CPU; `audio_longcat_next()` has the release's shapes: 128 mel
bins, a 32 × 1280 Whisper-sized encoder, tokens of 4 · 1280 = 5120 quantized by 8 levels of
8192, 4096, 2048, 1024, 1024, 1024, 1024, 1024 codes at 12.5 Hz, an 8-block causal decoder;
the mel refiner's width (256, 10 Euler steps) is ours: the release's estimator is a U-Net.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from dina.audio.decoder import AudioDecoderConfig, audio_decoder_longcat_next, audio_decoder_tiny
from dina.audio.encoder import (
    FRONT_ENDS,
    SAMPLES_PER_TOKEN,
    AudioEncoderConfig,
    audio_encoder_longcat_next,
    audio_encoder_tiny,
    audio_encoder_whisper_tiny,
)
from dina.audio.mel import MelConfig
from dina.audio.refiner import MelRefinerConfig
from dina.audio.vocoder import VocoderConfig, vocoder_longcat_next, vocoder_tiny
from dina.config_io import ConfigBase, _check
from dina.errors import BadConfig
from dina.quantize import RVQConfig

WAVE_FROM_MEL = ("vocoder", "griffin-lim")
RELEASE_CODEBOOK_SIZES = (8192, 4096, 2048, 1024, 1024, 1024, 1024, 1024)


@dataclass(frozen=True, kw_only=True)
class AudioTokenizerConfig(ConfigBase):
    """Front end, encoder + bridge, residual quantizer, mel decoder and flow refiner; the fields must agree."""

    mel: MelConfig = field(default_factory=MelConfig)
    encoder: AudioEncoderConfig = field(default_factory=audio_encoder_longcat_next)
    rvq: RVQConfig = field(default_factory=lambda: RVQConfig(dim=5120, codebook_sizes=RELEASE_CODEBOOK_SIZES))
    decoder: AudioDecoderConfig = field(default_factory=audio_decoder_longcat_next)
    refiner: MelRefinerConfig = field(
        default_factory=lambda: MelRefinerConfig(n_mels=128, cond_dim=5120, channels=256, groups=32, steps=10)
    )
    vocoder: VocoderConfig = field(default_factory=vocoder_longcat_next)
    refine_on_decode: bool = True  # decode runs the flow mel refiner unless told otherwise
    wave_from_mel: str = "vocoder"  # "vocoder" (the neural one) or "griffin-lim" (`dina.audio.griffin_lim`)
    griffin_lim_iters: int = 60  # the fallback's iterations

    def __post_init__(self) -> None:
        m, e, d = self.mel, self.encoder, self.decoder
        _check((m.sample_rate, m.hop_length) == (16_000, 160), "the audio front end must be 16 kHz with a 160 hop")
        _check(
            m.n_mels == e.n_mels == d.n_mels,
            f"mel bins differ: front end {m.n_mels}, encoder {e.n_mels}, decoder {d.n_mels}",
        )
        _check(
            self.rvq.dim == e.token_dim == d.token_dim,
            f"token widths differ: encoder {e.token_dim}, rvq {self.rvq.dim}, decoder {d.token_dim}",
        )
        r = self.refiner
        _check(
            (r.n_mels, r.cond_dim) == (m.n_mels, self.rvq.dim), "the mel refiner must match the mel bins and code width"
        )
        _check(
            self.vocoder.n_mels == m.n_mels,
            f"the vocoder reads {self.vocoder.n_mels} mel bins, the front end makes {m.n_mels}",
        )
        _check(self.wave_from_mel in WAVE_FROM_MEL, f"wave_from_mel must be one of {', '.join(WAVE_FROM_MEL)}")
        _check(self.griffin_lim_iters >= 0, "griffin_lim_iters must be >= 0")

    @property
    def frame_rate(self) -> float:
        """Tokens per second: 16 kHz / 1,280 samples per token = 12.5."""
        return self.mel.sample_rate / SAMPLES_PER_TOKEN

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return self.rvq.codebook_sizes

    @property
    def levels(self) -> int:
        return self.rvq.levels


TINY_FRONT_END = "whisper-tiny.en"  # measured better than "trained" (README, audio tokenizer figures)


def audio_tiny(front_end: str = TINY_FRONT_END) -> AudioTokenizerConfig:
    """80 mel bins, 8 levels of 512, 256, 256, 128 × 5 codes; the encoder is dina's own 128 × 4
    ("trained", tokens of 512) or the frozen Whisper tiny.en ("whisper-tiny.en", tokens of 1536)."""
    encoder = audio_encoder_tiny() if front_end == "trained" else audio_encoder_whisper_tiny()
    if encoder.front_end != front_end:
        raise BadConfig(f"audio front end must be one of {', '.join(FRONT_ENDS)}, got {front_end!r}")
    return AudioTokenizerConfig(
        mel=MelConfig(n_mels=80),
        encoder=encoder,
        rvq=RVQConfig(
            dim=encoder.token_dim,
            codebook_sizes=(512, 256, 256, 128, 128, 128, 128, 128),
            dead_threshold=0.5,
            kmeans_init=True,
        ),
        decoder=dataclasses.replace(audio_decoder_tiny(), token_dim=encoder.token_dim),
        refiner=MelRefinerConfig(n_mels=80, cond_dim=encoder.token_dim),
        # measured: the tiny refiner (300 steps) raises the held-out mel L1 0.094 -> 0.108 (temperature 1)
        # or 0.100 (temperature 0) and the judge's WER gap 3.0 -> 4.7 points; decode skips it by default
        refine_on_decode=False,
        vocoder=vocoder_tiny(),
    )


def audio_longcat_next() -> AudioTokenizerConfig:
    """The release's shapes (§7)."""
    return AudioTokenizerConfig()
