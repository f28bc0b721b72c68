"""Image quality metrics: PSNR, SSIM and high-frequency energy, per image.

Used to measure the pixel decoder and the refiner (report Sec. 2.2.4: the decoder's images are
"overly smooth, with diminished high-frequency details"; the refiner should restore them).

Convention: every metric takes float tensors (B, 3, H, W) (a single (3, H, W) image is treated as
B = 1) with an explicit `data_range` (2 for [-1, 1], 1 for [0, 1], 255 for uint8 values), and
returns one float64 value per image, shape (B,). `from_uint8` turns the (H, W, 3) uint8 arrays
that dina's image I/O and ShapesWorld produce into that layout (values 0-255, data_range 255).

- psnr: 10·log10(data_range² / MSE); identical images give +inf (not a cap), so a perfect
  reconstruction cannot be mistaken for a merely good one.
- ssim: `pytorch_msssim.ssim` (11-px Gaussian window, σ 1.5, K = (0.01, 0.03)), averaged over
  channels. Images with a side under 11 px are rejected (the library would silently skip the
  window along that axis); dina's smallest images are 56 px.
- high_frequency_energy: the share of the (mean-removed, channel-averaged, Hann-windowed)
  image's spectral energy at radial frequencies above `cutoff` × Nyquist. In [0, 1] and independent of
  brightness and contrast scale, so blur lowers it and sharpening raises it whatever the range.
  Noise raises it too: read it beside PSNR/SSIM, never alone.

Shapes: B images, H×W pixels; `x_B3HW` images, `*_B` per-image values.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_msssim import ssim as _msssim_ssim

from dina.errors import BadArgument

SSIM_WINDOW = 11


def from_uint8(images: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 array, or a list of same-size ones, as a (B, 3, H, W) float32 tensor in [0, 255]."""
    stack = np.stack(images) if isinstance(images, list) else images[None]
    if stack.dtype != np.uint8 or stack.ndim != 4 or stack.shape[-1] != 3:
        raise BadArgument(f"expected (H, W, 3) uint8 images, got {stack.dtype} of shape {stack.shape[1:]}")
    return torch.from_numpy(np.ascontiguousarray(stack)).permute(0, 3, 1, 2).float()


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _batched(a), _batched(b)
    if a.shape != b.shape:
        raise BadArgument(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a, b


def _batched(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise BadArgument("metrics take float tensors; convert uint8 arrays with dina.metrics.from_uint8")
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[1] != 3:
        raise BadArgument(f"expected (B, 3, H, W) or (3, H, W) images, got {tuple(x.shape)}")
    return x.double()


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """(B,) peak signal-to-noise ratio in dB; +inf where the images are identical."""
    a_B3HW, b_B3HW = _pair(a, b)
    if data_range <= 0:
        raise BadArgument(f"data_range must be positive, got {data_range}")
    mse_B = (a_B3HW - b_B3HW).square().mean(dim=(1, 2, 3))
    return 10 * torch.log10(data_range**2 / mse_B)  # mse 0 -> +inf


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """(B,) structural similarity (1 for identical images), from pytorch_msssim."""
    a_B3HW, b_B3HW = _pair(a, b)
    if data_range <= 0:
        raise BadArgument(f"data_range must be positive, got {data_range}")
    if min(a_B3HW.shape[-2:]) < SSIM_WINDOW:
        raise BadArgument(
            f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} px, got {tuple(a_B3HW.shape[-2:])}"
        )
    return _msssim_ssim(a_B3HW, b_B3HW, data_range=data_range, size_average=False)


def high_frequency_energy(img: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """(B,) share of spectral energy above `cutoff` × Nyquist (radially), in [0, 1]; 0 for flat images."""
    x_B3HW = _batched(img)
    if not 0 < cutoff < 1:
        raise BadArgument(f"cutoff must be in (0, 1), got {cutoff}")
    gray_BHW = x_B3HW.mean(dim=1)
    gray_BHW = gray_BHW - gray_BHW.mean(dim=(1, 2), keepdim=True)
    h, w = gray_BHW.shape[-2:]
    # A Hann window, so the jump where the FFT wraps the right edge onto the left is not counted as detail.
    window_HW = torch.outer(torch.hann_window(h, dtype=torch.float64), torch.hann_window(w, dtype=torch.float64))
    power_BHW = torch.fft.fft2(gray_BHW * window_HW).abs().square()
    # Frequencies in cycles/pixel scaled so Nyquist (0.5) is 1 along each axis.
    fy_H = torch.fft.fftfreq(h, dtype=torch.float64) * 2
    fx_W = torch.fft.fftfreq(w, dtype=torch.float64) * 2
    radius_HW = torch.sqrt(fy_H[:, None] ** 2 + fx_W[None, :] ** 2)
    high_B = (power_BHW * (radius_HW > cutoff)).sum(dim=(1, 2))
    total_B = power_BHW.sum(dim=(1, 2))
    return torch.where(total_B > 0, high_B / total_B.clamp_min(1e-300), torch.zeros_like(total_B))
