"""The audio encoder: log-mel (100 Hz) -> Whisper-style transformer (50 Hz) -> pool-by-4 bridge (12.5 Hz).

Report Sec. 2.3 (Fig. 6) and `longcat-next-release.md` §7:
- `AudioEncoder` (release `audio_model`): conv1 (k 3, pad 1) + GELU, conv2 (k 3, stride 2,
  pad 1) + GELU, plus fixed sinusoidal positions, pre-LayerNorm transformer blocks
  (bidirectional attention, k projection without bias, GELU MLP), a final LayerNorm. L mel
  frames give (L - 1) // 2 + 1 frames at 50 Hz. The layout is Whisper's (Radford et al. 2022),
  so Whisper weights can start it (`dina.weights.whisper`).
- `PoolBridge` (release `OmniAudioVQBridgeTokenizer`): gate and up = Conv1d(D -> 4D, kernel =
  stride = 4, no bias); the four input frames regrouped into one 4D vector x;
  out = LayerNorm(down(silu(gate) * up) + x): 12.5 Hz tokens of width 4D, the RVQ's input.

Framing (ours, the release pads to 30 s instead): `pad_to_tokens` pads a wave at the end with
zeros to a whole number of 80 ms tokens (1,280 samples), so that any non-empty wave of T samples
gives exactly ceil(T / 1280) tokens: 8n mel frames -> 4n encoder frames -> n tokens. Long
audio is encoded in windows of `window_tokens` tokens (30 s, Whisper's position range), each
encoded alone (`AudioTokenizer.mel_windows`), so memory is bounded by one window.

Shapes: B batch, M mel bins, L mel frames (100 Hz), F encoder frames (50 Hz), N tokens (12.5 Hz),
D encoder width, H heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dina.audio.whisper_frontend import WHISPER_TINY_DIM, WHISPER_TINY_EN, WHISPER_TINY_MELS, FrozenWhisperEncoder
from dina.config_io import ConfigBase
from dina.errors import BadArgument, BadConfig

SAMPLES_PER_TOKEN = 1280  # 80 ms at 16 kHz: 8 mel hops of 160 samples
MEL_PER_TOKEN = 8
ENCODER_FRAMES_PER_TOKEN = 4
FRONT_ENDS = ("trained", WHISPER_TINY_EN)


@dataclass(frozen=True, kw_only=True)
class AudioEncoderConfig(ConfigBase):
    """Encoder and bridge sizes; `audio_encoder_tiny()` and `audio_encoder_longcat_next()` below."""

    n_mels: int = 128
    dim: int = 1280
    depth: int = 32
    heads: int = 20
    mlp_dim: int = 5120
    max_frames: int = 1500  # sinusoidal positions at 50 Hz: 30 s windows
    pool: int = 4
    norm_eps: float = 1e-5
    # "trained": `AudioEncoder` (trained by dina, or started from Whisper weights); "whisper-tiny.en":
    # the frozen pretrained encoder of `dina.audio.whisper_frontend` (its shapes must be Whisper tiny's)
    front_end: str = "trained"

    def __post_init__(self) -> None:
        if self.front_end not in FRONT_ENDS:
            raise BadConfig(f"audio front_end must be one of {', '.join(FRONT_ENDS)}, got {self.front_end!r}")
        if self.front_end == WHISPER_TINY_EN and (self.n_mels, self.dim) != (WHISPER_TINY_MELS, WHISPER_TINY_DIM):
            raise BadConfig(
                f"the {WHISPER_TINY_EN} front end has {WHISPER_TINY_MELS} mel bins and width {WHISPER_TINY_DIM}"
            )
        if self.heads < 1 or self.dim % self.heads or (self.dim // self.heads) % 2:
            raise BadConfig(f"audio encoder dim {self.dim} must split into {self.heads} heads of even width")
        if min(self.n_mels, self.depth, self.mlp_dim, self.max_frames, self.pool) < 1:
            raise BadConfig(f"audio encoder sizes must be positive: {self}")
        if self.pool != ENCODER_FRAMES_PER_TOKEN:
            raise BadConfig(f"the bridge pools by {ENCODER_FRAMES_PER_TOKEN} (50 Hz -> 12.5 Hz), got pool={self.pool}")
        if self.max_frames % ENCODER_FRAMES_PER_TOKEN:
            raise BadConfig(f"max_frames must be a multiple of {ENCODER_FRAMES_PER_TOKEN}, got {self.max_frames}")

    @property
    def token_dim(self) -> int:
        """Width of a 12.5 Hz token (the bridge's output): pool · dim."""
        return self.pool * self.dim

    @property
    def window_tokens(self) -> int:
        """Tokens per encoder window (375 for 1,500 frames = 30 s)."""
        return self.max_frames // ENCODER_FRAMES_PER_TOKEN


def audio_encoder_tiny() -> AudioEncoderConfig:
    """~1.7M parameters (1.0M of them in the bridge): trains on a 2-core CPU."""
    return AudioEncoderConfig(n_mels=80, dim=128, depth=4, heads=4, mlp_dim=512)


def audio_encoder_whisper_tiny() -> AudioEncoderConfig:
    """The frozen Whisper tiny.en front end (`dina.audio.whisper_frontend`); tokens of 4 · 384.
    Windows of 10 s (500 frames at 50 Hz), not 30: attention over 1,500 frames makes CTranslate2
    encode at 48× real time on this CPU's two threads, 500 frames at 114× (ours, measured)."""
    return AudioEncoderConfig(
        n_mels=80, dim=384, depth=4, heads=6, mlp_dim=1536, max_frames=500, front_end=WHISPER_TINY_EN
    )


def audio_encoder_longcat_next() -> AudioEncoderConfig:
    """Release shapes (§7): Whisper-large-sized, 32 blocks of 1280, 128 mel bins; tokens of 5120."""
    return AudioEncoderConfig()


def pad_to_tokens(wave_T: torch.Tensor) -> torch.Tensor:
    """Zero-pad a 16 kHz wave at the end to a whole number of 80 ms tokens (at least one)."""
    if wave_T.ndim != 1:
        raise BadArgument(f"pad_to_tokens expects a 1-D wave, got shape {tuple(wave_T.shape)}")
    n = max(1, math.ceil(wave_T.shape[0] / SAMPLES_PER_TOKEN))
    return F.pad(wave_T, (0, n * SAMPLES_PER_TOKEN - wave_T.shape[0]))


def encoder_frames(mel_frames: int) -> int:
    """50 Hz frames after the stride-2 convolution: (L - 1) // 2 + 1."""
    return (mel_frames - 1) // 2 + 1


def sinusoids(length: int, channels: int, max_timescale: float = 10_000.0) -> torch.Tensor:
    """(length, channels) fixed positions: sines in the first half, cosines in the second, with
    timescales spaced geometrically from 1 to `max_timescale` (Whisper's layout)."""
    half = channels // 2
    inv = torch.exp(-math.log(max_timescale) / (half - 1) * torch.arange(half, dtype=torch.float64))
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


class EncoderBlock(nn.Module):
    """Pre-LayerNorm block: x + Attn(LN(x)), then x + MLP(LN(x)) (GELU)."""

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.attn_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.q = nn.Linear(cfg.dim, cfg.dim)
        self.k = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.v = nn.Linear(cfg.dim, cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.dim)
        self.mlp_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.fc1 = nn.Linear(cfg.dim, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.dim)

    def forward(self, x_BFD: torch.Tensor, keep_BF: torch.Tensor | None = None) -> torch.Tensor:
        """`keep_BF`: True at real frames; padded frames are never attended to."""
        B, Fr, D = x_BFD.shape
        h = self.attn_norm(x_BFD)
        q, k, v = (p(h).reshape(B, Fr, self.heads, D // self.heads).transpose(1, 2) for p in (self.q, self.k, self.v))
        mask = None if keep_BF is None else keep_BF[:, None, None, :]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x_BFD = x_BFD + self.out(a.transpose(1, 2).reshape(B, Fr, D))
        return x_BFD + self.fc2(F.gelu(self.fc1(self.mlp_norm(x_BFD))))


class AudioEncoder(nn.Module):
    """(B, M, L) log-mel -> (B, F, D) 50 Hz features."""

    positions_FD: torch.Tensor

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(cfg.dim, cfg.dim, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions_FD", sinusoids(cfg.max_frames, cfg.dim), persistent=False)
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)

    def forward(self, mel_BML: torch.Tensor, mel_lengths_B: torch.Tensor | None = None) -> torch.Tensor:
        """`mel_lengths_B`: real mel frames per row (None: all); frames past them are masked out."""
        cfg = self.cfg
        if mel_BML.ndim != 3 or mel_BML.shape[1] != cfg.n_mels:
            raise BadArgument(f"audio encoder expects (B, {cfg.n_mels}, L) log-mel, got {tuple(mel_BML.shape)}")
        frames = encoder_frames(mel_BML.shape[2])
        if frames > cfg.max_frames:
            raise BadArgument(
                f"{mel_BML.shape[2]} mel frames give {frames} encoder frames, more than the {cfg.max_frames} "
                "positions of one window: encode long audio window by window (AudioTokenizer.encode does)"
            )
        real_B1L = None
        if mel_lengths_B is not None:  # padding reads as zeros to the convolutions, as past a row's end
            real_B1L = (torch.arange(mel_BML.shape[2], device=mel_BML.device) < mel_lengths_B[:, None])[:, None, :]
            mel_BML = mel_BML * real_B1L
        x = F.gelu(self.conv1(mel_BML))
        if real_B1L is not None:
            x = x * real_B1L
        x_BFD = F.gelu(self.conv2(x)).transpose(1, 2) + self.positions_FD[:frames]
        keep = None
        if mel_lengths_B is not None:
            keep = torch.arange(frames, device=x_BFD.device) < ((mel_lengths_B - 1) // 2 + 1)[:, None]
        for block in self.blocks:
            x_BFD = block(x_BFD, keep)
        return self.norm(x_BFD)


class PoolBridge(nn.Module):
    """(B, F, D) 50 Hz -> (B, F/4, 4D) 12.5 Hz: LayerNorm(down(silu(gate) · up) + regrouped x)."""

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        self.pool = cfg.pool
        width = cfg.token_dim
        self.gate = nn.Conv1d(cfg.dim, width, kernel_size=cfg.pool, stride=cfg.pool, bias=False)
        self.up = nn.Conv1d(cfg.dim, width, kernel_size=cfg.pool, stride=cfg.pool, bias=False)
        self.down = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width, eps=cfg.norm_eps)

    def forward(self, x_BFD: torch.Tensor) -> torch.Tensor:
        B, Fr, D = x_BFD.shape
        n = Fr // self.pool  # trailing frames short of a token are dropped (`pad_to_tokens` avoids them)
        x_BFD = x_BFD[:, : n * self.pool]
        x_BDF = x_BFD.transpose(1, 2)
        gated_BNW = (F.silu(self.gate(x_BDF)) * self.up(x_BDF)).transpose(1, 2)
        return self.norm(self.down(gated_BNW) + x_BFD.reshape(B, n, self.pool * D))


class AudioTokenEncoder(nn.Module):
    """Log-mel -> 12.5 Hz continuous tokens (the RVQ's input): `AudioEncoder` then `PoolBridge`."""

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder: nn.Module = AudioEncoder(cfg) if cfg.front_end == "trained" else FrozenWhisperEncoder()
        self.bridge = PoolBridge(cfg)

    def forward(self, mel_BML: torch.Tensor, mel_lengths_B: torch.Tensor | None = None) -> torch.Tensor:
        """(B, M, L) with L a multiple of 8 -> (B, L/8, 4D)."""
        if mel_BML.shape[-1] % MEL_PER_TOKEN:
            raise BadArgument(f"mel frames must be a multiple of {MEL_PER_TOKEN} (pad the wave with pad_to_tokens)")
        return self.bridge(self.encoder(mel_BML, mel_lengths_B))
