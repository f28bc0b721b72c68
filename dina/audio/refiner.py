"""The flow-matching mel refiner: sharpens the mel decoder's coarse log-mel (report Sec. 2.3, Fig. 6).

The release (§7) follows its decoder with a flow-matching decoder: a ConditionalCFM whose
estimator is a CosyVoice/Matcha causal U-Net reading [x_t, mu] (mu the coarse mel), sampled with
Euler steps. Ours keeps that contract at CPU size:
- input: the noisy state x_t stacked with the coarse mel along channels, plus the code
  embeddings projected at 12.5 Hz and repeated to the 8 mel frames of each token;
- network: a stack of causal dilated 1-D residual blocks (kernel 3, dilations 1, 2, 4, ...)
  with time-conditioned scale and shift (AdaGN as in `dina.vision.refiner`); every convolution
  is left-padded, so frame t depends on frames ≤ t only, which streaming decode needs;
- flow: the anchored x1-prediction flow of `dina.flow.anchored` on the residual
  (target - coarse), from noise of std `noise_scale`, the recipe measured for the image
  refiner; a zero output layer makes an untrained refiner return the coarse mel.

Departure: the release's estimator is a U-Net with attention and a 100-frame chunk mask; ours
is convolutional and strictly causal (a receptive field of 1 + 2·Σ dilations frames).

Shapes: B batch, M mel bins, L mel frames, N tokens (L = 8N), C channels, D code width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dina.audio.encoder import MEL_PER_TOKEN
from dina.config_io import ConfigBase, _check
from dina.errors import BadArgument
from dina.flow.anchored import anchored_flow_loss, anchored_flow_sample, timestep_embedding, x1_to_velocity
from dina.layers.norm import FrameGroupNorm


@dataclass(frozen=True, kw_only=True)
class MelRefinerConfig(ConfigBase):
    n_mels: int = 80
    cond_dim: int = 512  # code embedding width
    channels: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)
    time_dim: int = 64
    groups: int = 8
    steps: int = 8
    noise_scale: float = 0.1
    min_one_minus_t: float = 0.05

    def __post_init__(self) -> None:
        _check(min(self.n_mels, self.cond_dim, self.channels, self.steps) > 0, "mel refiner sizes must be positive")
        _check(len(self.dilations) > 0 and min(self.dilations) > 0, "dilations must be positive")
        _check(self.channels % self.groups == 0, "groups must divide channels")
        _check(self.time_dim > 0 and self.time_dim % 2 == 0, "time_dim must be positive and even")
        _check(self.noise_scale >= 0 and 0 < self.min_one_minus_t < 1, "bad noise_scale or min_one_minus_t")

    @property
    def receptive_frames(self) -> int:
        return 1 + 2 * sum(self.dilations)


class CausalConv1d(nn.Conv1d):
    """Conv1d left-padded by (kernel - 1) · dilation: output frame t reads frames ≤ t."""

    def forward(self, x_BCL: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x_BCL, ((self.kernel_size[0] - 1) * self.dilation[0], 0)))


class CausalResBlock(nn.Module):
    """norm-SiLU-causal conv, then AdaGN (time scale and shift)-SiLU-causal conv, plus the input."""

    def __init__(self, channels: int, dilation: int, time_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = FrameGroupNorm(groups, channels)
        self.conv1 = CausalConv1d(channels, channels, 3, dilation=dilation)
        self.norm2 = FrameGroupNorm(groups, channels)
        self.film = nn.Linear(time_dim, 2 * channels)
        self.conv2 = CausalConv1d(channels, channels, 3, dilation=dilation)

    def forward(self, x_BCL: torch.Tensor, temb_BT: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x_BCL)))
        scale_BC1, shift_BC1 = self.film(temb_BT)[:, :, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale_BC1) + shift_BC1
        return x_BCL + self.conv2(F.silu(h))


class MelRefiner(nn.Module):
    """x1 (the residual target - coarse) from (x_t, coarse mel, code embeddings, t); `refine` samples."""

    def __init__(self, config: MelRefinerConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.time_dim, cfg.time_dim), nn.SiLU(), nn.Linear(cfg.time_dim, cfg.time_dim)
        )
        self.stem = CausalConv1d(2 * cfg.n_mels, cfg.channels, 3)
        self.cond_proj = nn.Linear(cfg.cond_dim, cfg.channels)
        self.blocks = nn.ModuleList(CausalResBlock(cfg.channels, d, cfg.time_dim, cfg.groups) for d in cfg.dilations)
        self.out_norm = FrameGroupNorm(cfg.groups, cfg.channels)
        self.out = nn.Conv1d(cfg.channels, cfg.n_mels, 1)
        nn.init.zeros_(self.out.weight)  # untrained: x1 = 0, the coarse mel comes back unchanged
        assert self.out.bias is not None
        nn.init.zeros_(self.out.bias)

    def _check(self, coarse_BML: torch.Tensor, emb_BND: torch.Tensor) -> None:
        cfg = self.config
        if coarse_BML.ndim != 3 or coarse_BML.shape[1] != cfg.n_mels:
            raise BadArgument(f"coarse mel must be (B, {cfg.n_mels}, L), got {tuple(coarse_BML.shape)}")
        b, _, frames = coarse_BML.shape
        if tuple(emb_BND.shape) != (b, frames // MEL_PER_TOKEN, cfg.cond_dim) or frames % MEL_PER_TOKEN:
            raise BadArgument(
                f"code embeddings must be (B, L/{MEL_PER_TOKEN}, {cfg.cond_dim}) for a mel of "
                f"{tuple(coarse_BML.shape)}, got {tuple(emb_BND.shape)}"
            )

    def predict_x1(
        self, x_t_BML: torch.Tensor, coarse_BML: torch.Tensor, emb_BND: torch.Tensor, t_B: torch.Tensor
    ) -> torch.Tensor:
        self._check(coarse_BML, emb_BND)
        temb_BT = self.time_mlp(timestep_embedding(t_B, self.config.time_dim).to(x_t_BML.dtype))
        cond_BCL = self.cond_proj(emb_BND).transpose(1, 2).repeat_interleave(MEL_PER_TOKEN, dim=2)
        h = self.stem(torch.cat([x_t_BML, coarse_BML], dim=1)) + cond_BCL
        for block in self.blocks:
            h = block(h, temb_BT)
        return self.out(F.silu(self.out_norm(h)))

    def forward(
        self, x_t_BML: torch.Tensor, coarse_BML: torch.Tensor, emb_BND: torch.Tensor, t_B: torch.Tensor
    ) -> torch.Tensor:
        """The velocity at x_t and times t_B (B,)."""
        x1 = self.predict_x1(x_t_BML, coarse_BML, emb_BND, t_B)
        return x1_to_velocity(x1, x_t_BML, t_B, self.config.min_one_minus_t)

    def loss(
        self,
        target_BML: torch.Tensor,
        coarse_BML: torch.Tensor,
        emb_BND: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Scalar flow-matching loss on the residual target - coarse (seeded by `generator`)."""
        if target_BML.shape != coarse_BML.shape:
            raise BadArgument(f"target {tuple(target_BML.shape)} and coarse {tuple(coarse_BML.shape)} mels differ")

        def predict_x1(x_t: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
            return self.predict_x1(x_t, coarse_BML, emb_BND, t_B)

        return anchored_flow_loss(
            predict_x1, target_BML - coarse_BML, noise_scale=self.config.noise_scale, generator=generator
        )

    @torch.no_grad()
    def refine(
        self,
        coarse_BML: torch.Tensor,
        emb_BND: torch.Tensor,
        steps: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The refined mel: coarse + the residual sampled in `steps` Euler steps (temperature 0: deterministic)."""

        def predict_x1(x_t: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
            return self.predict_x1(x_t, coarse_BML, emb_BND, t_B)

        residual = anchored_flow_sample(
            predict_x1,
            coarse_BML,
            steps=steps or self.config.steps,
            noise_scale=self.config.noise_scale,
            min_one_minus_t=self.config.min_one_minus_t,
            temperature=temperature,
            generator=generator,
        )
        return coarse_BML + residual
