"""The audio decoder: 12.5 Hz code embeddings -> coarse log-mel at 100 Hz (report Sec. 2.3, Fig. 6).

Layout after `longcat-next-release.md` §7 (OmniAudioDecoder), symmetric to the encoder:
- `proj`: Linear(token width 4D' -> D) on the summed code embeddings (release `proj_decoder`);
- `up1`: ConvTranspose1d(D, D, kernel 8, stride 4), right-trimmed so that output frame t
  depends on tokens ≤ t // 4 only (causal): 12.5 Hz -> 50 Hz; then GroupNorm(1 group) applied
  to each frame alone (departure: over (channels, time) jointly, as a plain GroupNorm on the
  sequence would, late frames would change early ones and break streaming);
- fixed sinusoidal positions, then causal pre-LayerNorm transformer blocks and a LayerNorm;
- `up2`: ConvTranspose1d(D, M, kernel 4, stride 2), right-trimmed (causal): 50 Hz -> 100 Hz
  mel frames, M bins;
- `post_net` (release MelSpecRefineNet): 4 × (Conv1d kernel 5 - GroupNorm - Mish) plus a
  residual, its GroupNorms also per frame; its symmetric kernels are the decoder's only look-ahead: 4 · 2 = 8 mel frames
  (`LOOKAHEAD_MEL`), one 12.5 Hz token.

Departure (ours): the release decodes to 80-bin mels at 50 Hz for its 24 kHz HiFT vocoder; we
decode to the tokenizer's own input features (Whisper log-mel, 100 Hz, 16 kHz audio), so the
mel reconstruction loss needs no second front end and the judge hears 16 kHz speech.

Everything before `post_net` is causal (tested), so decoding chunk by chunk and holding back
`LOOKAHEAD_MEL` frames for `post_net` reproduces the offline output.

Shapes: B batch, N tokens (12.5 Hz), F frames (50 Hz), L mel frames (100 Hz), D width, M mel bins.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dina.audio.encoder import sinusoids
from dina.config_io import ConfigBase
from dina.errors import BadArgument, BadConfig
from dina.layers.norm import FrameGroupNorm

POST_NET_KERNEL = 5
POST_NET_LAYERS = 4
LOOKAHEAD_MEL = POST_NET_LAYERS * (POST_NET_KERNEL // 2)  # 8 mel frames = one token


@dataclass(frozen=True, kw_only=True)
class AudioDecoderConfig(ConfigBase):
    """Decoder sizes; `audio_decoder_tiny()` and `audio_decoder_longcat_next()` below."""

    token_dim: int = 5120  # width of a code embedding (the RVQ's dim)
    dim: int = 1280
    depth: int = 8
    heads: int = 20
    mlp_dim: int = 5120
    n_mels: int = 128
    post_net_dim: int = 512
    max_frames: int = 1500  # positions at 50 Hz: one 30 s window
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.heads < 1 or self.dim % self.heads:
            raise BadConfig(f"audio decoder dim {self.dim} must split into {self.heads} heads")
        if min(self.token_dim, self.depth, self.mlp_dim, self.n_mels, self.post_net_dim, self.max_frames) < 1:
            raise BadConfig(f"audio decoder sizes must be positive: {self}")


def audio_decoder_tiny() -> AudioDecoderConfig:
    """Mirrors `audio_encoder_tiny`: tokens of 512, width 128, 4 causal blocks, 80 mel bins."""
    return AudioDecoderConfig(token_dim=512, dim=128, depth=4, heads=4, mlp_dim=512, n_mels=80, post_net_dim=128)


def audio_decoder_longcat_next() -> AudioDecoderConfig:
    """Release widths (§7: 8 causal blocks inferred) on the encoder's 5120-wide tokens, 128 mel bins (ours)."""
    return AudioDecoderConfig()


