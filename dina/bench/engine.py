"""`dina bench engine`: the inference engine's decode speed and costs, and a Mixtral peer, in one run.

All on `NativeModel(tiny())` at random init (speed does not depend on the weights), greedy
sampling everywhere so that the figures are model and engine cost, not sampler cost. The bench
model's LM head gets a bias of -1e9 on every special id, so greedy text never ends a row or
enters image or speech mode; the tokens each row actually produced are counted.

1. Text decode tokens/s at batch 1 and 8: `Engine.generate` on rows of `PROMPT_TOKENS` text ids,
   `new_tokens` new tokens each. Peer: Hugging Face `MixtralForCausalLM` matched as in
   `dina.bench.train.peer_config` (same width, heads, key/value heads, experts, top-k and
   vocabulary; 4 Mixtral layers hold the parameters and the 4 attention sublayers of our 2),
   `generate(do_sample=False, use_cache=True, min_new_tokens=max_new_tokens=new_tokens)` on the
   same ids. Ratio ours / peer (goal >= 1.5).
2. One image position (backbone step + DepthTransformer over 8 levels) against one text token at
   batch 1: an h x w image is h · (w + 1) engine steps; positions and the row-ending steps
   (`<longcat_img_newline>` / `<longcat_img_end>`, a backbone step alone) are timed apart.
   Ratio position / text token (goal <= 1.3).
3. The same image with its L levels flattened into the backbone sequence: h · (L · w + 1)
   single-token backbone steps, each level's code drawn from a head over all L codebooks
   (Linear(D, Σ K_l), greedy within the level's slice) and fed back as that level's row of the
   embedding table. A lean loop without the engine's per-step bookkeeping, so the ratio is a
   lower bound. Ratio flattened / ours (goal >= 5).
4. CFG: the whole image `generate` call at `cfg_scale` 3 against 1 (the unconditional prompt's
   prefill and its twin rows included). Ratio (goal <= 1.6).
5. KV-cache bytes per token: `KVCache.bytes_per_token` of tiny and of the release shapes
   (`longcat_next()`, whose MLA cache stores per-head keys and values), the release's own latent
   cache ((kv_lora_rank + qk_rope_dim) per sublayer) and the peer's, all at fp32.

Timing: decode excludes prefill. A forward hook on the backbone's final norm stamps the end of
every `backbone_step` (`StepClock`), so one engine step is the time between two stamps (sampling,
embedding, backbone); the peer's steps are stamped by a `generate` streamer, which receives each
step's tokens right after sampling. Every figure is the median of `repeats` runs after a warm-up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from dina.bench import goal, median_seconds
from dina.bench.train import SENTENCES, peer_config, peer_summary
from dina.config import DinaConfig
from dina.errors import BadArgument
from dina.inference.cache import KVCache, backbone_step
from dina.inference.engine import Engine, GenerationConfig
from dina.inference.sampling import GREEDY, sample
from dina.model.native import NativeModel
from dina.presets import longcat_next, tiny
from dina.text.bpe import TextTokenizer

PROMPT_TOKENS = 16
BATCHES = (1, 8)
CFG_SCALE = 3.0
DECODE_GOAL, IMAGE_POSITION_GOAL, FLATTENED_GOAL, CFG_GOAL = 1.5, 1.3, 5.0, 1.6


class StepClock:
    """`time.perf_counter()` at the end of every `backbone_step` while entered: a forward hook on
    the backbone's final norm, which at inference only `backbone_step` runs."""

    def __init__(self, model: NativeModel) -> None:
        self.norm = model.backbone.norm
        self.stamps: list[float] = []

    def __enter__(self) -> StepClock:
        self.start = time.perf_counter()
        self.handle = self.norm.register_forward_hook(lambda *_: self.stamps.append(time.perf_counter()))
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def _median_runs(run: Callable[[], dict[str, float]], repeats: int) -> dict[str, float]:
    """One warm-up run, then each figure's median over `repeats` runs."""
    run()
    runs = [run() for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


# ---- the model and prompts ----------------------------------------------------------------------
def bench_model(cfg: DinaConfig) -> tuple[NativeModel, TextTokenizer]:
    """A seeded random `NativeModel` whose LM head never picks a special id (module docstring)."""
    torch.manual_seed(0)
    model = NativeModel(cfg).eval()
    bias = torch.zeros(cfg.vocab.audio_offset)
    bias[cfg.vocab.text_vocab_size :] = -1e9
    model.lm_head.bias = nn.Parameter(bias, requires_grad=False)
    return model, TextTokenizer.train(SENTENCES, cfg.vocab)


def text_prompts(tok: TextTokenizer, batch: int) -> list[list[int]]:
    """`batch` different rows of `PROMPT_TOKENS` text ids: row b is numbered b and starts at sentence b."""
    n = len(SENTENCES)
    rows = [" ".join((str(b), *SENTENCES[b % n :], *SENTENCES[: b % n])) for b in range(batch)]
    return [tok.encode(row)[:PROMPT_TOKENS] for row in rows]


def image_prompt(tok: TextTokenizer, h: int, w: int) -> list[int]:
    """A text prompt, the size tag of an h x w image and `<longcat_img_start>`."""
    sp = tok.special_id
    size = [sp("<longcat_img_token_size>"), *tok.encode(f"{h} {w}"), sp("</longcat_img_token_size>")]
    return [*text_prompts(tok, 1)[0], *size, sp("<longcat_img_start>")]


def _greedy(max_new_tokens: int, cfg_scale: float = 1.0) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=max_new_tokens, text=GREEDY, image=GREEDY, cfg_scale=cfg_scale)


