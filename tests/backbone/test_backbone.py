"""The backbone stack: documents independent, counters per layer, and the release's size on the meta device."""

import pytest
import torch

from dina.backbone.model import Backbone
from dina.errors import BadArgument
from dina.presets import longcat_next, tiny


def test_packed_documents_and_counters():
    torch.manual_seed(0)
    cfg = tiny().backbone
    model = Backbone(cfg).eval()
    x = torch.randn(10, cfg.dim, generator=torch.Generator().manual_seed(1))
    pos = torch.cat([torch.arange(6), torch.arange(4)])
    out = model(x, torch.tensor([0, 6, 10]), pos)
    alone = model(x[6:], torch.tensor([0, 4]), torch.arange(4))
    torch.testing.assert_close(out.hidden_ND[6:], alone.hidden_ND, atol=1e-5, rtol=1e-5)
    assert len(out.moe) == cfg.n_layers
    assert all(int(m.tokens_per_expert_X.sum()) == 10 * cfg.top_k for m in out.moe)
    with pytest.raises(BadArgument, match="max_seq_len"):
        model(x, torch.tensor([0, 10]), torch.arange(10) + cfg.max_seq_len)


def test_the_release_backbone_builds_on_the_meta_device_with_its_parameter_count():
    cfg = longcat_next().backbone
    with torch.device("meta"):
        model = Backbone(cfg)
    assert all(p.is_meta for p in model.parameters())
    D, H = 3072, 32
    mla = (
        D * 1536
        + 1536
        + 1536 * H * (128 + 64)  # q: down, norm, up
        + D * (512 + 64)
        + 512
        + 512 * H * (128 + 128)  # kv: down (+ shared rope key), norm, up
        + H * 128 * D  # o_proj
    )
    dense = 3 * D * 6144
    moe = (256 + 128) * D + 256 * 3 * D * 1024  # router over routed + zero experts, SwiGLU experts
    per_layer = 2 * mla + 2 * dense + moe + 4 * D  # and four RMSNorm gains
    total = sum(p.numel() for p in model.parameters())
    assert total == 14 * per_layer + D
    assert 3.6e10 < total < 3.7e10  # 36.3 B in the layers; the embeddings (n-gram tables) bring the ~68.5 B
    active = model.active_parameters()
    assert active == total - 14 * (256 - 12) * 3 * D * 1024
    # 4.1 B if all 12 selections are routed experts; with the zero-expert share at its balanced
    # 1/3, 8 of 12 are, 3.6 B: the release's "A3B" (~3 B average, dynamic per token)
    assert 4.0e9 < active < 4.2e9
