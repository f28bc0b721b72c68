"""`dina vision eval`: how much of an image survives dNaViT (report Sec. 2.2, eq. 1; Sec. 3.2.2).

Reconstruction fidelity (PSNR, SSIM, high-frequency energy, with and without the refiner),
feature fidelity (cosine between the SAE features and the semantic decoder's reconstruction
from the codes), codebook health (usage and perplexity per level over the whole set), rates
(tokens per image, compression ratio, images per second), and — when the images come with
ShapesWorld scenes — semantic completeness measured directly: the ShapesWorld judge parses
the originals and the reconstructions and we count exact scene matches, with the GenEval
categories and the sign plates found and read alongside (`judge_report`), so that a miss can be
traced to objects or to signs.

Images are compared at the size the tokenizer sees them (native resolution rounded to 28 px).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dina.data.shapes import Scene, judge_images
from dina.metrics.image import from_uint8, high_frequency_energy, psnr, ssim
from dina.quantize import code_usage
from dina.vision.data import ImageRecord, load_images
from dina.vision.preprocess import to_uint8
from dina.vision.tokenizer import VisionCodes, VisionTokenizer


def _resized(model: VisionTokenizer, rgb: np.ndarray) -> np.ndarray:
    return to_uint8(model.resized(rgb)[0])


def image_quality(originals: list[np.ndarray], recons: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR, SSIM (uint8 scale) and high-frequency energy of reconstructions against originals."""
    ps, ss, hf = [], [], []
    for a, b in zip(originals, recons, strict=True):
        x, y = from_uint8(a), from_uint8(b)
        ps.append(float(psnr(x, y, 255.0)[0]))
        ss.append(float(ssim(x, y, 255.0)[0]))
        hf.append(float(high_frequency_energy(y)[0]))
    finite = [p for p in ps if math.isfinite(p)] or [99.0]
    return {"psnr": float(np.mean(finite)), "ssim": float(np.mean(ss)), "high_frequency_energy": float(np.mean(hf))}


def judge_report(records: list[ImageRecord], images: list[np.ndarray]) -> dict[str, Any]:
    """The ShapesWorld judge (`judge_images`) on `images` against their records' scenes: exact-scene
    accuracy, the GenEval categories, and how many sign plates were found and read."""
    scenes = [Scene.from_dict(record.row["scene"]) for record in records]  # type: ignore[index]
    return judge_images(scenes, images)


@torch.no_grad()
def _codebook_stats(model: VisionTokenizer, codes: VisionCodes) -> dict[str, list[float]]:
    flat = torch.cat([c.reshape(-1, c.shape[-1]) for c in codes.codes])
    usage, perplexity = code_usage(flat, model.config.codebook_sizes)
    return {"codebook_usage": usage, "perplexity": perplexity}


@torch.no_grad()
def _feature_cosine(model: VisionTokenizer, records: list[ImageRecord], batch: int) -> dict[str, float]:
    """Cosine of SAE features and the semantic decoder's reconstruction from the codes: raw, and
    centered and scaled (the space of the training loss, without the shared component)."""
    raw, std = [], []
    proj = model.quant_proj
    for i in range(0, len(records), batch):
        z = model.features(model.preprocess([r.rgb for r in records[i : i + batch]])).features_ND
        z_hat = model.semantic_decoder(model.quantized_embeddings(z))
        std.append(proj.standardized_cosine(z_hat, z))
        raw.append(F.cosine_similarity(z_hat * proj.std + proj.mean, z, dim=-1))
    return {
        "feature_cosine": float(torch.cat(raw).mean()),
        "feature_cosine_standardized": float(torch.cat(std).mean()),
    }


def evaluate_vision(model: VisionTokenizer, source: str | Path, *, limit: int | None = None, batch: int = 16) -> dict:
    """Every figure of `dina vision eval` on the images of `source` (manifest, directory or folder)."""
    model.eval()
    records = load_images(source, limit=limit)
    originals = [_resized(model, r.rgb) for r in records]
    t0 = time.perf_counter()
    codes = [model.encode([r.rgb for r in records[i : i + batch]]) for i in range(0, len(records), batch)]
    t_encode = time.perf_counter() - t0
    all_codes = VisionCodes(
        codes=tuple(c for b in codes for c in b.codes),
        sizes=tuple(s for b in codes for s in b.sizes),
        original_sizes=tuple(s for b in codes for s in b.original_sizes),
    )
    t0 = time.perf_counter()
    plain = [img for b in codes for img in model.decode(b, refine=False)]
    t_decode = time.perf_counter() - t0
    refined = [img for b in codes for img in model.decode(b, refine=True)]
    refined_t1 = [img for b in codes for img in model.decode(b, refine=True, temperature=1.0)]
    tokens = [c.shape[0] * c.shape[1] for c in all_codes.codes]
    bits = sum(math.log2(k) for k in model.config.codebook_sizes)
    result: dict[str, Any] = {
        "n": len(records),
        "no_refine": image_quality(originals, plain),
        "refine": image_quality(originals, refined),
        "refine_temperature_1": image_quality(originals, refined_t1),
        "original_high_frequency_energy": image_quality(originals, originals)["high_frequency_energy"],
        **_feature_cosine(model, records, batch),
        **_codebook_stats(model, all_codes),
        "tokens_per_image": float(np.mean(tokens)),
        "compression_ratio": float(np.mean([o.size * 8 / (t * bits) for o, t in zip(originals, tokens, strict=True)])),
        "images_per_second": len(records) / (t_encode + t_decode),
        "encode_images_per_second": len(records) / t_encode,
        "decode_images_per_second": len(records) / t_decode,
    }
    result["psnr"], result["ssim"] = result["refine"]["psnr"], result["refine"]["ssim"]
    if all(r.row and "scene" in r.row for r in records):
        judged = {
            "original": judge_report(records, originals),
            "reconstructed": judge_report(records, refined),
            "reconstructed_no_refine": judge_report(records, plain),
            "reconstructed_refine_temperature_1": judge_report(records, refined_t1),
        }
        for name, report in judged.items():
            result[f"judge_scene_accuracy_{name}"] = report["exact_scene"]
        result["judge"] = judged
    return result