# ---- 1. text decode -----------------------------------------------------------------------------
def _decode_figures(tokens: int, decode_tokens: int, decode_s: float, prefill_s: float) -> dict[str, float]:
    """`tokens` produced in all, `decode_tokens` of them sampled within the `decode_s` timed."""
    return {
        "tokens": tokens,
        "decode_tokens": decode_tokens,
        "decode_s": decode_s,
        "tokens_per_s": decode_tokens / decode_s,
        "prefill_s": prefill_s,
    }


def decode_ours(engine: Engine, prompts: list[list[int]], new_tokens: int, repeats: int) -> dict[str, float]:
    """Tokens/s of `Engine.generate` after prefill: all steps after the one batched prefill step."""

    def run() -> dict[str, float]:
        with StepClock(engine.model) as clock:
            rows = engine.generate(prompts, _greedy(new_tokens))
        tokens = sum(len(r.ids) - len(p) for r, p in zip(rows, prompts, strict=True))
        decode_s = clock.stamps[-1] - clock.stamps[0]  # every token is sampled after the prefill
        prefill_s = clock.stamps[0] - clock.start
        return _decode_figures(tokens, tokens, decode_s, prefill_s)

    return _median_runs(run, repeats)


class _Stamps:
    """A `generate` streamer that keeps the time of every `put`: the prompt, then each step's tokens."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value: torch.Tensor) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def peer_model(cfg: DinaConfig, model: NativeModel, max_len: int) -> Any:
    """The matched `MixtralForCausalLM` (module docstring), seeded, in eval mode."""
    from transformers import MixtralForCausalLM

    torch.manual_seed(0)
    config = peer_config(cfg, max_len, model.parameter_counts()["backbone_layers"])
    return MixtralForCausalLM(config).float().eval()


def decode_peer(peer: Any, prompts: list[list[int]], new_tokens: int, repeats: int) -> dict[str, float]:
    """Tokens/s of the peer's `generate` after its first token (prefill and first sample)."""
    ids = torch.tensor(prompts)
    B = len(prompts)

    def run() -> dict[str, float]:
        stamps = _Stamps()
        out = peer.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            use_cache=True,
            pad_token_id=0,
            streamer=stamps,
        )
        t = stamps.times  # t[0]: the prompt; t[1]: prefill and the first token; t[n]: the n-th token
        return _decode_figures(B * (out.shape[1] - ids.shape[1]), B * (len(t) - 2), t[-1] - t[1], t[1] - t[0])

    return _median_runs(run, repeats)


