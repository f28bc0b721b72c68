"""The backbone stack: LongCat-Flash decoder layers and a final RMSNorm (report Sec. 2.4; release §1).

Input is already embedded (the multimodal embeddings and their Pre-Buffer are not part of the
backbone: modality enters only through them); positions are plain 1-D token positions within
each packed document, for every modality. The output carries each layer's MoE counters, from
which the report's per-modality routing statistics (Fig. 11) are computed.

Shapes: N packed tokens, D width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dina.backbone.layer import DecoderLayer
from dina.backbone.moe import MoEOutput
from dina.config import BackboneConfig
from dina.errors import BadArgument
from dina.layers.norm import RMSNorm
from dina.layers.rope import rotary_tables


@dataclass(frozen=True, kw_only=True)
class BackboneOutput:
    hidden_ND: torch.Tensor  # after the final norm
    moe: list[MoEOutput]  # one per layer


class Backbone(nn.Module):
    """`n_layers` decoder layers, then RMSNorm; causal within each document of `cu_seqlens`."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)

    def forward(self, x_ND: torch.Tensor, cu_seqlens: torch.Tensor, pos_N: torch.Tensor) -> BackboneOutput:
        """(N, D) embedded tokens, document boundaries and per-token positions -> BackboneOutput."""
        if x_ND.ndim != 2 or x_ND.shape[1] != self.cfg.dim or pos_N.shape != x_ND.shape[:1]:
            raise BadArgument(f"backbone expects (N, {self.cfg.dim}) tokens and (N,) positions")
        if pos_N.numel() and int(pos_N.max()) >= self.cfg.max_seq_len:
            raise BadArgument(f"positions reach {int(pos_N.max())}, beyond max_seq_len {self.cfg.max_seq_len}")
        rot = rotary_tables(pos_N, self.cfg.rope_dim, theta=self.cfg.rope_theta)
        stats = []
        for layer in self.layers:
            out = layer(x_ND, cu_seqlens, rot)
            x_ND = out.x_ND
            stats.append(out.moe)
        return BackboneOutput(hidden_ND=self.norm(x_ND), moe=stats)

    def active_parameters(self) -> int:
        """Parameters one token uses: everything but the experts it is not routed to (every
        selection counted as a routed SwiGLU expert, an upper bound; zero experts cost nothing)."""
        total = sum(p.numel() for p in self.parameters())
        moe = self.cfg.moe
        per_expert = 3 * moe.dim * moe.expert_hidden
        return total - self.cfg.n_layers * (moe.n_experts - moe.top_k) * per_expert
