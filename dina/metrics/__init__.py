"""Quality metrics for dina's outputs (per-sample values, float tensors in, (B,) tensors out)."""

from dina.metrics.image import from_uint8, high_frequency_energy, psnr, ssim

__all__ = ["from_uint8", "high_frequency_energy", "psnr", "ssim"]