# ---- 2-4. images --------------------------------------------------------------------------------
def image_ours(engine: Engine, prompt: list[int], h: int, w: int, repeats: int) -> dict[str, float]:
    """One h x w image at batch 1: decode time, its positions' and its row-ending steps' mean time."""

    def run() -> dict[str, float]:
        with StepClock(engine.model) as clock:
            engine.generate([prompt], _greedy(h * (w + 1)))
        steps = [b - a for a, b in zip(clock.stamps, clock.stamps[1:], strict=False)]
        positions = [s for j, s in enumerate(steps) if j % (w + 1) < w]
        ends = [s for j, s in enumerate(steps) if j % (w + 1) == w]
        return {
            "decode_s": clock.stamps[-1] - clock.stamps[0],
            "position_s": statistics.mean(positions),
            "row_end_s": statistics.mean(ends),
            "steps": len(steps),
        }

    return _median_runs(run, repeats)


def image_flattened(
    model: NativeModel, prompt: list[int], newline: int, h: int, w: int, repeats: int
) -> dict[str, float]:
    """Decode time of an h x w image with its L levels flattened into the sequence (module docstring)."""
    vocab, b = model.cfg.vocab, model.cfg.backbone
    sizes = vocab.visual_codebook_sizes
    starts = [sum(sizes[:level]) for level in range(len(sizes))]
    offsets = torch.tensor(vocab.level_offsets("visual"))
    torch.manual_seed(0)
    head = nn.Linear(b.dim, sum(sizes), bias=False)  # the flattened model's head over every level
    embed, rows = model.embedding.embed_tokens, torch.tensor([0])

    def step(cache: KVCache, id_: torch.Tensor) -> torch.Tensor:
        return backbone_step(model.backbone, embed(id_)[None], cache, rows)[0, -1]

    @torch.no_grad()
    def run() -> dict[str, float]:
        cache = KVCache(b, 1, len(prompt) + h * (len(sizes) * w + 1))
        with StepClock(model) as clock:
            h_D = step(cache, model.embedding.text_ids(torch.tensor(prompt)))
            for _ in range(h):
                for _ in range(w):
                    for level, (start, size) in enumerate(zip(starts, sizes, strict=True)):
                        code = sample(head(h_D[None])[:, start : start + size], GREEDY)
                        h_D = step(cache, code + offsets[level])
                h_D = step(cache, torch.tensor([newline]))
        return {"decode_s": clock.stamps[-1] - clock.stamps[0], "steps": len(clock.stamps) - 1}

    return _median_runs(run, repeats)


def image_cfg(engine: Engine, prompt: list[int], h: int, w: int, repeats: int) -> dict[str, float]:
    """Seconds of the whole image `generate` call, unguided and at `CFG_SCALE`."""
    out = {}
    for name, scale in (("unguided_s", 1.0), ("guided_s", CFG_SCALE)):
        out[name] = median_seconds(partial(engine.generate, [prompt], _greedy(h * (w + 1), scale)), repeats)
    return out


# ---- 5. KV cache --------------------------------------------------------------------------------
def kv_cache_bytes(peer: Any) -> dict[str, Any]:
    """Bytes one position costs in each cache (module docstring), fp32."""
    release = longcat_next().backbone
    fp32 = torch.finfo(torch.float32).bits // 8
    c = peer.config
    head_dim = c.hidden_size // c.num_attention_heads
    return {
        "tiny": KVCache(tiny().backbone, 1, 1).bytes_per_token,
        "longcat_next": KVCache(release, 1, 1).bytes_per_token,  # allocates one position only
        "longcat_next_release_latent": (release.kv_lora_rank + release.qk_rope_dim) * 2 * release.n_layers * fp32,
        "peer": 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * fp32,
        "dtype": "float32",
    }


