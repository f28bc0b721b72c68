"""The neural vocoder: Whisper log-mel -> 16 kHz waveform (report Sec. 2.3 "vocoder [52]", Fig. 6).

The report ends the audio de-tokenizer with a vocoder that turns the refined mel into a wave.
Ours follows Vocos (Siuzdak 2023, "Vocos: Closing the gap between time-domain and
Fourier-based neural vocoders"), written from its paper: the network never upsamples in time;
it predicts one complex STFT frame per mel frame and an inverse STFT makes the samples.

- `embed`: Conv1d(M -> D, kernel 7), then LayerNorm;
- `depth` ConvNeXt blocks: depthwise Conv1d(kernel 7) -> LayerNorm -> Linear(D -> rD) -> GELU
  -> Linear(rD -> D), scaled by a per-channel layer scale (starts at 1/depth), plus the input;
- LayerNorm, then a Linear head to 2K numbers per frame (K = n_fft/2 + 1 bins): a log-magnitude
  (magnitude = exp, capped at 100) and a phase p, spectrum = magnitude · (cos p + i sin p);
- inverse STFT by overlap-add: each frame's inverse rFFT (orthonormal scaling) times a periodic
  Hann window, overlap-added at hop 160, divided by the overlap-added squared window. Synthesis
  frame f covers samples [160 f - P, 160 f - P + n_fft), P = (n_fft - 160) / 2 (Vocos's "same"
  padding), and the wave is cut to samples [0, 160 F): 160 samples per mel frame, as the front
  end (`dina.audio.mel`) takes 160 samples per frame.

Departures:
- The release vocodes with CosyVoice2's HiFT (a HiFi-GAN with an F0 source and an iSTFT head,
  80 mels at 50 Hz, 24 kHz); we vocode the tokenizer's own 100 Hz Whisper log-mel at 16 kHz with
  the simpler Vocos design (no F0 predictor, no time-domain upsampling).
- No adversarial training: Vocos trains with multi-period and multi-resolution discriminators,
  too slow on this CPU. `vocoder_loss` is reconstruction only: a multi-resolution STFT loss
  (spectral convergence + log magnitude at FFT sizes 256/512/1024) plus an L1 between the
  log-mel of the output and the input log-mel. The phase is then constrained only through those
  magnitudes (at several resolutions), not by a discriminator's judgement of the waveform.
- Causal with a bounded look-ahead, for streaming: Vocos's convolutions are centered. Here only
  `embed` looks ahead (`lookahead` frames, padded left by kernel - 1 - lookahead); every block's
  depthwise conv is causal. So network frame f reads mel frames [f - `left_context`, f +
  `lookahead`], and output sample t depends on mel frames < (t + P) // 160 + 1 + lookahead only.
  `StreamingVocoder` uses this to emit exactly the offline samples chunk by chunk; after N mel
  frames (160 N samples' worth) it has emitted 160 (N - lookahead) - P samples, a latency of
  lookahead · 160 + P samples (560 = 35 ms at the defaults).
- Sizes: Vocos is 13.5 M parameters (D = 512, 8 blocks, 100 mels, 24 kHz, n_fft 1024, hop 256);
  `vocoder_longcat_next` keeps D = 512 and 8 blocks on 128 mels at 16 kHz with n_fft 640, hop 160;
  `vocoder_tiny` (D = 128, 4 blocks, 80 mels) is 0.56 M parameters and trains on one CPU
  thread in minutes.

Shapes: B batch, M mel bins, F mel (= STFT) frames, D width, K = n_fft/2 + 1 bins,
N = n_fft samples per synthesis frame, T samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dina.audio.mel import LogMel
from dina.config_io import ConfigBase, _check
from dina.errors import BadArgument

HOP = 160  # samples per mel frame: the front end's hop at 16 kHz
MAX_LOG_MAGNITUDE = math.log(1e2)  # Vocos caps the predicted magnitude at 100
LOG_MAGNITUDE_START = -5.0  # head bias: a quiet noise floor (speech frames average about -6)
STFT_LOSS_SIZES = (256, 512, 1024)  # FFT sizes of the multi-resolution STFT loss (hop = size / 4)
MEL_LOSS_WEIGHT = 2.0  # weight of the log-mel L1 beside the two STFT terms (each ~1 early on)


@dataclass(frozen=True, kw_only=True)
class VocoderConfig(ConfigBase):
    """Vocoder sizes; `vocoder_tiny()` and `vocoder_longcat_next()` below. The hop is fixed at 160."""

    n_mels: int = 80
    dim: int = 128
    depth: int = 4
    mlp_ratio: int = 3  # block MLP width = mlp_ratio · dim
    kernel: int = 7
    n_fft: int = 640  # inverse STFT size: a multiple of the hop, at least two hops
    lookahead: int = 2  # mel frames of look-ahead, all in `embed`
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        _check(
            min(self.n_mels, self.dim, self.depth, self.mlp_ratio, self.kernel) > 0, "vocoder sizes must be positive"
        )
        _check(
            self.n_fft % HOP == 0 and self.n_fft >= 2 * HOP,
            f"vocoder n_fft must be a multiple of the hop {HOP} and at least {2 * HOP}, got {self.n_fft}",
        )
        _check(
            0 <= self.lookahead < self.kernel,
            f"vocoder lookahead must be in [0, kernel - 1 = {self.kernel - 1}], got {self.lookahead}",
        )
        _check(self.norm_eps > 0, "vocoder norm_eps must be positive")

    @property
    def hop(self) -> int:
        return HOP

    @property
    def bins(self) -> int:
        """K: rFFT bins per synthesis frame."""
        return self.n_fft // 2 + 1

    @property
    def frame_offset(self) -> int:
        """P: synthesis frame f starts at sample 160 f - P, so it is centered on [160 f, 160 f + 160)."""
        return (self.n_fft - HOP) // 2

    @property
    def left_context(self) -> int:
        """Mel frames of history a network frame reads: embed's left reach plus each block's kernel - 1."""
        return (self.kernel - 1 - self.lookahead) + self.depth * (self.kernel - 1)


def vocoder_tiny() -> VocoderConfig:
    """80 mels, width 128, 4 blocks: 0.56 M parameters, ~380x real time on one CPU thread; the best
    of the sizes we tried (up to 192 wide, 6 blocks) after 4 minutes of training on one thread."""
    return VocoderConfig(n_mels=80, dim=128, depth=4, mlp_ratio=3, n_fft=640, lookahead=2)


def vocoder_longcat_next() -> VocoderConfig:
    """Vocos's width and depth (512, 8 blocks, MLP 1536) on the release's 128 mel bins."""
    return VocoderConfig(n_mels=128, dim=512, depth=8, mlp_ratio=3)


class LookaheadConv1d(nn.Conv1d):
    """Conv1d padded left by kernel - 1 - lookahead and right by lookahead: frame f reads
    frames [f - kernel + 1 + lookahead, f + lookahead] (lookahead 0: causal)."""

    def __init__(
        self, channels_in: int, channels_out: int, kernel: int, *, lookahead: int = 0, groups: int = 1
    ) -> None:
        super().__init__(channels_in, channels_out, kernel, groups=groups)
        self.lookahead = lookahead

    def forward(self, x_BCF: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x_BCF, (self.kernel_size[0] - 1 - self.lookahead, self.lookahead)))


class ConvNeXtBlock(nn.Module):
    """x + γ · MLP(LayerNorm(causal depthwise conv(x))), on (B, D, F)."""

    def __init__(self, cfg: VocoderConfig) -> None:
        super().__init__()
        self.dwconv = LookaheadConv1d(cfg.dim, cfg.dim, cfg.kernel, groups=cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.fc1 = nn.Linear(cfg.dim, cfg.mlp_ratio * cfg.dim)
        self.fc2 = nn.Linear(cfg.mlp_ratio * cfg.dim, cfg.dim)
        self.gamma_D = nn.Parameter(torch.full((cfg.dim,), 1.0 / cfg.depth))

    def forward(self, x_BDF: torch.Tensor) -> torch.Tensor:
        h_BFD = self.norm(self.dwconv(x_BDF).transpose(1, 2))
        h_BFD = self.gamma_D * self.fc2(F.gelu(self.fc1(h_BFD)))
        return x_BDF + h_BFD.transpose(1, 2)


def overlap_add(frames_BFN: torch.Tensor, window_N: torch.Tensor, hop: int, start: int, stop: int) -> torch.Tensor:
    """Windowed frames (B, F, N) -> samples [start, stop) of their normalized overlap-add, (B, stop - start).

    Sample positions count from the first frame's first sample; frame f starts at f · hop.
    Each sample is Σ_f w · y_f / Σ_f w² over the frames present, summed in a fixed order (one
    shifted slice at a time), so any run of frames that covers a sample gives it the same value.
    The range must lie where some frame's window is non-zero.
    """
    _, Fr, N = frames_BFN.shape
    R = N // hop  # frames overlapping each sample

    def add_shifted(x_BFN: torch.Tensor) -> torch.Tensor:
        parts_BFRH = x_BFN.reshape(x_BFN.shape[0], Fr, R, hop)
        total_BGH = F.pad(parts_BFRH[:, :, 0], (0, 0, 0, R - 1))  # G = F + R - 1 hops
        for r in range(1, R):  # hop r of frame f lands in hop f + r
            total_BGH = total_BGH + F.pad(parts_BFRH[:, :, r], (0, 0, r, R - 1 - r))
        return total_BGH.reshape(x_BFN.shape[0], (Fr + R - 1) * hop)[:, start:stop]

    envelope_1T = add_shifted(window_N.square().expand(1, Fr, N))
    return add_shifted(frames_BFN) / envelope_1T


class Vocoder(nn.Module):
    """(B, M, F) Whisper-scaled log-mel -> (B, 160 F) float32 wave at 16 kHz."""

    window_N: torch.Tensor

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.embed = LookaheadConv1d(cfg.n_mels, cfg.dim, cfg.kernel, lookahead=cfg.lookahead)
        self.embed_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.blocks = nn.ModuleList(ConvNeXtBlock(cfg) for _ in range(cfg.depth))
        self.out_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, 2 * cfg.bins)
        window = torch.hann_window(cfg.n_fft, periodic=True, dtype=torch.float32)
        self.register_buffer("window_N", window, persistent=False)  # derived from the config
        self.init_weights()

    def init_weights(self) -> None:
        """Convolutions and linears: truncated normal, std 0.02, zero bias (as Vocos); LayerNorms:
        unit gain, zero bias; layer scales γ: 1/depth (set in `ConvNeXtBlock`). Ours: the head's
        log-magnitude biases start at `LOG_MAGNITUDE_START` rather than 0 (a magnitude of 1 is a
        loud noise), which saves the first few hundred steps of a short run."""
        for module in self.modules():
            if isinstance(module, nn.Conv1d | nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.head.bias[: self.config.bins] = LOG_MAGNITUDE_START

    @property
    def left_context(self) -> int:
        """Mel frames of history that network frame f reads (it reads [f - left_context, f + lookahead])."""
        return self.config.left_context

    def spectrum(self, mel_BMF: torch.Tensor) -> torch.Tensor:
        """The network: (B, M, F) log-mel -> (B, F, K) complex STFT frames."""
        cfg = self.config
        if mel_BMF.ndim != 3 or mel_BMF.shape[1] != cfg.n_mels or mel_BMF.shape[2] == 0:
            raise BadArgument(f"vocoder expects a (B, {cfg.n_mels}, F >= 1) log-mel, got {tuple(mel_BMF.shape)}")
        x_BDF = self.embed(mel_BMF.to(self.head.weight.dtype))
        x_BDF = self.embed_norm(x_BDF.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x_BDF = block(x_BDF)
        log_mag_BFK, phase_BFK = self.head(self.out_norm(x_BDF.transpose(1, 2))).float().chunk(2, dim=-1)
        magnitude_BFK = torch.exp(log_mag_BFK.clamp(max=MAX_LOG_MAGNITUDE))
        return torch.polar(magnitude_BFK, phase_BFK)

    def frames(self, mel_BMF: torch.Tensor) -> torch.Tensor:
        """(B, M, F) log-mel -> (B, F, N) windowed synthesis frames, before overlap-add."""
        spec_BFK = self.spectrum(mel_BMF)
        return torch.fft.irfft(spec_BFK, n=self.config.n_fft, dim=-1, norm="ortho") * self.window_N

    def forward(self, mel_BMF: torch.Tensor) -> torch.Tensor:
        """(B, M, F) log-mel -> (B, 160 F) float32 wave: samples [0, 160 F) of the inverse STFT."""
        start = self.config.frame_offset
        return overlap_add(self.frames(mel_BMF), self.window_N, HOP, start, start + HOP * mel_BMF.shape[2])


def _stft_magnitude(wave_BT: torch.Tensor, n_fft: int) -> torch.Tensor:
    """|STFT| (B, K, L) with a Hann window, hop n_fft / 4, zero-padded centering (any length)."""
    window = torch.hann_window(n_fft, device=wave_BT.device)
    spec = torch.stft(
        wave_BT, n_fft, hop_length=n_fft // 4, window=window, center=True, pad_mode="constant", return_complex=True
    )
    return (spec.real.square() + spec.imag.square()).clamp_min(1e-7).sqrt()  # floor: finite log and gradient


def multi_resolution_stft_loss(pred_BT: torch.Tensor, target_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(spectral convergence, log-magnitude L1), each averaged over `STFT_LOSS_SIZES`.

    Spectral convergence: ||S - Ŝ||_F / ||S||_F; log magnitude: mean |log S - log Ŝ|.
    """
    convergence, log_magnitude = pred_BT.new_zeros(()), pred_BT.new_zeros(())
    for n_fft in STFT_LOSS_SIZES:
        pred, target = _stft_magnitude(pred_BT, n_fft), _stft_magnitude(target_BT, n_fft)
        convergence = convergence + torch.linalg.vector_norm(target - pred) / torch.linalg.vector_norm(target)
        log_magnitude = log_magnitude + (target.log() - pred.log()).abs().mean()
    return convergence / len(STFT_LOSS_SIZES), log_magnitude / len(STFT_LOSS_SIZES)


