"""Training dNaViT in the report's stages (Sec. 4.1.1): SAE -> RVQ -> pixel decoder -> refiner.

1. `sae`: the encoder learns the multi-aspect alignment objective (eq. 2) by answering
   captions and VQA through a small text decoder (`dina.vision.sae_objective`): in each step,
   one random caption and every question of each image (`_step_pairs`), plus a linear
   pixel probe standing in for the pixel content a pre-trained SAE keeps (ours; see there),
   from a patch embedding (and, in tiny, an explicit pixel path) started at the patches'
   principal directions (`SemanticEncoder.init_from_patches`, ours).
2. `rvq`: encoder frozen; the projection (if trained, kind "mlp"), EMA codebooks and semantic
   decoder train on L_quant = λc L_commit + λs L_semantic (eq. 5), L_semantic = 1 − cos(ẑ, z),
   z centered and scaled with statistics of the training features (`QuantProjection`).
3. `decoder`: encoder and codebooks frozen; the pixel decoder trains on
   L_dec = λ1 L_pixel + λ2 L_percep + λ3 L_align (eq. 6). No pretrained perceptual network
   can be downloaded, so L_percep is 1 − SSIM (structure and contrast at 11-px scale) and
   L_align is 1 − cos between the frozen SAE's features of the reconstruction and of the
   original: a feature loss through the only trained vision network we have, which also
   pushes reconstructions to keep what the SAE considers meaningful (eq. 1).
4. `refiner`: everything else frozen; the flow refiner learns the residual the decoder
   leaves (`dina.vision.refiner`), on random token-aligned crops.

Frozen stages' outputs (features, code embeddings, decoder images) are computed once and
cached. Batches and crops depend only on (seed, stage, step), so `--resume` continues the
exact same curve. Departure: the decoder trains on random crops of at most `crop_tokens`²
tokens (the ViT's 2-D RoPE is relative, so it decodes whole images at inference) to fit
the CPU budget.

Shapes: T tokens, F SAE feature dim, C code dim.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim

from dina.errors import BadInputFile
from dina.io.atomic import ensure_dir, write_json
from dina.training.loop import StagedPlan, StagePlan, StageRunner, batch_indices, freeze, unfreeze
from dina.training.metrics import MetricsLog
from dina.vision.config import VisionTokenizerConfig
from dina.vision.data import ImageRecord, load_images
from dina.vision.encoder import SemanticEncoder
from dina.vision.preprocess import pack_pixels
from dina.vision.sae_objective import (
    AnswerDecoder,
    AnswerDecoderConfig,
    PixelProbe,
    WordVocab,
    answer_loss,
    batch_qa,
    encode_qa,
)
from dina.vision.tokenizer import VisionTokenizer

STAGES = ("sae", "rvq", "decoder", "refiner")
CAPTION_QUESTION = "describe the image."


@dataclass(frozen=True, kw_only=True)
class VisionTrainPlan(StagedPlan):
    """Steps, batch sizes and loss weights of the four stages."""

    stages: ClassVar[tuple[str, ...]] = STAGES

    sae: StagePlan = field(default_factory=lambda: StagePlan(steps=400, batch_size=16, lr=1e-3))
    # RVQ: the EMA codebooks were still settling at 400 steps (commitment 0.212; 0.192 at 1,200). An A/B on
    # the same frozen SAE, 100 held-out images: 1,600 steps gave judge 0.50 / 29.0 dB against 0.45 / 28.8.
    rvq: StagePlan = field(default_factory=lambda: StagePlan(steps=1200, batch_size=32, lr=1e-3))
    # Decoder: 600 steps, converged. A/B on the frozen SAE and codes (100 held-out images), 600 against 1,200
    # steps: judge 0.50 / 0.50, 29.12 / 29.17 dB. The full recipe (200 held out): 0.495 against 0.475, 29.0 dB
    # both, and the stage takes half the time (474 s against 897 s in the previous full run).
    decoder: StagePlan = field(default_factory=lambda: StagePlan(steps=600, batch_size=12, lr=1e-3))
    refiner: StagePlan = field(default_factory=lambda: StagePlan(steps=400, batch_size=8, lr=1e-3))
    seed: int = 0
    sae_pca_init: bool = True  # start the SAE's patch embedding from the patches' principal directions
    sae_pixel_weight: float = 4.0  # the SAE's linear pixel probe (`dina.vision.sae_objective`); 0 = eq. 2 alone
    sae_every_question: bool = True  # each SAE step asks one caption and every question of an image; False: one pair
    semantic_weight: float = 1.0
    pixel_weight: float = 1.0
    percep_weight: float = 0.2
    align_weight: float = 0.1
    crop_tokens: int = 8
    align_crops: int = 4  # L_align runs the frozen SAE on this many crops of each batch (0: no L_align)
    refiner_crop_tokens: int = 4
    checkpoint_every: int = 100


def _step_rng(plan: VisionTrainPlan, stage: str, step: int) -> tuple[random.Random, torch.Generator]:
    """Python and torch generators that depend only on (seed, stage, step)."""
    state = int(np.random.SeedSequence([plan.seed, STAGES.index(stage), step]).generate_state(1)[0])
    return random.Random(state), torch.Generator().manual_seed(state)


# ---- caches of frozen stages ------------------------------------------------------------------


@torch.no_grad()
def cache_features(model: VisionTokenizer, records: list[ImageRecord], batch: int = 16) -> list[torch.Tensor]:
    """Frozen SAE features per image, (h·w, F)."""
    model.encoder.eval()
    out: list[torch.Tensor] = []
    for i in range(0, len(records), batch):
        packed = model.preprocess([r.rgb for r in records[i : i + batch]])
        feats = model.features(packed).features_ND
        out += list(torch.split(feats, [h * w for h, w in packed.grid_hw]))
    return out


@torch.no_grad()
def cache_codes(model: VisionTokenizer, features: list[torch.Tensor]) -> list[torch.Tensor]:
    """Frozen quantized code embeddings per image, (h·w, C)."""
    model.quant_proj.eval()
    model.rvq.eval()
    return [model.quantized_embeddings(z) for z in features]


# ---- stage losses ------------------------------------------------------------------------------


def _qa_pairs(row: dict | None) -> list[tuple[str, str]]:
    if not row:
        return []
    pairs = [(CAPTION_QUESTION, c) for c in row.get("captions", [])]
    return pairs + [(q["question"], str(q["answer"])) for q in row.get("qa", [])]


def _step_pairs(row: dict | None, rng: random.Random, every_question: bool) -> list[tuple[str, str]]:
    """The (question, answer) pairs one SAE step asks of an image: one random pair, or one random
    caption and every VQA question (eq. 2 over all the aspects the image is annotated with)."""
    pairs = _qa_pairs(row)
    if not pairs or not every_question:
        return [rng.choice(pairs)] if pairs else []
    captions = [p for p in pairs if p[0] == CAPTION_QUESTION]
    return ([rng.choice(captions)] if captions else []) + [p for p in pairs if p[0] != CAPTION_QUESTION]


def _answer_ce(decoder, vocab, keys, key_mask, asked: list[tuple[int, tuple[str, str]]]) -> torch.Tensor:
    """The answer decoder's cross-entropy on (image index, (question, answer)) pairs."""
    ids, mask = batch_qa([encode_qa(vocab, *pair, decoder.config.max_text) for _, pair in asked])
    owner = torch.tensor([i for i, _ in asked])
    return answer_loss(decoder(ids, keys, key_mask, owner), ids, mask)


