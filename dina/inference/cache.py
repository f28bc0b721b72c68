"""A preallocated KV cache and the backbone run incrementally over it (report Sec. 2.4; release §1, §10).

`KVCache` holds, for each of the 2 · n_layers attention sublayers, the keys and values of B rows
up to `max_len` positions, allocated once. Grouped-query attention stores its G key/value heads;
MLA stores per-head keys [nope | rope] and values (the release caches the 576-wide latent instead
and re-expands it; per-head storage trades memory for a simpler step, see `bytes_per_token`).

`backbone_step` runs T new positions of some rows through every layer: each attention sublayer
writes its new keys and values at the rows' current lengths and attends causally to everything
the row has cached; the MoE and MLPs run as in training (the layer's own wiring, `decode`, which
skips the MoE's routing counters), in eval mode, so the router's correction bias does not move.
Positions continue each row's 1-D position count, as in training, where they restart at every
document.

Decoding is bound by the number of small operations, not by arithmetic, so a step does its
bookkeeping once (`StepPlan`: one host sync for the rows' lengths, the causal mask built once and
left out when it masks nothing, views instead of gathers when the rows are consecutive) and reads
the rotary tables the cache computed once for every position.

Shapes: B rows, T new positions, S sublayers, P cached positions, H heads, G key/value heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F

from dina.backbone.layer import DecoderLayer, GQAttention, MLAttention
from dina.backbone.model import Backbone
from dina.config import BackboneConfig
from dina.errors import BadArgument
from dina.layers.rope import rotary_tables


class KVCache:
    """Keys and values of every attention sublayer for B rows, each row's length, and the rotary
    tables of positions 0 … max_len - 1 (computed once, as `rotary_tables` computes them)."""

    def __init__(self, cfg: BackboneConfig, batch: int, max_len: int, *, dtype: torch.dtype = torch.float32) -> None:
        if batch < 1 or max_len < 1:
            raise BadArgument(f"a KV cache needs batch >= 1 and max_len >= 1, got {batch}, {max_len}")
        if cfg.attention == "mla":
            heads, k_dim, v_dim = cfg.n_heads, cfg.qk_nope_dim + cfg.qk_rope_dim, cfg.v_head_dim
        else:
            heads, k_dim, v_dim = cfg.n_kv_heads, cfg.head_dim, cfg.head_dim
        sublayers = 2 * cfg.n_layers
        self.k_SBPHK = torch.zeros(sublayers, batch, max_len, heads, k_dim, dtype=dtype)
        self.v_SBPHV = torch.zeros(sublayers, batch, max_len, heads, v_dim, dtype=dtype)
        self.lengths_B = torch.zeros(batch, dtype=torch.long)
        self.max_len = max_len
        self.rot = rotary_tables(torch.arange(min(max_len, cfg.max_seq_len)), cfg.rope_dim, theta=cfg.rope_theta)

    @property
    def bytes_per_token(self) -> int:
        """Cache bytes one position costs, over all sublayers."""
        s, _, _, h, k = self.k_SBPHK.shape
        return s * h * (k + self.v_SBPHV.shape[-1]) * self.k_SBPHK.element_size()

    def plan(self, rows_B: torch.Tensor, T: int) -> StepPlan:
        """Where T new positions of `rows_B` go and what they may see, shared by every sublayer of
        one step (one host sync for the rows' lengths)."""
        starts = self.lengths_B[rows_B].tolist()
        end = max(starts) + T
        if end > self.max_len:
            raise BadArgument(f"the KV cache holds {self.max_len} positions; this step needs {end}")
        rows = rows_B.tolist()
        first = rows[0]
        span = slice(first, first + len(rows)) if rows == list(range(first, first + len(rows))) else None
        at_BT = torch.tensor(starts)[:, None] + torch.arange(T)
        if len(set(starts)) == 1 and T == 1:
            allowed = None  # one new position per row, all rows equally long: it sees everything
        else:
            allowed = (torch.arange(end)[None, None, :] <= at_BT[:, :, None])[:, None]  # (B, 1, T, P)
        start = starts[0] if allowed is None else None
        return StepPlan(rows_B=rows_B, span=span, at_BT=at_BT, start=start, end=end, allowed_B1TP=allowed)

    def attend(
        self, sublayer: int, plan: StepPlan, q_BTHD: torch.Tensor, k_BTGD: torch.Tensor, v_BTGV: torch.Tensor
    ) -> torch.Tensor:
        """Store the new keys/values of the plan's rows after their cached positions; causal attention
        of the new queries over all of the row's positions -> (B, T, H, V)."""
        k_BPGD, v_BPGV = self.k_SBPHK[sublayer], self.v_SBPHV[sublayer]
        if plan.span is not None:  # consecutive rows: views, no gather
            k_BPGD, v_BPGV = k_BPGD[plan.span], v_BPGV[plan.span]
            if plan.start is not None:
                k_BPGD[:, plan.start : plan.end] = k_BTGD
                v_BPGV[:, plan.start : plan.end] = v_BTGV
            else:
                rows = torch.arange(k_BTGD.shape[0])[:, None]
                k_BPGD[rows, plan.at_BT] = k_BTGD
                v_BPGV[rows, plan.at_BT] = v_BTGV
            keys_BPGD, values_BPGV = k_BPGD[:, : plan.end], v_BPGV[:, : plan.end]
        else:
            rows = plan.rows_B[:, None]
            k_BPGD[rows, plan.at_BT] = k_BTGD
            v_BPGV[rows, plan.at_BT] = v_BTGV
            keys_BPGD, values_BPGV = k_BPGD[plan.rows_B, : plan.end], v_BPGV[plan.rows_B, : plan.end]
        out = F.scaled_dot_product_attention(
            q_BTHD.transpose(1, 2),
            keys_BPGD.transpose(1, 2),
            values_BPGV.transpose(1, 2),
            attn_mask=plan.allowed_B1TP,
            enable_gqa=keys_BPGD.shape[2] != q_BTHD.shape[2],
        )
        return out.transpose(1, 2)


@dataclass(frozen=True, kw_only=True)
class StepPlan:
    """One `backbone_step`'s cache indexing: the rows (`span` when they are consecutive), each new
    position's slot `at_BT`, the common start when all rows are equally long and T = 1, the end of
    the attended window, and the (B, 1, T, P) causal mask (None when nothing is masked)."""

    rows_B: torch.Tensor
    span: slice | None
    at_BT: torch.Tensor
    start: int | None
    end: int
    allowed_B1TP: torch.Tensor | None


@torch.no_grad()
def backbone_step(backbone: Backbone, x_BTD: torch.Tensor, cache: KVCache, rows_B: torch.Tensor) -> torch.Tensor:
    """T new embedded positions of cache rows `rows_B` -> their (B, T, D) final-normed hidden states;
    the rows' lengths advance by T."""
    cfg = backbone.cfg
    B, T, D = x_BTD.shape
    if rows_B.shape != (B,):
        raise BadArgument(f"expected {B} cache rows, got {tuple(rows_B.shape)}")
    plan = cache.plan(rows_B, T)
    if plan.end > cfg.max_seq_len:
        raise BadArgument(f"positions reach {plan.end - 1}, beyond max_seq_len {cfg.max_seq_len}")
    rot = cache.rot.take(plan.at_BT.flatten())
    x_ND = x_BTD.reshape(B * T, D)
    for i, module in enumerate(backbone.layers):
        layer = cast(DecoderLayer, module)

        def attend(s: int, y_ND: torch.Tensor, i: int = i, layer: DecoderLayer = layer) -> torch.Tensor:
            attn = cast(GQAttention | MLAttention, layer.attns[s])
            q, k, v = attn.qkv(y_ND, rot)
            o = cache.attend(
                2 * i + s, plan, q.view(B, T, *q.shape[1:]), k.view(B, T, *k.shape[1:]), v.view(B, T, *v.shape[1:])
            )
            return attn.out(o.reshape(B * T, *o.shape[2:]))

        x_ND = layer.decode(x_ND, attend)
    cache.lengths_B[rows_B] += T
    return backbone.norm(x_ND).view(B, T, D)