def vocoder_loss(vocoder: Vocoder, wave_BT: torch.Tensor, log_mel: LogMel) -> dict[str, torch.Tensor]:
    """Reconstruction loss on real waves (B, T): mel = log_mel(wave), prediction = vocoder(mel).

    Returns {"loss": convergence + log_magnitude + MEL_LOSS_WEIGHT · mel_l1} and the three parts,
    detached. The prediction covers the first 160 · (T // 160) samples, compared with those of
    the wave; mel_l1 compares the prediction's log-mel with the input log-mel.
    """
    if log_mel.config.n_mels != vocoder.config.n_mels or log_mel.config.hop_length != HOP:
        raise BadArgument(
            f"the front end ({log_mel.config.n_mels} mels, hop {log_mel.config.hop_length}) does not match "
            f"the vocoder ({vocoder.config.n_mels} mels, hop {HOP})"
        )
    mel_BMF = log_mel(wave_BT)
    pred_BT = vocoder(mel_BMF)
    target_BT = wave_BT.reshape(-1, wave_BT.shape[-1])[:, : pred_BT.shape[1]].to(pred_BT)
    convergence, log_magnitude = multi_resolution_stft_loss(pred_BT, target_BT)
    mel_l1 = (log_mel(pred_BT) - mel_BMF).abs().mean()
    total = convergence + log_magnitude + MEL_LOSS_WEIGHT * mel_l1
    return {
        "loss": total,
        "spectral_convergence": convergence.detach(),
        "log_magnitude": log_magnitude.detach(),
        "mel_l1": mel_l1.detach(),
    }


