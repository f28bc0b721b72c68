"""Image preprocessing for dNaViT at native resolution (report Sec. 2.2.3 "Native Resolution",
4.1.1; release §3 "Preprocess").

An image is resized to a grid of 28-px tokens (patch 14 × merge 2) that keeps its aspect
ratio as well as possible with a pixel count in [min_pixels, max_pixels] (`smart_resize`),
resized bicubically (Pillow, on uint8 as the release does), scaled to [0, 1], normalized with
the CLIP mean/std, and cut into 14×14 patches of 3·14·14 = 588 values (channel-major, then
rows, then columns inside a patch). Patches are stored in **2×2 merge-block order**: the four
patches of a token (top-left, top-right, bottom-left, bottom-right) are consecutive and tokens
follow in raster order, so merging 2×2 patches into a token is a reshape. All images of a
batch are packed into one (N, 588) tensor with cumulative boundaries, without padding.

Departures from the release:
- One frame per patch (588 values), where the release duplicates the frame for Qwen's
  temporal patch of 2 (1176 values). The Qwen2.5-VL adapter sums the Conv3d kernel over its
  temporal axis, which is exactly equivalent for a duplicated frame and halves the input.
- Extreme aspect ratios are clamped instead of refused: the release raises above 200:1; we
  treat the short side as at least long/`max_aspect` (the image is stretched; rounding to whole
  tokens afterwards may shift the ratio by up to one token on the short side), and when the
  token budget cannot hold even that (each side is at least one token) we search the token
  grid closest in aspect within [min_pixels, max_pixels]. A 1×1 pixel image and a 1:300
  panorama therefore resize within the rules, and an image larger than the budget is always
  downscaled, so memory is bounded by max_pixels whatever the input.

Shapes: N patches (or tokens), P = 3·patch² values per patch, H×W pixels, th×tw tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from dina.errors import BadArgument, BadConfig, BadImage

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True, kw_only=True)
class PreprocessConfig:
    """Resize rules and normalization of the vision tokenizer's input."""

    patch_size: int = 14
    merge: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280
    max_aspect: float = 200.0
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.merge < 1 or self.max_aspect < 1:
            raise BadConfig(f"bad preprocessing sizes: {self}")
        if not self.token_px**2 <= self.max_pixels or self.min_pixels > self.max_pixels:
            raise BadConfig(f"need token_px² <= max_pixels and min_pixels <= max_pixels: {self}")
        if math.ceil(self.min_pixels / self.token_px**2) > self.max_pixels // self.token_px**2:
            raise BadConfig(f"no whole number of {self.token_px}-px tokens fits in [min_pixels, max_pixels]: {self}")

    @property
    def token_px(self) -> int:
        return self.patch_size * self.merge

    @property
    def patch_dim(self) -> int:
        return 3 * self.patch_size**2

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) in pixels that a height × width image is resized to (`smart_resize` under these rules)."""
        return smart_resize(
            height,
            width,
            token_px=self.token_px,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
            max_aspect=self.max_aspect,
        )


def _closest_grid(h: float, w: float, t_min: int, t_max: int) -> tuple[int, int]:
    """The token grid (th, tw) with t_min <= th·tw <= t_max whose aspect is closest to h/w."""
    best, best_key = (1, t_min), (math.inf, 0)
    for th in range(1, t_max + 1):
        lo, hi = max(1, -(-t_min // th)), t_max // th
        if lo > hi:
            continue
        ideal = th * w / h
        for tw in {min(max(math.floor(ideal), lo), hi), min(max(math.ceil(ideal), lo), hi)}:
            key = (abs(math.log(th / tw) - math.log(h / w)), -th * tw)
            if key < best_key:
                best, best_key = (th, tw), key
    return best


def smart_resize(
    height: int,
    width: int,
    *,
    token_px: int = 28,
    min_pixels: int = 56 * 56,
    max_pixels: int = 28 * 28 * 1280,
    max_aspect: float = 200.0,
) -> tuple[int, int]:
    """(h, w) in pixels, multiples of `token_px`, min_pixels <= h·w <= max_pixels, aspect close to the input's.

    Follows the release's rule (round each side to tokens; if outside the pixel range, scale
    both sides by √ of the ratio and floor / ceil); see the module docstring for the clamping.
    """
    if height < 1 or width < 1:
        raise BadArgument(f"image size must be positive, got {height}x{width}")
    t_min, t_max = math.ceil(min_pixels / token_px**2), max_pixels // token_px**2
    if t_max < 1 or t_min > t_max:
        raise BadArgument(f"no grid of {token_px}-px tokens fits in [{min_pixels}, {max_pixels}] pixels")
    h, w = max(height, width / max_aspect), max(width, height / max_aspect)
    th, tw = max(1, round(h / token_px)), max(1, round(w / token_px))
    if th * tw > t_max:
        beta = math.sqrt(h * w / max_pixels)
        th, tw = max(1, math.floor(h / beta / token_px)), max(1, math.floor(w / beta / token_px))
    elif th * tw < t_min:
        beta = math.sqrt(min_pixels / (h * w))
        th, tw = math.ceil(h * beta / token_px), math.ceil(w * beta / token_px)
    if not t_min <= th * tw <= t_max:
        th, tw = _closest_grid(h, w, t_min, t_max)
    return th * token_px, tw * token_px


@dataclass(frozen=True, kw_only=True)
class PackedImages:
    """A batch of images as one sequence of patches in 2×2 merge-block order.

    `patches_NP` (N, 3·patch²) float32; image i owns patches cu_patches[i]:cu_patches[i+1] and
    tokens cu_tokens[i]:cu_tokens[i+1] (int32 boundaries); `grid_hw[i]` = (rows, cols) of
    tokens, `sizes[i]` = resized (H, W) pixels, `original_sizes[i]` = input (H, W) pixels.
    """

    patches_NP: torch.Tensor
    grid_hw: tuple[tuple[int, int], ...]
    sizes: tuple[tuple[int, int], ...]
    original_sizes: tuple[tuple[int, int], ...]
    cu_patches: torch.Tensor
    cu_tokens: torch.Tensor
    patch_size: int = 14
    merge: int = 2

    @property
    def num_images(self) -> int:
        return len(self.grid_hw)

    @property
    def num_tokens(self) -> int:
        return int(self.cu_tokens[-1])

    def positions(self) -> torch.Tensor:
        """(N, 2) (row, col) of every patch in patch units, in the packed order."""
        return patch_positions(self.grid_hw, merge=self.merge)


def _cumulative(counts: Sequence[int]) -> torch.Tensor:
    return torch.tensor([0, *np.cumsum(counts).tolist()], dtype=torch.int32)


def patch_positions(grid_hw: Sequence[tuple[int, int]], *, merge: int = 2) -> torch.Tensor:
    """(N, 2) long (row, col) patch coordinates of packed images in merge-block order."""
    parts = []
    for th, tw in grid_hw:
        rows = torch.arange(th * merge)[:, None].expand(th * merge, tw * merge)
        cols = torch.arange(tw * merge)[None, :].expand(th * merge, tw * merge)
        grid_2HW = torch.stack([rows, cols])
        parts.append(grid_2HW.reshape(2, th, merge, tw, merge).permute(1, 3, 2, 4, 0).reshape(-1, 2))
    return torch.cat(parts) if parts else torch.zeros(0, 2, dtype=torch.long)


def patchify(image_HW3: torch.Tensor, *, patch_size: int = 14, merge: int = 2) -> torch.Tensor:
    """(H, W, 3) with H, W multiples of patch·merge -> (N, 3·patch²) patches in merge-block order."""
    h, w, c = image_HW3.shape
    side = patch_size * merge
    if h % side or w % side:
        raise BadArgument(f"image {h}x{w} is not a multiple of {side} px")
    th, tw, p, m = h // side, w // side, patch_size, merge
    x = image_HW3.permute(2, 0, 1).reshape(c, th, m, p, tw, m, p)
    return x.permute(1, 4, 2, 5, 0, 3, 6).reshape(th * tw * m * m, c * p * p)


def _unpatchify_one(patches_NP: torch.Tensor, th: int, tw: int, patch_size: int, merge: int) -> torch.Tensor:
    p, m = patch_size, merge
    x = patches_NP.reshape(th, tw, m, m, 3, p, p).permute(4, 0, 2, 5, 1, 3, 6)
    return x.reshape(3, th * m * p, tw * m * p).permute(1, 2, 0)


def unpatchify(
    patches_NP: torch.Tensor, grid_hw: Sequence[tuple[int, int]], *, patch_size: int = 14, merge: int = 2
) -> list[torch.Tensor]:
    """Packed (N, 3·patch²) patches of images with token grids `grid_hw` -> list of (H, W, 3) images."""
    counts = [th * tw * merge * merge for th, tw in grid_hw]
    if sum(counts) != patches_NP.shape[0]:
        raise BadArgument(f"{patches_NP.shape[0]} patches do not match grids {list(grid_hw)} ({sum(counts)} patches)")
    chunks = torch.split(patches_NP, counts)
    return [_unpatchify_one(x, th, tw, patch_size, merge) for x, (th, tw) in zip(chunks, grid_hw, strict=True)]


def normalize(
    image_HW3: torch.Tensor, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD
) -> torch.Tensor:
    """[0, 1] channel-last pixels -> (x − mean) / std."""
    return (image_HW3 - torch.tensor(mean, dtype=image_HW3.dtype)) / torch.tensor(std, dtype=image_HW3.dtype)


def denormalize(
    image_HW3: torch.Tensor, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD
) -> torch.Tensor:
    """Inverse of `normalize`: x · std + mean, channel-last, back in [0, 1] for in-range inputs."""
    return image_HW3 * torch.tensor(std, dtype=image_HW3.dtype) + torch.tensor(mean, dtype=image_HW3.dtype)


def to_uint8(image_HW3: torch.Tensor) -> np.ndarray:
    """[0, 1] float pixels -> (H, W, 3) uint8, clipped and rounded."""
    return (image_HW3.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _check_image(i: int, image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise BadImage(
            f"image {i}: expected an (H, W, 3) uint8 array, got {shape} {getattr(image, 'dtype', type(image))}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise BadImage(f"image {i} is empty: {image.shape}")


def resize_image(image_HW3: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of an (H, W, 3) uint8 array to `size` = (h, w), as uint8 (Pillow)."""
    if image_HW3.shape[:2] == size:
        return image_HW3
    return np.asarray(Image.fromarray(image_HW3).resize((size[1], size[0]), Image.Resampling.BICUBIC))


