"""Training the audio tokenizer in the report's three stages (Sec. 4.1.2), then its refiner and vocoder.

1. `warmup` (stage 1, decoder warm-up): the decoder learns mel reconstruction from the
   continuous 12.5 Hz tokens, no quantizer. The report keeps its pretrained encoder and LLM
   frozen here. With the frozen Whisper tiny.en front end (`dina.audio.whisper_frontend`) the
   encoder is frozen as in the report; dina's own encoder ("trained" front end) starts from
   nothing, so it trains too. Our transcriber is a small random language model, not a
   pretrained LLM, so it trains in stages 1 and 2 (departure: the report's LLM is frozen and
   pretrained; none can be downloaded here).
2. `joint` (stage 2, semantic–acoustic joint training): the residual quantizer is switched on
   and everything trains on L_audio = λ1 L_recon + λ2 L_commit + λ3 L_llm (eq. 8), where
   L_recon is L1 + MSE on the log-mel, L_commit the RVQ's commitment loss (EMA codebooks), and
   L_llm the cross-entropy of the transcriber writing the sentence from the *quantized* tokens
   (`dina.vision.sae_objective.AnswerDecoder`, cross-attention to the tokens at their position
   in the clip), so the codes must carry what was said.
3. `decoder` (stage 3, decoder fine-tuning): encoder, bridge and codebooks frozen; the decoder
   fine-tunes on mel reconstruction from the final codes. (The report turns the decoder into a
   DiT at 24 kHz here; ours stays the causal transformer, and its flow-matching stage is the
   separate refiner below.)
4. `refiner`: the flow-matching mel refiner learns the residual the decoder leaves
   (`dina.audio.refiner`), on random token-aligned crops of cached decoder outputs. (At the
   tiny plan's 300 steps it does not help; `tiny` decodes without it by default.)
5. `vocoder`: the neural vocoder learns log-mel -> wave on random one-second segments of the
   training speech (`dina.audio.vocoder`); it does not depend on the codes.

Frozen stages' outputs (Whisper features, code embeddings, coarse mels) are computed once and
cached. Batches, crops and noise depend only on (seed, stage, step), so `--resume` continues
the exact same curve. Clips longer than one 30 s encoder window are cut to it for training.

Shapes: B clips, N tokens (12.5 Hz), F encoder frames (50 Hz), L mel frames (100 Hz), M mel bins,
W token width.
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

from dina.audio.config import AudioTokenizerConfig
from dina.audio.data import load_speech
from dina.audio.encoder import MEL_PER_TOKEN, SAMPLES_PER_TOKEN, pad_to_tokens
from dina.audio.tokenizer import SAMPLE_RATE, AudioTokenizer
from dina.audio.vocoder import vocoder_loss
from dina.errors import BadInputFile
from dina.io.atomic import ensure_dir, write_json
from dina.training.loop import StagedPlan, StagePlan, StageRunner, batch_indices, freeze, unfreeze
from dina.training.metrics import MetricsLog
from dina.vision.sae_objective import (
    AnswerDecoder,
    AnswerDecoderConfig,
    WordVocab,
    answer_loss,
    batch_qa,
    encode_qa,
)

STAGES = ("warmup", "joint", "decoder", "refiner", "vocoder")
TRANSCRIBE = "transcribe the speech."


@dataclass(frozen=True, kw_only=True)
class TrainClip:
    """One training utterance: its wave padded to whole tokens, log-mel and transcript."""

    wave: torch.Tensor  # (T,) 16 kHz, T a multiple of 1280
    mel_ML: torch.Tensor  # (M, T / 160)
    text: str

    @property
    def tokens(self) -> int:
        return self.mel_ML.shape[1] // MEL_PER_TOKEN


def training_clips(data: str | Path, model: AudioTokenizer) -> list[TrainClip]:
    """The clips of a speech manifest (`dina.audio.data`), at most one 30 s encoder window each,
    with their log-mel from the tokenizer's front end."""
    clips = load_speech(data)  # an empty manifest is already a BadManifest
    window = model.config.encoder.window_tokens * SAMPLES_PER_TOKEN
    out = []
    for clip in clips:
        wave = torch.from_numpy(clip.wave[:window].copy())
        out.append(TrainClip(wave=pad_to_tokens(wave), mel_ML=model.mel_windows(wave)[0], text=clip.text))
    return out


