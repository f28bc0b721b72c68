"""Multimodal embeddings: level sums and the Pre-Buffer match a direct computation; ids are checked."""

import pytest
import torch

from dina.backbone.embedding import MultimodalEmbedding
from dina.errors import BadCodes
from dina.presets import tiny

CFG = tiny()


@pytest.fixture
def emb() -> MultimodalEmbedding:
    torch.manual_seed(0)
    return MultimodalEmbedding(CFG.vocab, CFG.backbone.dim, CFG.prebuffer_dim)


def _codes(sizes, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, k, (n,), generator=g) for k in sizes], dim=1)


def test_image_positions_are_the_pre_buffer_of_the_level_sum(emb):
    codes = _codes(CFG.vocab.visual_codebook_sizes)
    table = emb.embed_tokens.weight
    offsets = CFG.vocab.level_offsets("visual")
    e = sum(table[offsets[level] + codes[:, level]] for level in range(codes.shape[1]))
    pb = emb.pre_buffer
    expected = e + pb.mlp.down_proj(
        torch.nn.functional.silu(pb.mlp.gate_proj(pb.pre_layernorm(e))) * pb.mlp.up_proj(pb.pre_layernorm(e))
    )
    torch.testing.assert_close(emb.image(codes), expected)


def test_audio_positions_sum_levels_and_add_the_guiding_text(emb):
    codes = _codes(CFG.vocab.audio_codebook_sizes)
    table = emb.embed_tokens.weight
    offsets = CFG.vocab.level_offsets("audio")
    e = sum(table[offsets[level] + codes[:, level]] for level in range(codes.shape[1]))
    torch.testing.assert_close(emb.audio(codes), e)
    text = torch.tensor([5, 6, 7, 8, 9])
    torch.testing.assert_close(emb.audio(codes, text), e + table[text])


def test_levels_do_not_overlap_and_ids_are_checked(emb):
    sizes = CFG.vocab.visual_codebook_sizes
    top = torch.tensor([[k - 1 for k in sizes]])
    rows = emb.level_embeddings("visual", top)[0]
    first_of_next = emb.level_embeddings("visual", torch.zeros(1, len(sizes), dtype=torch.long))[0]
    assert not torch.allclose(rows[0], first_of_next[1])  # level 0's last row is not level 1's first
    with pytest.raises(BadCodes, match="level 0"):
        emb.level_embeddings("visual", top + 1)  # the release's off-by-one quirk is refused
    with pytest.raises(BadCodes, match="codes must be"):
        emb.image(top[:, :3])
    with pytest.raises(BadCodes, match="text ids"):
        emb.text(torch.tensor([CFG.vocab.audio_offset]))