def _causal_upsample(conv: nn.ConvTranspose1d, x_BCF: torch.Tensor) -> torch.Tensor:
    """Transposed convolution keeping the first stride · F outputs: with kernel = 2 · stride each
    output reads only its own input frame and the one before it."""
    stride = conv.stride[0]
    return conv(x_BCF)[..., : stride * x_BCF.shape[-1]]


class DecoderBlock(nn.Module):
    """Pre-LayerNorm block with causal self-attention."""

    def __init__(self, cfg: AudioDecoderConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.attn_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.dim)
        self.mlp_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.fc1 = nn.Linear(cfg.dim, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.dim)

    def forward(self, x_BFD: torch.Tensor) -> torch.Tensor:
        B, Fr, D = x_BFD.shape
        q, k, v = self.qkv(self.attn_norm(x_BFD)).reshape(B, Fr, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x_BFD = x_BFD + self.out(a.transpose(1, 2).reshape(B, Fr, D))
        return x_BFD + self.fc2(F.gelu(self.fc1(self.mlp_norm(x_BFD))))


class PostNet(nn.Module):
    """Residual mel refinement: x + convs(x), convs = 4 × (Conv1d k5 - GroupNorm - Mish), the last linear."""

    def __init__(self, cfg: AudioDecoderConfig) -> None:
        super().__init__()
        widths = [cfg.n_mels] + [cfg.post_net_dim] * (POST_NET_LAYERS - 1) + [cfg.n_mels]
        pad = POST_NET_KERNEL // 2
        self.convs = nn.ModuleList(nn.Conv1d(a, b, POST_NET_KERNEL, padding=pad) for a, b in itertools.pairwise(widths))
        self.norms = nn.ModuleList(FrameGroupNorm(1, w) for w in widths[1:-1])

    def forward(self, mel_BML: torch.Tensor) -> torch.Tensor:
        h = mel_BML
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.norms):
                h = F.mish(self.norms[i](h))
        return mel_BML + h


class AudioDecoder(nn.Module):
    """(B, N, token_dim) summed code embeddings -> (B, M, 8N) log-mel (coarse: the flow refiner sharpens it)."""

    positions_FD: torch.Tensor

    def __init__(self, cfg: AudioDecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.token_dim, cfg.dim)
        self.up1 = nn.ConvTranspose1d(cfg.dim, cfg.dim, kernel_size=8, stride=4)
        self.up1_norm = FrameGroupNorm(1, cfg.dim)
        self.register_buffer("positions_FD", sinusoids(cfg.max_frames, cfg.dim), persistent=False)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.up2 = nn.ConvTranspose1d(cfg.dim, cfg.n_mels, kernel_size=4, stride=2)
        self.post_net = PostNet(cfg)

    def hidden(self, emb_BNC: torch.Tensor, start_frame: int = 0) -> torch.Tensor:
        """The causal part: (B, N, C) -> (B, M, 8N) mel before `post_net`. `start_frame`: the
        50 Hz position of the first token's first frame (streaming windows)."""
        cfg = self.cfg
        if emb_BNC.ndim != 3 or emb_BNC.shape[-1] != cfg.token_dim or emb_BNC.shape[1] == 0:
            raise BadArgument(
                f"audio decoder expects (B, N >= 1, {cfg.token_dim}) embeddings, got {tuple(emb_BNC.shape)}"
            )
        frames = 4 * emb_BNC.shape[1]
        if start_frame + frames > cfg.max_frames:
            raise BadArgument(
                f"{emb_BNC.shape[1]} tokens from frame {start_frame} exceed the decoder's {cfg.max_frames} "
                "positions: decode in windows"
            )
        x = self.up1_norm(_causal_upsample(self.up1, self.proj(emb_BNC).transpose(1, 2)))
        x = x.transpose(1, 2) + self.positions_FD[start_frame : start_frame + frames]
        for block in self.blocks:
            x = block(x)
        return _causal_upsample(self.up2, self.norm(x).transpose(1, 2))

    def forward(self, emb_BNC: torch.Tensor) -> torch.Tensor:
        return self.post_net(self.hidden(emb_BNC))
