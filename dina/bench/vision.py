"""`dina bench vision`: dNaViT's speed against a peer and against itself, in one run.

1. RVQ encode throughput vs `vector-quantize-pytorch`'s ResidualVQ (`dina.bench.rvq`), at the
   tiny and the release's vision codebook shapes: ratio ours / peer (goal >= 2.0).
2. SAE encode throughput of a mixed-resolution batch packed (block-diagonal attention over
   one sequence) vs padded to the largest image (a dense masked batch): ratio (goal >= 1.5).
3. Time and peak memory to encode one image at 224², 448², 896² and 1736² px; each size runs in
   a fresh process so its peak resident memory is its own.

Numbers are measured on the machine that runs the command; nothing is hard-coded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

from dina.bench import median_seconds
from dina.bench.rvq import SETTINGS, bench_rvq
from dina.layers.vit import ViTBlock
from dina.vision.config import vision_tiny
from dina.vision.encoder import SemanticEncoder
from dina.vision.preprocess import PreprocessConfig, preprocess_images


def _padded_forward(encoder: SemanticEncoder, packed) -> torch.Tensor:
    """The same encoder on a dense (B, Nmax, D) batch with a key-padding mask: the padding baseline."""
    lengths = (packed.cu_patches[1:] - packed.cu_patches[:-1]).tolist()
    n_max = max(lengths)
    x = torch.zeros(len(lengths), n_max, packed.patches_NP.shape[1])
    pos = torch.zeros(len(lengths), n_max, 2, dtype=torch.long)
    all_pos = packed.positions()
    for i, (a, n) in enumerate(zip(packed.cu_patches[:-1].tolist(), lengths, strict=True)):
        x[i, :n], pos[i, :n] = packed.patches_NP[a : a + n], all_pos[a : a + n]
    mask = torch.arange(n_max)[None, :] < torch.tensor(lengths)[:, None]
    h = encoder.patch_embed(x)
    from dina.layers.rope import apply_rope, rotary_tables

    rot = rotary_tables(pos.reshape(-1, 2), encoder.cfg.vit.head_dim)
    for block in encoder.vit.blocks:
        assert isinstance(block, ViTBlock)
        y = block.norm1(h)
        B, N, D = y.shape
        qkv = block.attn.qkv(y).reshape(B * N, 3, block.attn.heads, D // block.attn.heads)
        q, k = apply_rope(qkv[:, 0], rot), apply_rope(qkv[:, 1], rot)
        q, k, v = (t.reshape(B, N, block.attn.heads, -1).transpose(1, 2) for t in (q, k, qkv[:, 2]))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        h = h + block.attn.proj(a.transpose(1, 2).reshape(B, N, D))
        h = h + block.mlp(block.norm2(h))
    return h[mask]


def bench_packing(n_images: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sides = [56 + 28 * k for k in range(15)]
    images = [rng.integers(0, 256, (rng.choice(sides), rng.choice(sides), 3), dtype=np.uint8) for _ in range(n_images)]
    config = vision_tiny()
    packed = preprocess_images(images, config.preprocess)
    encoder = SemanticEncoder(config.sae).eval()
    with torch.no_grad():
        t_packed = median_seconds(
            lambda: encoder.vit(encoder.patch_embed(packed.patches_NP), packed.cu_patches, packed.positions()), 5
        )
        t_padded = median_seconds(lambda: _padded_forward(encoder, packed), 5)
        ours = encoder.vit(encoder.patch_embed(packed.patches_NP), packed.cu_patches, packed.positions())
        err = float((ours - _padded_forward(encoder, packed)).abs().max())
    lengths = (packed.cu_patches[1:] - packed.cu_patches[:-1]).tolist()
    return {
        "images": n_images,
        "patches_packed": int(sum(lengths)),
        "patches_padded": int(max(lengths) * n_images),
        "packed_images_per_second": n_images / t_packed,
        "padded_images_per_second": n_images / t_padded,
        "ratio_packed_over_padded": t_padded / t_packed,
        "max_abs_difference": err,
    }


_ONE_IMAGE = """
import dataclasses, json, time, numpy as np, torch
from dina.vision.config import vision_tiny
from dina.vision.encoder import SemanticEncoder
from dina.vision.preprocess import PreprocessConfig, preprocess_images

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024

torch.set_num_threads({threads})
side = {side}
sae = vision_tiny().sae
if {windowed}:
    sae = dataclasses.replace(sae, window_tokens=4, full_attention_blocks=(sae.depth - 1,))
enc = SemanticEncoder(sae).eval()
pre = PreprocessConfig(min_pixels=56 * 56, max_pixels=side * side)
img = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
with torch.no_grad():
    packed = preprocess_images([img], pre); enc(packed)
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak resident set (VmHWM)
    base = rss("VmRSS")
    t = time.perf_counter(); enc(preprocess_images([img], pre)); t = time.perf_counter() - t
peak = rss("VmHWM") - base
print(json.dumps({{"side": side, "tokens": packed.num_tokens, "seconds": t, "peak_mib": peak}}))
"""


def bench_scaling(sides=(224, 448, 896, 1736), threads: int = 2, windowed: bool = False) -> list[dict]:
    """One image per size in a fresh process; full attention (tiny) or 4x4-token windows (the release's)."""
    rows = []
    for side in sides:
        code = _ONE_IMAGE.format(side=side, threads=threads, windowed=windowed)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = rows[0]
    for row in rows:
        row["pixels_ratio"] = (row["side"] / base["side"]) ** 2
        row["time_ratio"] = row["seconds"] / base["seconds"]
        row["memory_ratio"] = row["peak_mib"] / max(base["peak_mib"], 1e-9)
    return rows


def bench_vision(threads: int = 2) -> dict:
    torch.set_num_threads(threads)
    rvq = {name: bench_rvq(*SETTINGS[name]) for name in ("vision_tiny", "vision_full")}
    return {
        "threads": threads,
        "rvq_vs_vector_quantize_pytorch": rvq,
        "packed_vs_padded": bench_packing(),
        "one_image_scaling_full_attention": bench_scaling(threads=threads),
        "one_image_scaling_windowed": bench_scaling(threads=threads, windowed=True),
    }


__all__ = ["PreprocessConfig", "bench_vision"]