@dataclass(frozen=True, kw_only=True)
class AudioTrainPlan(StagedPlan):
    """Steps, batch sizes and loss weights of the five stages."""

    stages: ClassVar[tuple[str, ...]] = STAGES

    warmup: StagePlan = field(default_factory=lambda: StagePlan(steps=300, batch_size=16, lr=1e-3))
    joint: StagePlan = field(default_factory=lambda: StagePlan(steps=1200, batch_size=16, lr=1e-3))
    decoder: StagePlan = field(default_factory=lambda: StagePlan(steps=400, batch_size=16, lr=5e-4))
    refiner: StagePlan = field(default_factory=lambda: StagePlan(steps=300, batch_size=16, lr=1e-3))
    vocoder: StagePlan = field(default_factory=lambda: StagePlan(steps=2000, batch_size=8, lr=2e-3))
    seed: int = 0
    recon_weight: float = 1.0  # λ1
    commit_weight: float = 0.25  # λ2 (times the RVQ's own commitment_weight)
    llm_weight: float = 0.3  # λ3
    refiner_crop_tokens: int = 16
    vocoder_segment: int = 16_000  # samples per vocoder training segment (1 s)
    checkpoint_every: int = 100


def _step_rng(plan: AudioTrainPlan, stage: str, step: int) -> tuple[random.Random, torch.Generator]:
    """Python and torch generators that depend only on (seed, stage, step)."""
    state = int(np.random.SeedSequence([plan.seed, 100 + STAGES.index(stage), step]).generate_state(1)[0])
    return random.Random(state), torch.Generator().manual_seed(state)


# ---- batches --------------------------------------------------------------------------------


def _pad_stack(items: list[torch.Tensor], dim: int) -> torch.Tensor:
    """Zero-pad tensors along `dim` to the longest and stack them."""
    longest = max(t.shape[dim] for t in items)
    padded = []
    for t in items:
        pad = [0, 0] * (t.ndim - 1 - dim) + [0, longest - t.shape[dim]]
        padded.append(F.pad(t, pad))
    return torch.stack(padded)


def _continuous_tokens(
    model: AudioTokenizer, clips: list[TrainClip], idx: list[int], frozen_feats: list[torch.Tensor] | None
) -> torch.Tensor:
    """(B, N, W) continuous tokens of a padded batch (the frozen front end's features come from the cache)."""
    if frozen_feats is not None:
        return model.encoder.bridge(_pad_stack([frozen_feats[i] for i in idx], 0))
    mel = _pad_stack([clips[i].mel_ML for i in idx], 1)
    lengths = torch.tensor([clips[i].mel_ML.shape[1] for i in idx])
    return model.encoder(mel, lengths)


def _token_mask(clips: list[TrainClip], idx: list[int], n: int) -> torch.Tensor:
    return torch.arange(n)[None] < torch.tensor([clips[i].tokens for i in idx])[:, None]


def recon_loss(mel_hat_BML: torch.Tensor, clips: list[TrainClip], idx: list[int]) -> dict[str, torch.Tensor]:
    """L1 and MSE against the batch's log-mels over the real frames of each clip (padding excluded)."""
    mel_BML = _pad_stack([clips[i].mel_ML for i in idx], 1)
    frames_B = torch.tensor([clips[i].mel_ML.shape[1] for i in idx])
    mask = (torch.arange(mel_BML.shape[2])[None] < frames_B[:, None])[:, None, :].float()
    count = mask.sum() * mel_BML.shape[1]
    diff = (mel_hat_BML - mel_BML) * mask
    return {"l1": diff.abs().sum() / count, "mse": diff.pow(2).sum() / count}


