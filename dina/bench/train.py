"""`dina bench train`: training throughput of the `tiny` preset, its MFU, and a Mixtral peer, in one run.

1. Peak: this machine's fp32 matmul rate on `threads` threads, 2n³ / t of one square `torch.mm`.
2. Ours: `NativeModel(tiny())` on a fixed synthetic batch of `budget` tokens packed from documents
   in a realistic mix (text chat, text-to-image at 8x8 to 12x12 code grids, image understanding,
   text-guided speech of 30 to 60 frames; random codes, seeded). One step = forward, backward,
   fused AdamW step, zero_grad. Reported: tokens/s and model-FLOPs utilization (MFU) against the peak.
3. Peer: Hugging Face `transformers` `MixtralForCausalLM` of the same width, heads, expert count,
   expert width and top-k, with as many layers as make its decoder's parameters match our
   backbone's (one of our layers = 2 attention sublayers + 2 dense SwiGLU MLPs + one MoE; a
   Mixtral layer = 1 attention + 1 MoE, so 4 of its layers hold what 2 of ours hold) and our LM
   head's rows as its vocabulary; sdpa attention, fp32, its default experts implementation
   (`grouped_mm` where torch has it). It trains on one packed row of the same number of random
   tokens with the same optimizer step.
   Reported: the same figures, and ours / peer on tokens/s (goal >= 1.2).

Model FLOPs (PaLM-style MFU: the FLOPs the model needs, not those the kernels ran; no
rematerialization, embedding lookups and norms free). Training costs 6 FLOPs per matmul
parameter per token that uses it (2 forward, 4 backward), and 12·Dh·H per attended (query, key)
pair per attention sublayer (q·k and p·v, forward and backward; 6·(Dqk + Dv)·H under MLA):

    6 · Σ_tokens (matmul parameters the token uses) + 12 · Σ_sublayers H·Dh · causal pairs

Ours, per token and layer: both attention sublayers' projections, both dense MLPs, the router,
and its routed experts (3·D·H each; top-k slots that land on zero experts are free, counted
from the step's measured routing `moe_counts_YMX`); the Pre-Buffer at image positions; the LM
head only at positions with an LM label; at each position with code labels, its depth head run
over all L level positions (input projection and attention per position, each position's own
FFN slice, one classifier per level) plus its causal attention over the levels. Causal pairs
are counted per packed document, n(n+1)/2. Peer: the same rules; its LM head runs at every
position (HF computes the logits of all of them) and its one row is one document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from dina.bench import goal, median_seconds
from dina.config import DinaConfig
from dina.heads.depth import DepthTransformer
from dina.model.batch import ModelBatch, collate
from dina.model.native import NativeModel
from dina.presets import tiny
from dina.sequence.document import IGNORE, Document, DocumentBuilder, sample_delay
from dina.text.bpe import TextTokenizer
from dina.training.loop import StagePlan, make_optimizer

MFU_GOAL = 0.40
RATIO_GOAL = 1.2

SENTENCES = (
    "a red circle sits above a small blue square on a white background",
    "the green triangle moves slowly to the left of the yellow star",
    "what shape is in the top right corner of the picture",
    "there are three purple squares and one orange circle",
    "please say the following sentence in a calm voice",
    "the quick brown fox jumps over the lazy dog near the river bank",
)


def peak_matmul_flops(n: int = 2048, repeats: int = 3) -> float:
    """fp32 FLOP/s of one (n, n) @ (n, n) `torch.mm` on the current threads: 2n³ / median time."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_seconds(lambda: torch.mm(a, b), repeats)


# ---- the synthetic batch ------------------------------------------------------------------------
MIX = ("text", "chat_t2i", "chat_vqa", "chat_tts")  # the documents' formats, taken in turn


def _say(rng: np.random.Generator) -> str:
    return str(rng.choice(SENTENCES))


