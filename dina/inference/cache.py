"""A preallocated KV cache and the backbone run incrementally over it (report Sec. 2.4; release §1, §10).

`KVCache` holds, for each of the 2 · n_layers attention sublayers, the keys and values of B rows
up to `max_len` positions, allocated once. Grouped-query attention stores its G key/value heads;
MLA stores per-head keys [nope | rope] and values (the release caches the 576-wide latent instead
and re-expands it; per-head storage trades memory for a simpler step, see `bytes_per_token`).

`backbone_step` runs T new positions of some rows through every layer: each attention sublayer
writes its new keys and values at the rows' current lengths and attends causally to everything
the row has cached; the MoE and MLPs run as in training (the layer's own `wired` forward), in
eval mode, so the router's correction bias does not move. Positions continue each row's 1-D
position count, as in training, where they restart at every document.

Shapes: B rows, T new positions, S sublayers, P cached positions, H heads, G key/value heads.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F

from dina.backbone.layer import DecoderLayer, GQAttention, MLAttention
from dina.backbone.model import Backbone
from dina.config import BackboneConfig
from dina.errors import BadArgument
from dina.layers.rope import rotary_tables


class KVCache:
    """Keys and values of every attention sublayer for B rows, and each row's length."""

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

    @property
    def bytes_per_token(self) -> int:
        """Cache bytes one position costs, over all sublayers."""
        s, _, _, h, k = self.k_SBPHK.shape
        return s * h * (k + self.v_SBPHV.shape[-1]) * self.k_SBPHK.element_size()

    def attend(
        self, sublayer: int, rows_B: torch.Tensor, q_BTHD: torch.Tensor, k_BTGD: torch.Tensor, v_BTGV: torch.Tensor
    ) -> torch.Tensor:
        """Store the new keys/values of `rows_B` after their cached positions; causal attention of the
        new queries over all of the row's positions -> (B, T, H, V)."""
        T = q_BTHD.shape[1]
        start_B = self.lengths_B[rows_B]
        end = int(start_B.max()) + T
        if end > self.max_len:
            raise BadArgument(f"the KV cache holds {self.max_len} positions; this step needs {end}")
        at_BT = start_B[:, None] + torch.arange(T)
        self.k_SBPHK[sublayer, rows_B[:, None], at_BT] = k_BTGD
        self.v_SBPHV[sublayer, rows_B[:, None], at_BT] = v_BTGV
        keys_BPGD = self.k_SBPHK[sublayer, rows_B, :end]
        values_BPGV = self.v_SBPHV[sublayer, rows_B, :end]
        allowed_BTP = torch.arange(end)[None, None, :] <= at_BT[:, :, None]
        out = F.scaled_dot_product_attention(
            q_BTHD.transpose(1, 2),
            keys_BPGD.transpose(1, 2),
            values_BPGV.transpose(1, 2),
            attn_mask=allowed_BTP[:, None],
            enable_gqa=keys_BPGD.shape[2] != q_BTHD.shape[2],
        )
        return out.transpose(1, 2)


@torch.no_grad()
def backbone_step(backbone: Backbone, x_BTD: torch.Tensor, cache: KVCache, rows_B: torch.Tensor) -> torch.Tensor:
    """T new embedded positions of cache rows `rows_B` -> their (B, T, D) final-normed hidden states;
    the rows' lengths advance by T."""
    cfg = backbone.cfg
    B, T, D = x_BTD.shape
    if rows_B.shape != (B,):
        raise BadArgument(f"expected {B} cache rows, got {tuple(rows_B.shape)}")
    pos_N = (cache.lengths_B[rows_B][:, None] + torch.arange(T)).flatten()
    if int(pos_N.max()) >= cfg.max_seq_len:
        raise BadArgument(f"positions reach {int(pos_N.max())}, beyond max_seq_len {cfg.max_seq_len}")
    rot = rotary_tables(pos_N, cfg.rope_dim, theta=cfg.rope_theta)
    x_ND = x_BTD.reshape(B * T, D)
    for i, module in enumerate(backbone.layers):
        layer = cast(DecoderLayer, module)

        def attend(s: int, y_ND: torch.Tensor, i: int = i, layer: DecoderLayer = layer) -> torch.Tensor:
            attn = cast(GQAttention | MLAttention, layer.attns[s])
            q, k, v = attn.qkv(y_ND, rot)
            o = cache.attend(
                2 * i + s, rows_B, q.view(B, T, *q.shape[1:]), k.view(B, T, *k.shape[1:]), v.view(B, T, *v.shape[1:])
            )
            return attn.out(o.reshape(B * T, *o.shape[2:]))

        x_ND = layer.wired(x_ND, attend).x_ND
    cache.lengths_B[rows_B] += T
    return backbone.norm(x_ND).view(B, T, D)