def pack_pixels(
    pixels: Sequence[torch.Tensor],
    cfg: PreprocessConfig,
    original_sizes: Sequence[tuple[int, int]] | None = None,
) -> PackedImages:
    """(H, W, 3) float images in [0, 1], already at 28-px multiples -> PackedImages (differentiable)."""
    parts = [patchify(normalize(x, cfg.mean, cfg.std), patch_size=cfg.patch_size, merge=cfg.merge) for x in pixels]
    sizes = tuple((int(x.shape[0]), int(x.shape[1])) for x in pixels)
    grids = tuple((h // cfg.token_px, w // cfg.token_px) for h, w in sizes)
    return PackedImages(
        patches_NP=torch.cat(parts),
        grid_hw=grids,
        sizes=sizes,
        original_sizes=tuple(original_sizes) if original_sizes is not None else sizes,
        cu_patches=_cumulative([th * tw * cfg.merge**2 for th, tw in grids]),
        cu_tokens=_cumulative([th * tw for th, tw in grids]),
        patch_size=cfg.patch_size,
        merge=cfg.merge,
    )


def preprocess_images(images: Sequence[np.ndarray], cfg: PreprocessConfig | None = None) -> PackedImages:
    """Resize, normalize and patchify (H, W, 3) uint8 RGB images into one `PackedImages`."""
    cfg = cfg or PreprocessConfig()
    if len(images) == 0:
        raise BadArgument("preprocess_images needs at least one image")
    pixels, originals = [], []
    for i, image in enumerate(images):
        _check_image(i, image)
        size = cfg.resized_size(image.shape[0], image.shape[1])
        pixels.append(torch.from_numpy(resize_image(image, size).astype(np.float32) / 255.0))
        originals.append((int(image.shape[0]), int(image.shape[1])))
    return pack_pixels(pixels, cfg, originals)