def _document(tok: TextTokenizer, cfg: DinaConfig, rng: np.random.Generator, fmt: str) -> Document:
    """One chat document of `fmt`: a user turn (an image for "chat_vqa"), then the assistant's
    text, generated image (8x8 to 12x12 codes) or text-guided speech (30 to 60 frames), with loss."""
    vis, aud = cfg.vocab.visual_codebook_sizes, cfg.vocab.audio_codebook_sizes
    b = DocumentBuilder(tok, fmt).special("<longcat_user>", loss=False)
    if fmt == "chat_vqa":
        h, w = rng.integers(8, 13, size=2)
        b.image_understanding(torch.from_numpy(rng.integers(0, vis, size=(h, w, len(vis)))))
    b.text(_say(rng), loss=False).special("<longcat_assistant>", loss=False)
    if fmt == "chat_t2i":
        h, w = rng.integers(8, 13, size=2)
        b.image_generation(torch.from_numpy(rng.integers(0, vis, size=(h, w, len(vis)))), loss=True)
    elif fmt == "chat_tts":
        ids = tok.encode(_say(rng))
        codes_TL = torch.from_numpy(rng.integers(0, aud, size=(int(rng.integers(30, 61)), len(aud))))
        b.text_guided_audio(ids, codes_TL, delay=sample_delay(rng, len(ids)))
    else:
        b.text(_say(rng) + " and " + _say(rng), loss=True)
    return b.special("</longcat_s>", loss=True).build()


def synthetic_batch(cfg: DinaConfig, budget: int, seed: int = 0) -> ModelBatch:
    """Documents of the mix in turn until `budget` tokens; the last one is cropped to fit exactly."""
    tok = TextTokenizer.train(SENTENCES, cfg.vocab)
    rng = np.random.default_rng(seed)
    docs: list[Document] = []
    n = 0
    while n < budget:
        doc = _document(tok, cfg, rng, MIX[len(docs) % len(MIX)])
        docs.append(doc.crop(min(len(doc), budget - n)))
        n += len(docs[-1])
    return collate(docs)


# ---- analytic model FLOPs -----------------------------------------------------------------------
def _linear_params(*modules: Any) -> int:
    """Weights of the `nn.Linear`s inside `modules` (their biases cost one add, not a multiply)."""
    return sum(int(m.weight.numel()) for root in modules for m in root.modules() if isinstance(m, nn.Linear))