def transcript_loss(
    transcriber: AnswerDecoder, vocab: WordVocab, z_BNW: torch.Tensor, tokens_B: list[int], texts: list[str]
) -> torch.Tensor:
    """L_llm: cross-entropy of the transcriber writing each clip's sentence from its tokens."""
    keys, key_mask = transcriber.image_keys(
        [z[:n] for z, n in zip(z_BNW, tokens_B, strict=True)], [(1, n) for n in tokens_B]
    )
    ids, mask = batch_qa([encode_qa(vocab, TRANSCRIBE, text, transcriber.config.max_text) for text in texts])
    return answer_loss(transcriber(ids, keys, key_mask), ids, mask)


# ---- stage losses ---------------------------------------------------------------------------


def tokenizer_loss_fn(model, transcriber, vocab, clips, frozen_feats, plan, *, quantize: bool) -> Callable:
    """Stage 1 (quantize False: λ1 L_recon + λ3 L_llm on continuous tokens) or stage 2 (eq. 8)."""
    stage = "joint" if quantize else "warmup"

    def loss(step: int) -> dict[str, torch.Tensor]:
        idx = batch_indices(len(clips), getattr(plan, stage).batch_size, step, plan.seed)
        z_BNW = _continuous_tokens(model, clips, idx, frozen_feats)
        N = z_BNW.shape[1]
        parts: dict[str, torch.Tensor] = {}
        commit = z_BNW.new_zeros(())
        if quantize:
            keep_BN = _token_mask(clips, idx, N)
            out = model.rvq(z_BNW[keep_BN])
            q_BNW = torch.zeros_like(z_BNW)
            q_BNW[keep_BN] = out.quantized_ND
            z_BNW, commit = q_BNW, out.commit_loss
            parts = {"commit": commit.detach(), "usage": out.usage_L.mean(), "restarts": out.restarts_L.sum().float()}
        rec = recon_loss(model.decoder(z_BNW), clips, idx)
        llm = transcript_loss(transcriber, vocab, z_BNW, [clips[i].tokens for i in idx], [clips[i].text for i in idx])
        recon = rec["l1"] + rec["mse"]
        total = plan.recon_weight * recon + plan.commit_weight * commit + plan.llm_weight * llm
        return {
            "loss": total,
            "mel_l1": rec["l1"].detach(),
            "mel_mse": rec["mse"].detach(),
            "llm": llm.detach(),
            **parts,
        }

    return loss


def decoder_loss_fn(model, clips, emb, plan) -> Callable:
    """Stage 3: L_recon of the decoder from the frozen code embeddings."""

    def loss(step: int) -> dict[str, torch.Tensor]:
        idx = batch_indices(len(clips), plan.decoder.batch_size, step, plan.seed)
        rec = recon_loss(model.decoder(_pad_stack([emb[i] for i in idx], 0)), clips, idx)
        return {"loss": rec["l1"] + rec["mse"], "mel_l1": rec["l1"].detach(), "mel_mse": rec["mse"].detach()}

    return loss


def refiner_loss_fn(model, clips, emb, coarse, plan) -> Callable:
    """Flow matching of the residual (original − coarse mel) on token-aligned crops of equal length."""

    def loss(step: int) -> dict[str, torch.Tensor]:
        rng, gen = _step_rng(plan, "refiner", step)
        idx = batch_indices(len(clips), plan.refiner.batch_size, step, plan.seed)
        size = min(plan.refiner_crop_tokens, *(clips[i].tokens for i in idx))
        targets, coarses, embs = [], [], []
        for i in idx:
            s = rng.randrange(clips[i].tokens - size + 1)
            frames = slice(s * MEL_PER_TOKEN, (s + size) * MEL_PER_TOKEN)
            targets.append(clips[i].mel_ML[:, frames])
            coarses.append(coarse[i][:, frames])
            embs.append(emb[i][s : s + size])
        value = model.refiner.loss(torch.stack(targets), torch.stack(coarses), torch.stack(embs), generator=gen)
        return {"loss": value, "flow": value.detach()}

    return loss


