"""One LongCat-Flash decoder layer: two attention sublayers, two dense MLPs, a shortcut MoE.

Report Sec. 2.4; LongCat-Flash-Omni report §2.3 (ScMoE); `longcat-next-release.md` §1 "Layer
wiring", per layer with sublayers s = 0, 1:

    h = x + attn0(norm_in0(x));  u = norm_post0(h);  m = MoE(u);  h = h + mlp0(u)
    h = h + attn1(norm_in1(h));  h = h + mlp1(norm_post1(h));     out = h + m

The MoE reads the first sublayer's normed output and joins at the end of the layer, so its
experts can run while the second sublayer computes (the shortcut). Tokens of every modality
go through the same weights: there is no modality branch.

Attention, causal within each packed document (`dina.layers.attention`), rotary positions over
plain 1-D token positions for every modality (release §1: no M-RoPE):
- `MLAttention`, the release's multi-head latent attention (`attention="mla"`, full preset):
  q = q_b(RMSNorm(q_a(x))) · √(D / q_lora), split per head into [nope | rope];
  [c | k_rope] = kv_a(x); [k_nope | v] = kv_b(RMSNorm(c) · √(D / kv_lora)) per head; k_rope is
  one rotary key shared by all heads; RoPE rotates pairs (2i, 2i+1) (DeepSeek's layout, the
  same rotation as regrouping the pairs into halves); scale (nope + rope)^-½; o_proj H·v -> D.
- `GQAttention`, grouped-query attention for `tiny` (`attention="gqa"`).

Shapes: N packed tokens, D width, H query heads, G key/value heads, Dh head dim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dina.backbone.moe import MoE, MoEOutput
from dina.config import BackboneConfig
from dina.layers.attention import packed_attention
from dina.layers.mlp import SwiGLU
from dina.layers.norm import RMSNorm
from dina.layers.rope import RotaryTables, apply_rope


class MLAttention(nn.Module):
    """Multi-head latent attention (release §1 "MLA"); parameter names follow the release."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        H, nope, rope, dv = cfg.n_heads, cfg.qk_nope_dim, cfg.qk_rope_dim, cfg.v_head_dim
        self.q_a_proj = nn.Linear(cfg.dim, cfg.q_lora_rank, bias=False)
        self.q_a_layernorm = RMSNorm(cfg.q_lora_rank, eps=cfg.norm_eps)
        self.q_b_proj = nn.Linear(cfg.q_lora_rank, H * (nope + rope), bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(cfg.dim, cfg.kv_lora_rank + rope, bias=False)
        self.kv_a_layernorm = RMSNorm(cfg.kv_lora_rank, eps=cfg.norm_eps)
        self.kv_b_proj = nn.Linear(cfg.kv_lora_rank, H * (nope + dv), bias=False)
        self.o_proj = nn.Linear(H * dv, cfg.dim, bias=False)

    def qkv(self, x_ND: torch.Tensor, rot: RotaryTables) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, D) -> per-head q, k (N, H, nope + rope) and v (N, H, dv), rotary applied."""
        cfg, n = self.cfg, x_ND.shape[0]
        H, nope, rope, dv = cfg.n_heads, cfg.qk_nope_dim, cfg.qk_rope_dim, cfg.v_head_dim
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x_ND))) * (cfg.dim / cfg.q_lora_rank) ** 0.5
        q_nope, q_rope = q.view(n, H, nope + rope).split([nope, rope], dim=-1)
        c, k_rope = self.kv_a_proj_with_mqa(x_ND).split([cfg.kv_lora_rank, rope], dim=-1)
        kv = self.kv_b_proj(self.kv_a_layernorm(c) * (cfg.dim / cfg.kv_lora_rank) ** 0.5)
        k_nope, v = kv.view(n, H, nope + dv).split([nope, dv], dim=-1)
        k_rope = apply_rope(k_rope[:, None, :], rot, interleaved=True).expand(n, H, rope)
        q = torch.cat([q_nope, apply_rope(q_rope, rot, interleaved=True)], dim=-1)
        return q, torch.cat([k_nope, k_rope], dim=-1), v

    def out(self, o_NHV: torch.Tensor) -> torch.Tensor:
        return self.o_proj(o_NHV.reshape(o_NHV.shape[0], -1))

    def forward(self, x_ND: torch.Tensor, cu_seqlens: torch.Tensor, rot: RotaryTables) -> torch.Tensor:
        q, k, v = self.qkv(x_ND, rot)
        return self.out(packed_attention(q, k, v, cu_seqlens, causal=True))


class GQAttention(nn.Module):
    """Causal grouped-query self-attention over packed documents, rotary on q and k."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)

    def qkv(self, x_ND: torch.Tensor, rot: RotaryTables) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, D) -> q (N, H, Dh) and the G key/value heads k, v (N, G, Dh), rotary applied."""
        n = x_ND.shape[0]
        q_NHD = self.q_proj(x_ND).view(n, self.heads, self.head_dim)
        k_NGD = self.k_proj(x_ND).view(n, self.kv_heads, self.head_dim)
        # q and k rotated in one call: rotary works per head, and one call is half the small ops.
        q_NHD, k_NGD = apply_rope(torch.cat([q_NHD, k_NGD], dim=1), rot).split([self.heads, self.kv_heads], dim=1)
        return q_NHD, k_NGD, self.v_proj(x_ND).view(n, self.kv_heads, self.head_dim)

    def out(self, o_NHD: torch.Tensor) -> torch.Tensor:
        return self.o_proj(o_NHD.reshape(o_NHD.shape[0], -1))

    def forward(self, x_ND: torch.Tensor, cu_seqlens: torch.Tensor, rot: RotaryTables) -> torch.Tensor:
        q_NHD, k_NGD, v_NGD = self.qkv(x_ND, rot)
        group = self.heads // self.kv_heads  # each key/value head serves `group` query heads
        k_NHD, v_NHD = k_NGD.repeat_interleave(group, dim=1), v_NGD.repeat_interleave(group, dim=1)
        return self.out(packed_attention(q_NHD, k_NHD, v_NHD, cu_seqlens, causal=True))


@dataclass(frozen=True, kw_only=True)
class LayerOutput:
    x_ND: torch.Tensor
    moe: MoEOutput  # the shortcut MoE's output and routing counters


class DecoderLayer(nn.Module):
    """The dual-sublayer LongCat-Flash layer with its shortcut MoE (wiring in the module docstring)."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.input_norms = nn.ModuleList(RMSNorm(cfg.dim, eps=cfg.norm_eps) for _ in range(2))
        self.post_attention_norms = nn.ModuleList(RMSNorm(cfg.dim, eps=cfg.norm_eps) for _ in range(2))
        attention = MLAttention if cfg.attention == "mla" else GQAttention
        self.attns = nn.ModuleList(attention(cfg) for _ in range(2))
        self.mlps = nn.ModuleList(SwiGLU(cfg.dim, cfg.ffn_dim) for _ in range(2))
        self.moe = MoE(cfg.moe)

    def forward(self, x_ND: torch.Tensor, cu_seqlens: torch.Tensor, rot: RotaryTables) -> LayerOutput:
        return self.wired(x_ND, lambda s, y_ND: self.attns[s](y_ND, cu_seqlens, rot))

    def wired(self, x_ND: torch.Tensor, attend: Callable[[int, torch.Tensor], torch.Tensor]) -> LayerOutput:
        """The layer's wiring, with `attend(s, normed x)` computing attention sublayer s: packed
        documents in training, a KV cache in the inference engine."""
        kept: list[MoEOutput] = []

        def moe(u_ND: torch.Tensor) -> torch.Tensor:
            kept.append(self.moe(u_ND))
            return kept[0].out_ND

        out_ND = self._wire(x_ND, attend, moe)
        return LayerOutput(x_ND=out_ND, moe=kept[0])

    def decode(self, x_ND: torch.Tensor, attend: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`wired` without the MoE's routing counters, which decoding does not read -> (N, D)."""
        return self._wire(x_ND, attend, self.moe.mix)

    def _wire(
        self,
        x_ND: torch.Tensor,
        attend: Callable[[int, torch.Tensor], torch.Tensor],
        moe: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        h = x_ND + attend(0, self.input_norms[0](x_ND))
        u = self.post_attention_norms[0](h)
        m = moe(u)
        h = h + self.mlps[0](u)
        h = h + attend(1, self.input_norms[1](h))
        h = h + self.mlps[1](self.post_attention_norms[1](h))
        return h + m
