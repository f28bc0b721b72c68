"""PSNR, SSIM and high-frequency energy behave as their definitions say."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dina.errors import BadArgument
from dina.metrics import from_uint8, high_frequency_energy, psnr, ssim


def _images(b: int = 2, h: int = 56, w: int = 84, seed: int = 0) -> torch.Tensor:
    """Smooth-ish random images in [0, 1]: upsampled noise, so they have both low and high frequencies."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, h // 7, w // 7, generator=g)
    return (F.interpolate(coarse, size=(h, w), mode="bilinear") + 0.1 * torch.rand(b, 3, h, w, generator=g)) / 1.1


def _blur(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)


def test_psnr_of_identical_images_is_inf():
    x = _images()
    assert torch.isinf(psnr(x, x, data_range=1.0)).all()


def test_psnr_matches_the_formula_for_a_known_mse():
    a = torch.zeros(1, 3, 16, 16)
    b = a + 0.1  # MSE 0.01
    assert psnr(a, b, data_range=1.0).item() == pytest.approx(20.0)
    assert psnr(a * 255, b * 255, data_range=255.0).item() == pytest.approx(20.0, abs=1e-4)
    assert psnr(a, b, data_range=2.0).item() == pytest.approx(20.0 + 20 * math.log10(2))


def test_metrics_are_per_image():
    x = _images(b=3)
    y = x.clone()
    y[1] += 0.05
    p = psnr(x, y, data_range=1.0)
    assert p.shape == (3,) and torch.isinf(p[0]) and torch.isfinite(p[1]) and torch.isinf(p[2])


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    x = _images()
    g = torch.Generator().manual_seed(1)
    assert torch.allclose(ssim(x, x, data_range=1.0), torch.ones(2, dtype=torch.float64))
    values = [
        ssim(x, x + s * torch.randn(x.shape, generator=g), data_range=1.0).mean().item() for s in (0.02, 0.1, 0.3)
    ]
    assert 1 > values[0] > values[1] > values[2]


def test_ssim_rejects_images_smaller_than_its_window():
    x = torch.rand(1, 3, 10, 64)
    with pytest.raises(BadArgument):
        ssim(x, x, data_range=1.0)


def test_blur_lowers_and_sharpening_raises_high_frequency_energy():
    x = _images()
    sharpened = x + 1.0 * (x - _blur(x))  # unsharp mask
    base = high_frequency_energy(x)
    assert (high_frequency_energy(_blur(x)) < 0.5 * base).all()
    assert (high_frequency_energy(sharpened) > base).all()
    # A share of energy: unchanged by brightness and contrast scaling, and 0 for a flat image.
    assert torch.allclose(high_frequency_energy(3 * x + 7), base)
    assert torch.equal(high_frequency_energy(torch.full((1, 3, 32, 32), 0.5)), torch.zeros(1, dtype=torch.float64))


def test_uint8_arrays_convert_to_the_float_convention():
    arr = np.zeros((56, 60, 3), dtype=np.uint8)
    arr[..., 1] = 255
    x = from_uint8(arr)
    assert x.shape == (1, 3, 56, 60) and x.dtype == torch.float32
    assert x[0, 1].eq(255).all() and x[0, 0].eq(0).all()
    assert from_uint8([arr, arr]).shape == (2, 3, 56, 60)
    with pytest.raises(BadArgument):
        from_uint8(arr.astype(np.float32))
    with pytest.raises(BadArgument):
        psnr(torch.from_numpy(arr), torch.from_numpy(arr), data_range=255)  # type: ignore[arg-type]