class StreamingVocoder:
    """Feed (M, f) mel chunks with `push`; each call returns the samples that became final (1-D).

    After N mel frames, network frames < N - lookahead are final, and so are the samples before
    the first later synthesis frame: [0, 160 (N - lookahead) - P). Each push re-runs the
    network on the last frames only: those of the synthesis frames that overlap the samples
    still to emit, plus `left_context` frames of history, so time and memory per push are
    bounded. `flush` ends the stream (the network sees the end, as offline) and returns the
    rest, so the samples of a stream of F frames add up to the offline `vocoder(mel)`, 160 F
    samples, up to float rounding.
    """

    def __init__(self, vocoder: Vocoder) -> None:
        self.vocoder = vocoder
        self._reset()

    def _reset(self) -> None:
        device = self.vocoder.window_N.device
        self._mel_MF = torch.zeros(self.vocoder.config.n_mels, 0, device=device)  # the frames kept
        self._first = 0  # stream index of _mel_MF's first frame
        self._frames = 0  # frames received
        self._emitted = 0  # samples returned

    @property
    def buffered_frames(self) -> int:
        """Mel frames held for the next push (bounded: history, overlap and look-ahead)."""
        return self._mel_MF.shape[1]

    @torch.no_grad()
    def push(self, mel_MF: torch.Tensor) -> torch.Tensor:
        """Append (M, f) mel frames (f may be 0); returns the newly final samples, (t,) float32."""
        n_mels = self.vocoder.config.n_mels
        if mel_MF.ndim != 2 or mel_MF.shape[0] != n_mels:
            raise BadArgument(f"streaming vocoder expects ({n_mels}, f) mel chunks, got {tuple(mel_MF.shape)}")
        self._mel_MF = torch.cat([self._mel_MF, mel_MF.to(self._mel_MF)], dim=1)
        self._frames += mel_MF.shape[1]
        final_frames = self._frames - self.vocoder.config.lookahead
        return self._emit(HOP * final_frames - self.vocoder.config.frame_offset, final_frames)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """End the stream: returns the remaining samples (up to 160 F) and starts a new stream."""
        out = self._emit(HOP * self._frames, self._frames)
        self._reset()
        return out

    def _first_overlapping(self, sample: int) -> int:
        """The first synthesis frame whose samples reach `sample` (or later)."""
        cfg = self.vocoder.config
        return max(0, (sample + cfg.frame_offset - cfg.n_fft) // HOP + 1)

    def _emit(self, stop: int, frames_end: int) -> torch.Tensor:
        """Samples [emitted, stop), made from synthesis frames [first overlapping, frames_end)."""
        cfg = self.vocoder.config
        if stop <= self._emitted:
            return self._mel_MF.new_zeros(0)
        first = self._first_overlapping(self._emitted)
        start = max(0, first - cfg.left_context)  # before `first`: history for the network only
        frames_FN = self.vocoder.frames(self._mel_MF[None, :, start - self._first :])[0]
        frames_FN = frames_FN[first - start : frames_end - start]
        begin = self._emitted - (HOP * first - cfg.frame_offset)  # sample offset in frame `first`
        wave_T = overlap_add(frames_FN[None], self.vocoder.window_N, HOP, begin, begin + stop - self._emitted)[0]
        self._emitted = stop
        keep = max(0, self._first_overlapping(stop) - cfg.left_context)
        self._mel_MF, self._first = self._mel_MF[:, keep - self._first :], keep
        return wave_T
