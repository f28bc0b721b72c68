from dataclasses import replace

import numpy as np
import pytest
import torch

from dina.errors import BadArgument, BadConfig
from dina.vision.encoder import SAEConfig, SemanticEncoder, sae_qwen2_5_vl, sae_tiny, window_partition
from dina.vision.preprocess import PackedImages, PreprocessConfig, preprocess_images

SMALL = SAEConfig(dim=32, depth=2, heads=2, mlp_dim=48, out_dim=24, bias=True)


def _images(sizes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def _encoder(cfg: SAEConfig = SMALL) -> SemanticEncoder:
    torch.manual_seed(0)
    return SemanticEncoder(cfg).eval()


SIZES = [(56, 84), (112, 56), (28, 28), (84, 140)]
PRE = PreprocessConfig(min_pixels=28 * 28)


def test_output_layout() -> None:
    packed = preprocess_images(_images(SIZES), PRE)
    out = _encoder()(packed)
    assert out.features_ND.shape == (packed.num_tokens, 24)
    assert out.grid_hw == ((2, 3), (4, 2), (1, 1), (3, 5))
    assert out.cu_tokens.tolist() == [0, 6, 14, 15, 30]


def test_packed_equals_each_image_alone_and_no_leakage() -> None:
    enc, images = _encoder(), _images(SIZES)
    together = enc(preprocess_images(images, PRE))
    cu = together.cu_tokens.tolist()
    for i, image in enumerate(images):
        alone = enc(preprocess_images([image], PRE)).features_ND
        torch.testing.assert_close(together.features_ND[cu[i] : cu[i + 1]], alone, rtol=1e-5, atol=1e-5)
    changed = list(images)
    changed[1] = 255 - changed[1]
    other = enc(preprocess_images(changed, PRE)).features_ND
    assert torch.equal(other[: cu[1]], together.features_ND[: cu[1]])
    assert torch.equal(other[cu[2] :], together.features_ND[cu[2] :])
    assert not torch.allclose(other[cu[1] : cu[2]], together.features_ND[cu[1] : cu[2]])


def test_attention_is_bidirectional_within_an_image() -> None:
    enc = _encoder()
    packed = preprocess_images(_images([(84, 84)]), PRE)
    patches = packed.patches_NP.clone()
    patches[-4:] += 1.0  # the last token's patches
    changed = replace(packed, patches_NP=patches)
    assert not torch.allclose(enc(packed).features_ND[0], enc(changed).features_ND[0])


def test_window_order_is_undone_exactly() -> None:
    # Every block full: windows only permute tokens, so the output must equal the unwindowed encoder's.
    packed = preprocess_images(_images(SIZES), PRE)
    full = _encoder()(packed).features_ND
    permuted = _encoder(replace(SMALL, window_tokens=2, full_attention_blocks=(0, 1)))(packed).features_ND
    torch.testing.assert_close(permuted, full, rtol=1e-5, atol=1e-5)


def test_windows_confine_attention() -> None:
    enc = _encoder(replace(SMALL, window_tokens=2))
    packed = preprocess_images(_images([(112, 112)]), PRE)  # 4x4 tokens -> four 2x2 windows
    patches = packed.patches_NP.clone()
    patches[-4:] += 1.0  # token (3, 3): bottom-right window
    a, b = enc(packed).features_ND, enc(replace(packed, patches_NP=patches)).features_ND
    assert torch.equal(a.view(4, 4, -1)[:2], b.view(4, 4, -1)[:2])  # top windows untouched
    assert not torch.allclose(a.view(4, 4, -1)[2:, 2:], b.view(4, 4, -1)[2:, 2:])


def test_window_partition_tiles_from_the_top_left() -> None:
    win = window_partition(((3, 5),), 2, 2)
    # windows of 2x2, 2x2, 2x1, 1x2, 1x2, 1x1 tokens, 4 patches each
    assert (win.cu_windows.diff() // 4).tolist() == [4, 4, 2, 2, 2, 1]
    assert sorted(win.perm_N.tolist()) == list(range(60))
    assert win.perm_N[:8].tolist() == [0, 1, 2, 3, 4, 5, 6, 7] and win.perm_N[8:12].tolist() == [20, 21, 22, 23]


def test_deterministic_and_differentiable() -> None:
    enc = _encoder(sae_tiny())
    packed = preprocess_images(_images([(56, 56), (84, 28)]), PRE)
    a, b = enc(packed).features_ND, enc(packed).features_ND
    assert torch.equal(a, b)
    a.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())


def test_presets_and_checks() -> None:
    assert sae_qwen2_5_vl().merged_dim == 5120 and sae_qwen2_5_vl().vit.head_dim == 80
    with pytest.raises(BadConfig):
        SAEConfig(dim=24, depth=1, heads=4, mlp_dim=8, out_dim=8)  # head dim 6: no 2-D rotary
    packed = preprocess_images(_images([(28, 28)]), PRE)
    bad = PackedImages(**{**packed.__dict__, "patches_NP": packed.patches_NP[:, :100]})
    with pytest.raises(BadArgument):
        _encoder()(bad)


def test_pca_start_whitens_the_principal_patch_subspace() -> None:
    from dina.data.shapes import make_example

    packed = preprocess_images([make_example(0, "train", i)[1] for i in range(6)], PRE)
    enc = _encoder()
    enc.init_from_patches(packed.patches_NP)
    with torch.no_grad():
        x0 = enc.patch_embed(packed.patches_NP).double()
    # Decorrelated, unit variance (no direction of these patches is below the eigenvalue floor).
    assert torch.allclose(torch.cov(x0.T), torch.eye(SMALL.dim, dtype=torch.float64), atol=1e-3)
    # The rows span the leading principal subspace: far more patch variance than a random subspace.
    x = packed.patches_NP.double() - packed.patches_NP.double().mean(0)
    basis = torch.linalg.qr(enc.patch_embed.weight.double().T).Q
    random_basis = torch.linalg.qr(torch.randn(SMALL.patch_dim, SMALL.dim, dtype=torch.float64)).Q
    assert (x @ basis).pow(2).sum() > 3 * (x @ random_basis).pow(2).sum()


def test_pixel_path_starts_at_the_tokens_principal_directions_unwhitened() -> None:
    from dina.data.shapes import make_example

    cfg = replace(SMALL, pixel_path=True)
    packed = preprocess_images([make_example(0, "train", i)[1] for i in range(6)], PRE)
    enc = _encoder(cfg)
    assert enc.pixel_path is not None and not enc.pixel_path.weight.any()  # zero before the data-dependent start
    enc.init_from_patches(packed.patches_NP)
    tokens = packed.patches_NP.reshape(-1, cfg.merge**2 * cfg.patch_dim).double()
    with torch.no_grad():
        y = enc.pixel_path(tokens.float()).double()
    var = torch.cov(y.T).diagonal()
    assert var[0].item() == pytest.approx(1.0, rel=1e-3)
    assert (var.diff() <= 1e-9).all() and var[-1] < 0.5 * var[0]  # ordered and not whitened
    # Orthogonal rows, one scale: distances in the principal subspace are kept (up to that scale).
    w = enc.pixel_path.weight.double()
    gram = w @ w.T
    assert torch.allclose(gram, gram[0, 0] * torch.eye(cfg.out_dim, dtype=torch.float64), rtol=1e-4, atol=1e-6)
    # The features carry it: with the ViT and bridge silenced, z is exactly the pixel path.
    with torch.no_grad():
        enc.bridge.fc2.weight.zero_()
        enc.bridge.fc2.bias.zero_()
        z = enc(packed).features_ND.double()
    assert torch.allclose(z, y, atol=1e-5)
