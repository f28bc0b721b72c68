"""Encode throughput of `dina.quantize.ResidualVQ` against `vector_quantize_pytorch.ResidualVQ`.

Report Sec. 2.2.3 / release §3 and §7: the quantizer runs over every visual and audio
token, so its nearest-entry search must be cheap. Both quantizers get the same codebooks
(ours are copied into the peer's `_codebook.embed` buffers; the peer accepts per-level
sizes as a tuple, so the audio sizes 8192, 4096, 2048, 1024×5 are compared as is) and the
same vectors, both in eval mode under no_grad. Ours is timed for `encode` (codes only) and
for an eval `forward` (codes, quantized vectors, loss and batch statistics); the peer has
no codes-only call, so its eval `forward` is timed. The best of `repeats` runs is kept.
Code agreement is reported because near-ties can resolve differently in float32 (the
peer takes sqrt of a clamped expanded distance).

Run: `python -m dina.bench.rvq --threads 1` (prints one JSON object per setting).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from dina.quantize import ResidualVQ, RVQConfig
from dina.quantize.codebook import EMACodebook

SETTINGS: dict[str, tuple[int, tuple[int, ...], int]] = {
    # name: (dim, codebook sizes, vectors)
    "vision_tiny": (128, (1024,) * 8, 8192),  # the tiny preset's quantizer (`vision_tiny().rvq`)
    "vision_full": (256, (16384,) * 8, 1024),
    "audio": (256, (8192, 4096, 2048) + (1024,) * 5, 2048),
}


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocator, thread pool
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _peer_like(ours: ResidualVQ) -> torch.nn.Module:
    """The peer quantizer with our codebooks loaded, in eval mode."""
    from vector_quantize_pytorch import ResidualVQ as PeerResidualVQ

    peer = PeerResidualVQ(dim=ours.config.dim, codebook_size=ours.codebook_sizes, kmeans_init=False)
    with torch.no_grad():
        for layer, book in zip(peer.layers, ours.codebooks, strict=True):
            assert isinstance(book, EMACodebook)
            layer._codebook.embed.copy_(book.embed_KD.unsqueeze(0))
    return peer.eval()


def bench_rvq(
    dim: int, codebook_sizes: tuple[int, ...], n_vectors: int, repeats: int = 3, seed: int = 0
) -> dict[str, object]:
    """Throughputs (vectors/s) of ours and the peer on (n_vectors, dim) Gaussian vectors, and their agreement."""
    torch.manual_seed(seed)
    ours = ResidualVQ(RVQConfig(dim=dim, codebook_sizes=tuple(codebook_sizes), seed=seed)).eval()
    peer = _peer_like(ours)
    x_ND = torch.randn(n_vectors, dim, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        ours_encode_s = _best_seconds(lambda: ours.encode(x_ND), repeats)
        ours_forward_s = _best_seconds(lambda: ours(x_ND), repeats)
        peer_s = _best_seconds(lambda: peer(x_ND), repeats)
        codes_NL = ours.encode(x_ND)
        peer_codes_NL = peer(x_ND)[1]
    same_NL = codes_NL == peer_codes_NL
    return {
        "dim": dim,
        "codebook_sizes": list(codebook_sizes),
        "n_vectors": n_vectors,
        "threads": torch.get_num_threads(),
        "ours_encode_vectors_per_s": round(n_vectors / ours_encode_s),
        "ours_forward_vectors_per_s": round(n_vectors / ours_forward_s),
        "peer_forward_vectors_per_s": round(n_vectors / peer_s),
        "ratio_encode_over_peer": round(peer_s / ours_encode_s, 2),
        "ratio_forward_over_peer": round(peer_s / ours_forward_s, 2),
        "code_agreement": round(float(same_NL.float().mean()), 5),
        "level0_agreement": round(float(same_NL[:, 0].float().mean()), 5),
        "quantized_max_abs_diff": float((ours.decode(codes_NL) - ours.decode(peer_codes_NL)).abs().max()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.settings:
        dim, sizes, n_vectors = SETTINGS[name]
        print(json.dumps({"setting": name, **bench_rvq(dim, sizes, n_vectors, args.repeats)}), flush=True)


if __name__ == "__main__":
    main()