# ---- the run ------------------------------------------------------------------------------------
def _peer_info(peer: Any) -> dict[str, Any]:
    import transformers

    info = peer_summary(peer.config)
    return {**info, "transformers": transformers.__version__, "params": sum(p.numel() for p in peer.parameters())}


def bench_engine(
    *, threads: int = 2, new_tokens: int = 64, repeats: int = 3, image: tuple[int, int] = (8, 8)
) -> dict[str, Any]:
    """Every figure of `dina bench engine` (module docstring); `image` is the (h, w) code grid."""
    if new_tokens < 2:
        raise BadArgument(
            f"new_tokens must be >= 2 (the peer's decode window starts after its first token), got {new_tokens}"
        )
    torch.set_num_threads(threads)
    cfg = tiny()
    model, tok = bench_model(cfg)
    engine = Engine(model, tok)
    peer = peer_model(cfg, model, PROMPT_TOKENS + new_tokens + 1)
    decode: dict[str, Any] = {}
    for B in BATCHES:
        prompts = text_prompts(tok, B)
        ours = decode_ours(engine, prompts, new_tokens, repeats)
        theirs = decode_peer(peer, prompts, new_tokens, repeats)
        decode[f"batch_{B}"] = {"ours": ours, "peer": theirs, "ratio": ours["tokens_per_s"] / theirs["tokens_per_s"]}

    h, w = image
    prompt = image_prompt(tok, h, w)
    ours_image = image_ours(engine, prompt, h, w, repeats)
    text_token_s = 1 / decode["batch_1"]["ours"]["tokens_per_s"]
    position = ours_image | {"text_token_s": text_token_s, "ratio": ours_image["position_s"] / text_token_s}
    flat = image_flattened(model, prompt, tok.special_id("<longcat_img_newline>"), h, w, repeats)
    flattened = {
        "ours_s": ours_image["decode_s"],
        "ours_steps": ours_image["steps"],
        "flattened_s": flat["decode_s"],
        "flattened_steps": flat["steps"],
        "ratio": flat["decode_s"] / ours_image["decode_s"],
    }
    guidance = image_cfg(engine, prompt, h, w, repeats)
    guidance |= {"scale": CFG_SCALE, "ratio": guidance["guided_s"] / guidance["unguided_s"]}

    counts, peer_info = model.parameter_counts(), _peer_info(peer)
    return {
        "machine": {
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": peer_info["transformers"],
        },
        "model": {"preset": cfg.name, "params": counts["total"], "backbone_params": counts["backbone_layers"]},
        "peer": peer_info,
        "new_tokens": new_tokens,
        "prompt_tokens": PROMPT_TOKENS,
        "repeats": repeats,
        "image": {"h": h, "w": w, "levels": len(cfg.vocab.visual_codebook_sizes)},
        "text_decode": decode,
        "image_position_vs_text_token": position,
        "flattened_vs_depth_transformer": flattened,
        "cfg_vs_unguided": guidance,
        "kv_cache_bytes_per_token": kv_cache_bytes(peer),
        "goals": {
            **{f"decode_ratio_{k}": goal(v["ratio"], DECODE_GOAL, higher_is_better=True) for k, v in decode.items()},
            "image_position_vs_text_token": goal(position["ratio"], IMAGE_POSITION_GOAL, higher_is_better=False),
            "flattened_vs_depth_transformer": goal(flattened["ratio"], FLATTENED_GOAL, higher_is_better=True),
            "cfg_vs_unguided": goal(guidance["ratio"], CFG_GOAL, higher_is_better=False),
        },
    }