def _causal_pairs(lengths: list[int]) -> int:
    return sum(n * (n + 1) // 2 for n in lengths)


def _depth_flops(head: DepthTransformer, positions: int) -> int:
    """Training FLOPs of `positions` teacher-forced depth-head calls (module docstring)."""
    levels = len(head.codebook_sizes)
    width = head.hidden_proj.weight.shape[0]
    blocks: list[Any] = list(head.blocks)
    per_level = head.hidden_proj.weight.numel() + sum(_linear_params(blk.attn) for blk in blocks)
    ffn = sum(_linear_params(blk.ffn) for blk in blocks)  # each level position uses 1/L of it
    params = levels * per_level + ffn + _linear_params(head.heads)
    attention = 12 * width * len(head.blocks) * levels * (levels + 1) // 2
    return positions * (6 * params + attention)


def our_flops(model: NativeModel, batch: ModelBatch, routed_slots_Y: list[float]) -> dict[str, float]:
    """Model FLOPs of one training step on `batch`; `routed_slots_Y`: per layer, the top-k slots
    that went to routed (not zero) experts, summed over the batch."""
    b, n = model.cfg.backbone, batch.n_tokens
    layers: list[Any] = list(model.backbone.layers)
    dense = sum(_linear_params(layer.attns, layer.mlps) + layer.moe.router.weight.numel() for layer in layers)
    expert = 3 * b.dim * b.expert_dim
    lm_rows = int((batch.lm_labels_N != IGNORE).sum())
    image_rows = int((batch.visual_codes_NL[:, 0] >= 0).sum())
    matmul = n * dense + sum(routed_slots_Y) * expert + lm_rows * model.lm_head.weight.numel()
    matmul += image_rows * _linear_params(model.embedding.pre_buffer)
    qk, v = (b.qk_nope_dim + b.qk_rope_dim, b.v_head_dim) if b.attention == "mla" else (b.head_dim, b.head_dim)
    pairs = _causal_pairs(batch.cu_seqlens.diff().tolist())
    attention = 6 * (qk + v) * b.n_heads * 2 * b.n_layers * pairs  # = 12·Dh·H per pair when qk = v = Dh
    depth = sum(
        _depth_flops(head, int((labels != IGNORE).any(1).sum()))
        for head, labels in ((model.visual_head, batch.visual_labels_NL), (model.audio_head, batch.audio_labels_NL))
    )
    total = 6 * matmul + attention + depth
    return {"flops": float(total), "active_params": matmul / n}


# ---- timing -------------------------------------------------------------------------------------
def time_steps(loss_fn: Callable[[], torch.Tensor], params: list[nn.Parameter], steps: int, repeats: int) -> float:
    """Seconds per training step (forward, backward, AdamW step, zero_grad): one warm-up run of
    `steps` steps, then the median of `repeats` runs, divided by `steps`. Both models get the
    optimizer `dina.training.loop.make_optimizer` builds (fused AdamW on fp32 CPU tensors)."""
    opt = make_optimizer(params, StagePlan(steps=1, batch_size=1, lr=1e-4))

    def run() -> None:
        for _ in range(steps):
            loss_fn().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    return median_seconds(run, repeats) / steps


def bench_ours(cfg: DinaConfig, budget: int, steps: int, repeats: int, peak: float) -> dict[str, Any]:
    """Our figures on `synthetic_batch`; expert FLOPs from the routing of every step run, averaged."""
    torch.manual_seed(0)
    model = NativeModel(cfg).train()
    batch = synthetic_batch(cfg, budget)
    slots: list[list[float]] = []

    def loss() -> torch.Tensor:
        out = model(batch)
        routed_YX = out.moe_counts_YMX.sum(1)[:, : cfg.backbone.n_experts]
        slots.append(routed_YX.sum(1).tolist())
        return out.loss

    step_s = time_steps(loss, list(model.parameters()), steps, repeats)
    routed_Y = [float(v) for v in np.mean(slots, axis=0)]
    flops = our_flops(model, batch, routed_Y)
    total_slots = batch.n_tokens * cfg.backbone.top_k * cfg.backbone.n_layers
    counts = model.parameter_counts()
    return _figures(
        params=counts["total"],
        backbone_params=counts["backbone_layers"],
        tokens=batch.n_tokens,
        step_s=step_s,
        flops=flops,
        peak=peak,
    ) | {
        "documents": len(batch.cu_seqlens) - 1,
        "zero_expert_share": 1 - sum(routed_Y) / total_slots,
    }


# ---- the peer -------------------------------------------------------------------------------------
def peer_config(cfg: DinaConfig, tokens: int, backbone_params: int) -> Any:
    """A `MixtralConfig` matched to `cfg` (module docstring): its layer count makes its decoder's
    parameters the closest to `backbone_params`, our backbone's."""
    from transformers import MixtralConfig

    b = cfg.backbone
    attention = 2 * b.dim * b.n_heads * b.head_dim + 2 * b.dim * b.n_kv_heads * b.head_dim
    layer = attention + b.n_experts * (b.dim + 3 * b.dim * b.expert_dim) + 2 * b.dim  # + router, 2 norms
    return MixtralConfig(
        vocab_size=cfg.vocab.audio_offset,
        hidden_size=b.dim,
        intermediate_size=b.expert_dim,
        num_hidden_layers=max(1, round(backbone_params / layer)),
        num_attention_heads=b.n_heads,
        num_key_value_heads=b.n_kv_heads,
        num_local_experts=b.n_experts,
        num_experts_per_tok=b.top_k,
        max_position_embeddings=max(tokens, b.max_seq_len),
        rms_norm_eps=b.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": b.rope_theta},
        use_cache=False,
        attn_implementation="sdpa",  # type: ignore[call-arg]  # a PreTrainedConfig keyword the signature omits
    )


def peer_flops(model: Any, tokens: int) -> dict[str, float]:
    """Model FLOPs of one training step of the peer on one row of `tokens` (module docstring)."""
    c = model.config
    head_dim = c.hidden_size // c.num_attention_heads
    expert = 3 * c.hidden_size * c.intermediate_size
    dense = sum(_linear_params(layer.self_attn) + layer.mlp.gate.weight.numel() for layer in model.model.layers)
    per_token = dense + c.num_hidden_layers * c.num_experts_per_tok * expert + model.lm_head.weight.numel()
    attention = 12 * c.num_attention_heads * head_dim * c.num_hidden_layers * _causal_pairs([tokens])
    return {"flops": float(6 * per_token * tokens + attention), "active_params": float(per_token)}


def bench_peer(cfg: DinaConfig, ours: dict[str, Any], steps: int, repeats: int, peak: float) -> dict[str, Any]:
    """The peer's figures on as many tokens as `ours`, its layers matched to `ours["backbone_params"]`."""
    import transformers
    from transformers import MixtralForCausalLM

    torch.manual_seed(0)
    tokens = ours["tokens"]
    model = MixtralForCausalLM(peer_config(cfg, tokens, ours["backbone_params"])).float().train()
    ids = torch.randint(0, model.config.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(0))
    step_s = time_steps(lambda: model(input_ids=ids, labels=ids).loss, list(model.parameters()), steps, repeats)
    c = model.config
    return _figures(
        params=sum(p.numel() for p in model.parameters()),
        backbone_params=sum(p.numel() for n, p in model.model.named_parameters() if not n.startswith("embed_tokens")),
        tokens=tokens,
        step_s=step_s,
        flops=peer_flops(model, tokens),
        peak=peak,
    ) | {
        "transformers": transformers.__version__,
        "config": peer_summary(c),
    }


def peer_summary(c: Any) -> dict[str, Any]:
    """The shape of the Mixtral peer, as the benchmarks report it."""
    return {
        "model": "MixtralForCausalLM",
        "layers": c.num_hidden_layers,
        "hidden": c.hidden_size,
        "heads": c.num_attention_heads,
        "kv_heads": c.num_key_value_heads,
        "experts": c.num_local_experts,
        "top_k": c.num_experts_per_tok,
        "expert_intermediate": c.intermediate_size,
        "vocab": c.vocab_size,
        "attn_implementation": c._attn_implementation,
        "experts_implementation": c._experts_implementation,
    }


def _figures(
    *, params: int, backbone_params: int, tokens: int, step_s: float, flops: dict[str, float], peak: float
) -> dict[str, Any]:
    return {
        "params": params,
        "backbone_params": backbone_params,
        "active_params": round(flops["active_params"]),
        "tokens": tokens,
        "step_s": step_s,
        "tokens_per_s": tokens / step_s,
        "model_flops_per_step": flops["flops"],
        "model_flops_per_s": flops["flops"] / step_s,
        "mfu": flops["flops"] / step_s / peak,
    }


def bench_train(
    *, threads: int = 2, budget: int = 1024, steps: int = 5, repeats: int = 3, matmul_size: int = 2048
) -> dict[str, Any]:
    """Every figure of `dina bench train` (module docstring); `matmul_size` is n of the peak's n³ matmul."""
    torch.set_num_threads(threads)
    peak = peak_matmul_flops(matmul_size, repeats)
    cfg = tiny()
    ours = bench_ours(cfg, budget, steps, repeats, peak)
    peer = bench_peer(cfg, ours, steps, repeats, peak)
    ratio = ours["tokens_per_s"] / peer["tokens_per_s"]
    return {
        "machine": {"threads": torch.get_num_threads(), "torch": torch.__version__},
        "steps": steps,
        "repeats": repeats,
        "peak_flops": peak,
        "ours": ours,
        "peer": peer,
        "ratio_tokens_per_s": ratio,
        "ratio_model_flops_per_s": ours["model_flops_per_s"] / peer["model_flops_per_s"],
        "goals": {
            "mfu": goal(ours["mfu"], MFU_GOAL, higher_is_better=True),
            "ratio_tokens_per_s": goal(ratio, RATIO_GOAL, higher_is_better=True),
        },
    }