def vocoder_loss_fn(model, clips, plan) -> Callable:
    """The vocoder's loss on random `vocoder_segment`-sample segments of the training speech."""

    def loss(step: int) -> dict[str, torch.Tensor]:
        rng, _ = _step_rng(plan, "vocoder", step)
        segments = []
        for i in batch_indices(len(clips), plan.vocoder.batch_size, step, plan.seed):
            wave = clips[i].wave
            if wave.shape[0] < plan.vocoder_segment:
                wave = F.pad(wave, (0, plan.vocoder_segment - wave.shape[0]))
            s = rng.randrange(wave.shape[0] - plan.vocoder_segment + 1)
            segments.append(wave[s : s + plan.vocoder_segment])
        return vocoder_loss(model.vocoder, torch.stack(segments), model.front_end)

    return loss


# ---- caches of frozen stages ----------------------------------------------------------------


@torch.no_grad()
def cache_frozen_features(model: AudioTokenizer, clips: list[TrainClip]) -> list[torch.Tensor] | None:
    """The frozen front end's (4N, D) features per clip; None when the encoder trains."""
    if model.config.encoder.front_end == "trained":
        return None
    return [model.encoder.encoder(c.mel_ML[None])[0] for c in clips]


@torch.no_grad()
def cache_code_embeddings(model: AudioTokenizer, clips, frozen_feats) -> list[torch.Tensor]:
    """(N, W) summed code embeddings per clip from the frozen encoder and codebooks."""
    model.eval()
    out = []
    for i in range(len(clips)):
        z = _continuous_tokens(model, clips, [i], frozen_feats)[0]
        out.append(model.rvq.decode(model.rvq.encode(z)))
    return out


# ---- the whole run --------------------------------------------------------------------------


def train_audio(
    data: str | Path,
    out: str | Path,
    config: AudioTokenizerConfig,
    plan: AudioTrainPlan,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> AudioTokenizer:
    """Train all five stages on the clips of `data`; writes `out/tokenizer` (save_pretrained) and metrics."""
    out = ensure_dir(out)
    if not resume and (out / "metrics.jsonl").exists():
        raise BadInputFile(f"{out} already holds a training run: pass --resume to continue it, or choose another --out")
    torch.manual_seed(plan.seed)
    model = AudioTokenizer(config)
    clips = training_clips(data, model)
    log(f"[audio] {len(clips)} clips, {sum(c.wave.shape[0] for c in clips) / SAMPLE_RATE:.0f} s")
    config.save(out)
    write_json(out / "plan.json", dataclasses.asdict(plan))
    vocab = WordVocab.build([TRANSCRIBE, *(c.text for c in clips)])
    vocab.save(out / "vocab.json")
    transcriber = AnswerDecoder(AnswerDecoderConfig(vocab_size=len(vocab), feature_dim=config.rvq.dim))
    modules = {"tokenizer": model, "transcriber": transcriber}
    metrics = MetricsLog(out / "metrics.jsonl")
    stage = StageRunner(
        tag="audio", out=out, modules=modules, plan=plan, metrics=metrics, resume=resume, progress=progress, log=log
    )

    freeze(model)
    frozen = cache_frozen_features(model, clips)
    unfreeze(model.encoder, model.decoder)
    stage(
        "warmup",
        [model.encoder, model.decoder, transcriber],
        tokenizer_loss_fn(model, transcriber, vocab, clips, frozen, plan, quantize=False),
    )
    stage(
        "joint",
        [model.encoder, model.rvq, model.decoder, transcriber],
        tokenizer_loss_fn(model, transcriber, vocab, clips, frozen, plan, quantize=True),
    )
    freeze(model.encoder, model.rvq, transcriber)
    emb = cache_code_embeddings(model, clips, frozen)
    unfreeze(model.decoder)
    stage("decoder", [model.decoder], decoder_loss_fn(model, clips, emb, plan))
    freeze(model.decoder)
    with torch.no_grad():
        coarse = [model.decoder(e[None])[0] for e in emb]
    unfreeze(model.refiner)
    stage("refiner", [model.refiner], refiner_loss_fn(model, clips, emb, coarse, plan))
    freeze(model.refiner)
    unfreeze(model.vocoder)
    stage("vocoder", [model.vocoder], vocoder_loss_fn(model, clips, plan))
    model.eval()
    unfreeze(model)
    model.save_pretrained(out / "tokenizer")
    transcriber.eval()
    log(f"[audio] wrote {out / 'tokenizer'}")
    return model
