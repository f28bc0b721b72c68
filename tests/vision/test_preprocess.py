import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dina.errors import BadArgument, BadConfig, BadImage
from dina.vision.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    PreprocessConfig,
    denormalize,
    patch_positions,
    patchify,
    preprocess_images,
    smart_resize,
    to_uint8,
    unpatchify,
)


@settings(max_examples=300, deadline=None)
@given(
    h=st.integers(1, 20000),
    w=st.integers(1, 20000),
    min_tokens=st.integers(1, 64),
    extra_tokens=st.integers(0, 1500),
)
def test_smart_resize_always_obeys_the_rules(h: int, w: int, min_tokens: int, extra_tokens: int) -> None:
    min_pixels, max_pixels = min_tokens * 784, (min_tokens + extra_tokens) * 784
    rh, rw = smart_resize(h, w, min_pixels=min_pixels, max_pixels=max_pixels)
    assert rh % 28 == 0 and rw % 28 == 0 and rh >= 28 and rw >= 28
    assert min_pixels <= rh * rw <= max_pixels


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 300), (300, 1), (10, 3000), (1, 100000)])
def test_degenerate_images_resize_within_the_rules(h: int, w: int) -> None:
    rh, rw = smart_resize(h, w)
    assert 56 * 56 <= rh * rw <= 28 * 28 * 1280
    if w > h:
        assert rw >= rh  # orientation kept


def test_smart_resize_keeps_aspect_and_release_behaviour() -> None:
    assert smart_resize(224, 224) == (224, 224)
    assert smart_resize(300, 600) == (308, 588)  # rounded to the nearest token, as the release does
    h, w = smart_resize(4000, 3000)  # over budget: downscaled, aspect close to 4:3
    assert h * w <= 28 * 28 * 1280 and abs(h / w - 4 / 3) < 0.05
    assert smart_resize(20, 40, min_pixels=56 * 56) == (56, 84)  # upscaled to min_pixels


def test_extreme_aspect_is_clamped_to_max_aspect() -> None:
    h, w = smart_resize(28 * 2, 28 * 2 * 1000, max_pixels=28 * 28 * 10_000)
    # Clamped before rounding to whole tokens, so the short side may lose up to one token.
    assert 150 < w / h <= 200 * (h // 28 + 1) / (h // 28)


def test_patchify_round_trip_and_block_order() -> None:
    x = torch.rand(56, 84, 3)
    patches = patchify(x)
    assert patches.shape == (2 * 3 * 4, 588)
    (back,) = unpatchify(patches, [(2, 3)])
    assert torch.equal(back, x)
    # The first 4 patches are the 2x2 block of token (0, 0): TL, TR, BL, BR; channel-major inside.
    torch.testing.assert_close(patches[1].reshape(3, 14, 14), x[0:14, 14:28].permute(2, 0, 1))
    torch.testing.assert_close(patches[2].reshape(3, 14, 14), x[14:28, 0:14].permute(2, 0, 1))
    torch.testing.assert_close(patches[4].reshape(3, 14, 14), x[0:14, 28:42].permute(2, 0, 1))  # token (0, 1)


def test_positions_follow_block_order() -> None:
    pos = patch_positions([(2, 3)])
    assert pos[:5].tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [0, 2]]
    assert pos.shape == (24, 2) and pos[:, 0].max() == 3 and pos[:, 1].max() == 5


def test_preprocess_packs_normalized_patches() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(56, 84), (1, 1), (100, 30)]]
    packed = preprocess_images(images, PreprocessConfig(max_pixels=448 * 448))
    assert packed.original_sizes == ((56, 84), (1, 1), (100, 30))
    assert packed.grid_hw[0] == (2, 3) and packed.sizes[0] == (56, 84)
    counts = [th * tw for th, tw in packed.grid_hw]
    assert packed.cu_tokens.tolist() == [0, *np.cumsum(counts).tolist()]
    assert packed.cu_patches.tolist() == [4 * c for c in packed.cu_tokens.tolist()]
    assert packed.patches_NP.dtype == torch.float32 and packed.patches_NP.shape == (4 * sum(counts), 588)
    # Image 0 needed no resize: the inverse path gives back its exact pixels.
    first = unpatchify(packed.patches_NP, packed.grid_hw)[0]
    assert np.array_equal(to_uint8(denormalize(first)), images[0])


def test_constant_image_normalizes_to_clip_values() -> None:
    packed = preprocess_images([np.full((28, 28, 3), 255, np.uint8)])
    expected = [(1.0 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)]
    torch.testing.assert_close(packed.patches_NP[0].reshape(3, -1).mean(1), torch.tensor(expected))


def test_large_image_is_downscaled_to_the_budget() -> None:
    big = np.zeros((3000, 2000, 3), np.uint8)
    packed = preprocess_images([big], PreprocessConfig(max_pixels=448 * 448))
    h, w = packed.sizes[0]
    assert h * w <= 448 * 448 and math.isclose(h / w, 1.5, rel_tol=0.1)


def test_bad_inputs() -> None:
    with pytest.raises(BadImage):
        preprocess_images([np.zeros((10, 10), np.uint8)])
    with pytest.raises(BadImage):
        preprocess_images([np.zeros((10, 10, 3), np.float32)])  # type: ignore[list-item]
    with pytest.raises(BadArgument):
        preprocess_images([])
    with pytest.raises(BadConfig):
        PreprocessConfig(min_pixels=5000, max_pixels=4000)