def sae_loss_fn(model, decoder, probe, vocab, records, plan) -> Callable[[int], dict[str, torch.Tensor]]:
    """L_SAE (eq. 2): answer captions and questions of each image from the encoder's features
    (`_step_pairs`), plus `sae_pixel_weight` × the linear pixel probe's error (generative
    sufficiency, eq. 1)."""

    def loss(step: int) -> dict[str, torch.Tensor]:
        rng, _ = _step_rng(plan, "sae", step)
        batch = [records[i] for i in batch_indices(len(records), plan.sae.batch_size, step, plan.seed)]
        packed = model.preprocess([r.rgb for r in batch])
        z = model.features(packed).features_ND
        feats = torch.split(z, [h * w for h, w in packed.grid_hw])
        keys, key_mask = decoder.image_keys(list(feats), list(packed.grid_hw))
        asked = [(i, pair) for i, r in enumerate(batch) for pair in _step_pairs(r.row, rng, plan.sae_every_question)]
        ce = _answer_ce(decoder, vocab, keys, key_mask, asked) if asked else z.new_zeros(())
        pixel = probe.loss(z, packed.patches_NP)
        total = ce + plan.sae_pixel_weight * pixel
        return {"loss": total, "answer_ce": ce.detach(), "pixel_probe": pixel.detach()}

    return loss


