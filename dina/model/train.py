"""Training the native model in stages: `text`, `prealign`, `pretrain`, `sft` (report Sec. 4.1,
4.1.3, Table 7).

One invocation trains one stage; `--init` starts it from an earlier stage's model (and its text
tokenizer, so every stage sees the same ids). The tokenizers are always frozen: their codes are
computed once (`dina.model.data`).

- `text`: the language model the report starts from (a pretrained LongCat-Flash-Lite), here
  trained on the worlds' text; everything trains (only text rows receive gradient).
- `prealign`: the backbone and the LM head are frozen; the multimodal embeddings (the audio and
  visual rows of the shared table: the text rows' gradient is masked), the Pre-Buffer and both
  DepthTransformers train.
- `pretrain`, `sft`: everything trains.

AdamW with warm-up and cosine decay, gradient clipping and fp32 come from
`dina.training.loop.run_stage`, as do the atomic checkpoints every `checkpoint_every` steps and
exact resumption. A step's batch is a function of (seed, stage, step) only, and the MoE's
correction biases are buffers in the checkpoint, so a resumed run repeats the uninterrupted
curve exactly. Each metrics row holds the loss per head and per level, per format
(`loss/<format>`), tokens/s, the learning rate, and per layer and modality the selections of
every expert (`moe/<layer>`, rows text, image, audio; the data of the report's Fig. 11) with
each modality's share routed to zero experts.

Departure: the `text` stage stands in for the pretrained LongCat-Flash-Lite; on a randomly
initialized trunk (no `--init`), `prealign` would align the codes to a model that knows nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dina.audio.tokenizer import AudioTokenizer
from dina.config import DinaConfig
from dina.config_io import ConfigBase
from dina.errors import BadArgument, BadConfig, BadInputFile
from dina.io.atomic import ensure_dir, write_json
from dina.model.batch import collate
from dina.model.data import STAGE_MIXTURES, STAGES, Corpus, DocumentSampler, corpus_texts, load_corpus
from dina.model.native import NativeModel
from dina.sequence.document import MODALITIES
from dina.text.bpe import FILE_NAME as TEXT_FILE
from dina.text.bpe import TextTokenizer
from dina.training import loop
from dina.training.checkpoint import load_checkpoint
from dina.training.loop import StagePlan, freeze
from dina.training.metrics import MetricsLog
from dina.vision.tokenizer import VisionTokenizer


@dataclass(frozen=True, kw_only=True)
class ModelTrainPlan(ConfigBase):
    """One stage's schedule; `budget` is the number of tokens packed into each step."""

    stage: str
    steps: int
    budget: int = 1024
    lr: float = 2e-3
    warmup: int = 30
    weight_decay: float = 0.1
    clip: float = 1.0
    min_lr_ratio: float = 0.1
    seed: int = 0
    checkpoint_every: int = 100
    mixture: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise BadArgument(f"unknown stage {self.stage!r}; choose one of {', '.join(STAGES)}")
        if min(self.steps, self.budget, self.checkpoint_every) < 1:
            raise BadArgument("steps, budget and checkpoint_every must be >= 1")

    @property
    def schedule(self) -> StagePlan:
        return StagePlan(
            steps=self.steps,
            batch_size=self.budget,
            lr=self.lr,
            warmup=min(self.warmup, self.steps // 2),
            weight_decay=self.weight_decay,
            clip=self.clip,
            min_lr_ratio=self.min_lr_ratio,
        )


def default_plan(stage: str, *, steps: int | None = None, seed: int = 0) -> ModelTrainPlan:
    """The `tiny` schedules: the text model, a brief pre-alignment at a high rate, pre-training
    longest, then SFT."""
    base = {"text": (300, 3e-3), "prealign": (200, 3e-3), "pretrain": (800, 2e-3), "sft": (300, 1e-3)}
    if stage not in base:
        raise BadArgument(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    default_steps, lr = base[stage]
    return ModelTrainPlan(stage=stage, steps=steps or default_steps, lr=lr, seed=seed, mixture=STAGE_MIXTURES[stage])


def _difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first path at which two JSON values differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} there, {b!r} now"


def _check_resume(out: Path, config: DinaConfig, plan: ModelTrainPlan) -> None:
    current: ConfigBase
    for name, current in (("config.json", config), ("plan.json", plan)):
        if not (out / name).is_file():
            raise BadInputFile(f"--resume: {out} holds no {name}; it was not written by `dina train model`")
        diff = _difference(type(current).load(out, name).to_dict(), current.to_dict())
        if diff:
            raise BadConfig(f"--resume: {out} was written by another {name.removesuffix('.json')} ({diff})")


def _fingerprint(*dirs: Path) -> str:
    h = hashlib.sha256()
    for d in dirs:
        for f in sorted(d.glob("*.safetensors")):
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def with_tokenizers(config: DinaConfig, vision: VisionTokenizer, audio: AudioTokenizer) -> DinaConfig:
    """The system config with the tokenizers' own configs; refused if their codebooks disagree with
    the vocabulary (the ids would land in the wrong rows)."""
    for name, tok, sizes in (
        ("vision", vision, config.vocab.visual_codebook_sizes),
        ("audio", audio, config.vocab.audio_codebook_sizes),
    ):
        if tuple(tok.config.codebook_sizes) != tuple(sizes):
            raise BadConfig(
                f"the {name} tokenizer's codebooks {tuple(tok.config.codebook_sizes)} differ from the "
                f"model vocabulary's {tuple(sizes)}"
            )
    return dataclasses.replace(config, vision=vision.config, audio=audio.config)


def text_tokenizer(corpus: Corpus, config: DinaConfig, sources: Sequence[Path | None]) -> TextTokenizer:
    """The first of `sources` that holds a tokenizer.json, else a BPE trained on the corpus text."""
    for source in sources:
        if source is not None and (source / TEXT_FILE).is_file():
            return TextTokenizer.load(source, config.vocab)
    return TextTokenizer.train(corpus_texts(corpus), config.vocab)


def prealign_hooks(model: NativeModel) -> list[torch.utils.hooks.RemovableHandle]:
    """Freeze the text rows of the shared table by zeroing their gradient (no decay either:
    the table is in the optimizer's no-decay group)."""
    n_text = model.cfg.vocab.audio_offset

    def mask(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[:n_text] = 0
        return grad

    return [model.embedding.embed_tokens.weight.register_hook(mask)]


def trainable_modules(model: NativeModel, stage: str) -> list[nn.Module]:
    """Sec. 4.1: pre-align trains the multimodal embeddings, the Pre-Buffer and the depth heads."""
    if stage == "prealign":
        freeze(model)
        parts: list[nn.Module] = [model.embedding, model.visual_head, model.audio_head]
        for m in parts:
            for p in m.parameters():
                p.requires_grad_(True)
        return parts
    for p in model.parameters():
        p.requires_grad_(True)
    return [model]


def no_decay_parameters(model: nn.Module) -> set[nn.Parameter]:
    """Embeddings, norms and biases (the usual AdamW exemptions)."""
    out: set[nn.Parameter] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if p.ndim < 2 or isinstance(module, nn.Embedding) or name.endswith("bias"):
                out.add(p)
    return out


def step_metrics(model: NativeModel, out: Any, batch: Any, too_long: int) -> dict[str, Any]:
    """The metrics row of one step (module docstring)."""
    row: dict[str, Any] = {"loss": out.loss, **out.parts, "tokens": batch.n_tokens, "too_long": too_long}
    for i, name in enumerate(batch.formats):
        count = int(out.format_count_F[i])
        if count:
            row[f"loss/{name}"] = round(float(out.format_loss_F[i]) / count, 6)
    n_routed = model.cfg.backbone.n_experts
    for layer, counts_MX in enumerate(out.moe_counts_YMX):
        row[f"moe/{layer}"] = counts_MX.tolist()
    total_MX = out.moe_counts_YMX.sum(0)
    for m, name in enumerate(MODALITIES):
        selections = int(total_MX[m].sum())
        if selections:
            row[f"zero_share/{name}"] = round(float(total_MX[m, n_routed:].sum()) / selections, 4)
    return row


def curve_summary(rows: Sequence[dict[str, Any]], window: int = 50) -> dict[str, Any]:
    """Each loss's mean over the first and the last `window` steps in which it occurs (per head,
    per level, per format), and the MoE's routing over the last `window` steps: per modality the
    share of selections each expert received and the share sent to zero experts."""
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k.endswith("_loss") or k.startswith("loss/")]
    keys += [k for k in dict.fromkeys(k for r in rows for k in r) if k[:-1].endswith(("visual_l", "audio_l"))]
    losses = {}
    for key in ["loss", *keys]:
        values = [float(r[key]) for r in rows if key in r]
        if values:
            w = min(window, max(len(values) // 2, 1))
            losses[key] = {
                "first": round(sum(values[:w]) / w, 4),
                "last": round(sum(values[-w:]) / w, 4),
                "n": len(values),
            }
    tail = rows[-window:]
    moe: dict[str, Any] = {}
    layers = sorted(k for k in (tail[0] if tail else {}) if k.startswith("moe/"))
    for key in layers:
        total = torch.tensor([r[key] for r in tail]).sum(0).double()  # (modalities, experts)
        share = total / total.sum(1, keepdim=True).clamp(min=1)
        moe[key] = {m: [round(float(v), 4) for v in share[i]] for i, m in enumerate(MODALITIES) if total[i].sum() > 0}
    return {"window": window, "losses": losses, "moe_share_last_window": moe}


def train_model(
    data: Sequence[str | Path],
    out: str | Path,
    config: DinaConfig,
    plan: ModelTrainPlan,
    *,
    vision_tokenizer: str | Path,
    audio_tokenizer: str | Path,
    init: str | Path | None = None,
    text_tokenizer_dir: str | Path | None = None,
    resume: bool = False,
    on_missing: str = "skip",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> NativeModel:
    """Train one stage; writes `out/model` (save_pretrained), `out/text`, metrics and checkpoints."""
    out = ensure_dir(out)
    if not resume and (out / "metrics.jsonl").exists():
        raise BadInputFile(f"{out} already holds a training run: pass --resume to continue it, or choose another --out")
    vision_dir, audio_dir = Path(vision_tokenizer), Path(audio_tokenizer)
    vision = VisionTokenizer.from_pretrained(vision_dir)
    audio = AudioTokenizer.from_pretrained(audio_dir)
    config = with_tokenizers(config, vision, audio)
    init_dir = Path(init) if init else None
    if init_dir is not None:
        init_config = DinaConfig.load(init_dir / "model")
        diff = _difference(init_config.to_dict(), config.to_dict())
        if diff:
            raise BadConfig(f"--init {init_dir} was trained with another config ({diff})")
    if resume:
        _check_resume(out, config, plan)
    corpus = load_corpus(
        data,
        vision=vision,
        audio=audio,
        cache=ensure_dir(out / "data"),
        cache_key=_fingerprint(vision_dir, audio_dir),
        reuse=[init_dir / "data"] if init_dir else [],
        on_missing=on_missing,
        log=log,
    )
    log(
        f"[model] {len(corpus.images)} images, {len(corpus.speech)} clips, {len(corpus.texts)} texts; skipped {corpus.skipped}"
    )
    given = Path(text_tokenizer_dir) if text_tokenizer_dir else None
    if given is not None and not (given / TEXT_FILE).is_file():
        raise BadInputFile(f"--text-tokenizer {given} holds no {TEXT_FILE}")
    # A resumed run keeps its own ids; a later stage keeps its --init's.
    tok = text_tokenizer(
        corpus, config, [given, out / "text" if resume else None, init_dir / "model" if init_dir else None]
    )
    tok.save(ensure_dir(out / "text"))
    config.save(out)
    plan.save(out, "plan.json")

    torch.manual_seed(plan.seed)
    model = NativeModel(config)
    if init_dir is not None:
        load_checkpoint(init_dir / "model", {"model": model}, restore_rng=False)
    sampler = DocumentSampler(corpus, tok, plan.mixture, budget=plan.budget, seed=plan.seed, stage=plan.stage)
    trainable = trainable_modules(model, plan.stage)
    hooks = prealign_hooks(model) if plan.stage == "prealign" else []

    def loss_fn(step: int) -> dict[str, Any]:
        docs, too_long = sampler.batch(step)
        batch = collate(docs, sampler.formats)
        output = model(batch)
        return step_metrics(model, output, batch, too_long)

    log(f"[model {plan.stage}] {plan.steps} steps of {plan.budget} tokens; formats {', '.join(sampler.formats)}")
    loop.run_stage(  # through the module, so tests can interrupt it (`crash_in_stage`)
        plan.stage,
        modules={"model": model},
        trainable=trainable,
        loss_fn=loss_fn,
        plan=plan.schedule,
        ckpt_dir=out / "ckpt",
        metrics=MetricsLog(out / "metrics.jsonl"),
        resume=resume,
        checkpoint_every=plan.checkpoint_every,
        progress=progress,
        no_decay=no_decay_parameters(model),
    )
    for h in hooks:
        h.remove()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    model.save_pretrained(out / "model")
    tok.save(out / "model")
    # The model directory is self-contained: generation needs the tokenizers it was trained with.
    vision.save_pretrained(out / "model" / "vision")
    audio.save_pretrained(out / "model" / "audio")
    write_json(out / "model" / "data.json", {"skipped": corpus.skipped, "formats": list(sampler.formats)})
    write_json(out / "summary.json", curve_summary(MetricsLog(out / "metrics.jsonl").rows()))
    return model