def rvq_loss_fn(model, features, plan) -> Callable[[int], dict[str, torch.Tensor]]:
    """L_quant = λc L_commit + λs (1 − cos(semantic_decoder(ẑ), z)) (eq. 5) on cached SAE features,
    z centered and scaled (`QuantProjection.standardize`)."""

    def loss(step: int) -> dict[str, torch.Tensor]:
        idx = batch_indices(len(features), plan.rvq.batch_size, step, plan.seed)
        z = torch.cat([features[i] for i in idx])
        out = model.quantize(z)
        semantic = 1 - model.quant_proj.standardized_cosine(model.semantic_decoder(out.quantized_ND), z).mean()
        total = out.commit_loss + plan.semantic_weight * semantic
        usage = out.usage_L.mean()
        return {"loss": total, "commit": out.commit_loss.detach(), "semantic": semantic.detach(), "usage": usage}

    return loss


def start_from_patches(model: VisionTokenizer, encoder: SemanticEncoder, records: list[ImageRecord]) -> None:
    """The SAE's data-dependent start (`SemanticEncoder.init_from_patches`) from the patches of
    about 256 evenly spaced training images (preprocessed as the tokenizer does)."""
    sample = [r.rgb for r in records[:: max(1, len(records) // 256)]]
    encoder.init_from_patches(model.preprocess(sample).patches_NP)


def _crop(grid: tuple[int, int], max_tokens: int, rng: random.Random) -> tuple[int, int, int, int]:
    """A random token-aligned crop (top, left, h, w) of at most max_tokens per side."""
    h, w = min(grid[0], max_tokens), min(grid[1], max_tokens)
    return rng.randrange(grid[0] - h + 1), rng.randrange(grid[1] - w + 1), h, w


def _align_loss(model: VisionTokenizer, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """L_align = 1 − cos(SAE(x̂), SAE(x)) over the tokens of the given crops; 0 without crops."""
    if not preds:
        return torch.zeros(())
    f_pred = model.features(pack_pixels(preds, model.config.preprocess)).features_ND
    with torch.no_grad():
        f_true = model.features(pack_pixels(targets, model.config.preprocess)).features_ND
    return 1 - F.cosine_similarity(f_pred, f_true, dim=-1).mean()


def decoder_loss_fn(model, codes, pixels, plan) -> Callable[[int], dict[str, torch.Tensor]]:
    """L_dec = λ1 (L1 + MSE) + λ2 (1 − SSIM) + λ3 (1 − cos(SAE(x̂), SAE(x))) (eq. 6) on random crops;
    L_align on the first `align_crops` crops of the batch (the crops are in random order)."""
    px = model.config.token_px

    def loss(step: int) -> dict[str, torch.Tensor]:
        rng, _ = _step_rng(plan, "decoder", step)
        q_parts, grids, targets = [], [], []
        for i in batch_indices(len(codes), plan.decoder.batch_size, step, plan.seed):
            image, grid = pixels[i]
            top, left, h, w = _crop(grid, plan.crop_tokens, rng)
            q = codes[i].reshape(grid[0], grid[1], -1)[top : top + h, left : left + w]
            q_parts.append(q.reshape(h * w, -1))
            grids.append((h, w))
            targets.append(image[top * px : (top + h) * px, left * px : (left + w) * px])
        preds = model.decode_pixels(torch.cat(q_parts), grids)
        pairs = list(zip(preds, targets, strict=True))
        l1 = torch.stack([F.l1_loss(p, t) for p, t in pairs]).mean()
        mse = torch.stack([F.mse_loss(p, t) for p, t in pairs]).mean()
        ssim_v = torch.stack(
            [ssim(p.permute(2, 0, 1)[None], t.permute(2, 0, 1)[None], data_range=1.0) for p, t in pairs]
        ).mean()
        align = _align_loss(model, preds[: plan.align_crops], targets[: plan.align_crops])
        pixel = l1 + mse
        total = plan.pixel_weight * pixel + plan.percep_weight * (1 - ssim_v) + plan.align_weight * align
        return {"loss": total, "l1": l1.detach(), "mse": mse.detach(), "ssim": ssim_v.detach(), "align": align.detach()}

    return loss


def refiner_loss_fn(model, codes, pixels, decoded, plan) -> Callable[[int], dict[str, torch.Tensor]]:
    """Flow matching of the residual between the decoder's image and the original, on aligned crops."""
    px, n = model.config.token_px, plan.refiner_crop_tokens

    def loss(step: int) -> dict[str, torch.Tensor]:
        rng, gen = _step_rng(plan, "refiner", step)
        idx = [i for i in batch_indices(len(codes), plan.refiner.batch_size * 2, step, plan.seed)]
        idx = [i for i in idx if min(pixels[i][1]) >= n][: plan.refiner.batch_size] or idx[:1]
        size = min(n, *(min(pixels[i][1]) for i in idx))
        xs, ds, cs = [], [], []
        for i in idx:
            image, grid = pixels[i]
            top, left, _, _ = _crop(grid, size, rng)
            sl = (slice(top * px, (top + size) * px), slice(left * px, (left + size) * px))
            xs.append(image[sl].permute(2, 0, 1) * 2 - 1)
            ds.append(decoded[i][sl].permute(2, 0, 1) * 2 - 1)
            q = codes[i].reshape(grid[0], grid[1], -1)[top : top + size, left : left + size]
            cs.append(q.permute(2, 0, 1))
        value = model.refiner.loss(torch.stack(xs), torch.stack(ds), torch.stack(cs), generator=gen)
        return {"loss": value, "flow": value.detach()}

    return loss


# ---- the whole run ----------------------------------------------------------------------------


@torch.no_grad()
def _decode_all(model: VisionTokenizer, codes: list[torch.Tensor], pixels: list) -> list[torch.Tensor]:
    model.pixel_decoder.eval()
    return [model.decode_pixels(q, [grid])[0].clamp(0, 1) for q, (_, grid) in zip(codes, pixels, strict=True)]


def train_vision(
    data: str | Path,
    out: str | Path,
    config: VisionTokenizerConfig,
    plan: VisionTrainPlan,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> VisionTokenizer:
    """Train all four stages on the images of `data`; writes `out/tokenizer` (save_pretrained) and metrics."""
    out = ensure_dir(out)
    if not resume and (out / "metrics.jsonl").exists():
        raise BadInputFile(f"{out} already holds a training run: pass --resume to continue it, or choose another --out")
    torch.manual_seed(plan.seed)
    records = load_images(data)
    if not any(_qa_pairs(r.row) for r in records):
        raise BadInputFile(f"{data} has no captions or questions: the SAE stage needs a ShapesWorld manifest")
    config.save(out)
    write_json(out / "plan.json", dataclasses.asdict(plan))
    model = VisionTokenizer(config)
    vocab = WordVocab.build([t for r in records for pair in _qa_pairs(r.row) for t in pair])
    vocab.save(out / "vocab.json")
    answer = AnswerDecoder(AnswerDecoderConfig(vocab_size=len(vocab), feature_dim=config.sae.out_dim))
    probe = PixelProbe(config.sae.out_dim, config.sae.merge**2 * config.sae.patch_dim)
    modules = {"tokenizer": model, "answer_decoder": answer, "pixel_probe": probe}
    metrics = MetricsLog(out / "metrics.jsonl")
    stage = StageRunner(
        tag="vision", out=out, modules=modules, plan=plan, metrics=metrics, resume=resume, progress=progress, log=log
    )

    if plan.sae_pca_init:  # before the first step; a resumed run overwrites it from its checkpoint
        start_from_patches(model, model.encoder, records)
    stage("sae", [model.encoder, answer, probe], sae_loss_fn(model, answer, probe, vocab, records, plan))
    freeze(model.encoder, answer, probe)
    features = cache_features(model, records)
    model.quant_proj.set_statistics(torch.cat(features))
    stage("rvq", [model.quant_proj, model.rvq, model.semantic_decoder], rvq_loss_fn(model, features, plan))
    freeze(model.quant_proj, model.rvq, model.semantic_decoder)
    codes = cache_codes(model, features)
    pixels = [model.resized(r.rgb) for r in records]
    stage("decoder", [model.pixel_decoder], decoder_loss_fn(model, codes, pixels, plan))
    freeze(model.pixel_decoder)
    decoded = _decode_all(model, codes, pixels)
    stage("refiner", [model.refiner], refiner_loss_fn(model, codes, pixels, decoded, plan))
    model.eval()
    unfreeze(model)
    model.save_pretrained(out / "tokenizer")
    log(f"[vision] wrote {out / 'tokenizer'}")
    return model
