"""Turning one step's logits into ids: masks, repetition penalty, temperature, top-k, top-p, CFG.

The released samplers (`longcat-next-release.md` §6, §8) are the usual HF-style chain, used by
the LM head for text and by the DepthTransformer at every RVQ level:

- image codes (§6): repetition penalty over the past codes *of that level*, temperature, top-k,
  top-p; the extra "end" class is masked to -inf; classifier-free guidance per level,
  l = l_u + s (l_c - l_u), with one code sampled and fed to both the cond and uncond rows
  (`cfg_logits`). HF defaults: temperature 0.5, top-k 1024, top-p 0.75, CFG scale 3.
- audio codes and text (§8): temperature 0.5, top-k 5, top-p 0.85, repetition penalty 1.3 for
  audio; temperature 0.2, top-k 20, top-p 0.85, repetition penalty 1.1 for text.

`sample` applies, in this order and in fp32: the class mask (False -> -inf), the repetition
penalty (CTRL, Keskar et al. 2019, as in HF: a seen id's logit is divided by the penalty when
positive, multiplied when not), then either argmax (temperature 0) or temperature, top-k, top-p
(nucleus, renormalised after top-k, as HF's warpers do) and one multinomial draw. Ties at the
top-k threshold keep every tied class. `cfg_logits` comes before all of it: the engine guides
the raw logits, then samples once.

Departure, `cfg_logits`: a class that is -inf in either branch stays -inf. The formula would give
NaN where both are -inf, and +inf (forcing the class) where only the uncond one is and s > 1.

Shapes: B rows, V classes (the vocabulary of the LM head, or of one RVQ level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dina.errors import BadArgument, BadCodes

# Per row, the ids to penalise: a (B, T) tensor, or B rows of any lengths (tensors or lists of ints).
History = Sequence[torch.Tensor | Sequence[int]] | torch.Tensor | None


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How to draw one id per row. temperature 0 is greedy; top_k 0 and top_p 1 are off;
    repetition_penalty 1 is off."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        t, p, k, r = self.temperature, self.top_p, self.top_k, self.repetition_penalty
        if not (math.isfinite(t) and t >= 0):
            raise BadArgument(f"temperature must be a finite number >= 0 (0 = greedy), got {t}")
        if not 0 < p <= 1:  # also false for NaN
            raise BadArgument(f"top_p must be in (0, 1] (1 = off), got {p}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise BadArgument(f"top_k must be an integer >= 0 (0 = off), got {k!r}")
        if not (math.isfinite(r) and r > 0):
            raise BadArgument(f"repetition_penalty must be a finite number > 0 (1 = off), got {r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


# Release defaults (`longcat-next-release.md` §6 visual_generation_config, §8 audio and text).
TEXT_DEFAULT = SamplingConfig(temperature=0.2, top_k=20, top_p=0.85, repetition_penalty=1.1)
IMAGE_DEFAULT = SamplingConfig(temperature=0.5, top_k=1024, top_p=0.75, repetition_penalty=1.0)  # none published
AUDIO_DEFAULT = SamplingConfig(temperature=0.5, top_k=5, top_p=0.85, repetition_penalty=1.3)
GREEDY = SamplingConfig(temperature=0.0)


def _seen_BV(
    history: Sequence[torch.Tensor | Sequence[int]] | torch.Tensor, B: int, V: int, device: torch.device
) -> torch.Tensor:
    """(B, V) bool: True where the id occurred in that row's history."""
    if isinstance(history, torch.Tensor):
        if history.dim() != 2 or history.shape[0] != B:
            raise BadArgument(f"a tensor history must be (B, T) with B = {B} rows, got {tuple(history.shape)}")
        rows: list[torch.Tensor | Sequence[int]] = list(history)
    else:
        rows = list(history)
        if len(rows) != B:
            raise BadArgument(f"history has {len(rows)} rows for {B} rows of logits")
    ids = [torch.as_tensor(h, device=device).reshape(-1) for h in rows]
    if any(h.is_floating_point() and h.numel() > 0 for h in ids):
        raise BadArgument("history ids must be integers")
    flat = torch.cat(ids).long() if ids else torch.empty(0, dtype=torch.long, device=device)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= V):
        raise BadCodes(f"history ids must be in [0, {V}), got range [{int(flat.min())}, {int(flat.max())}]")
    row_of = torch.repeat_interleave(torch.arange(B, device=device), torch.tensor([h.numel() for h in ids]).to(device))
    seen = torch.zeros(B, V, dtype=torch.bool, device=device)
    seen[row_of, flat] = True
    return seen


def apply_repetition_penalty(logits_BV: torch.Tensor, history: History, penalty: float) -> torch.Tensor:
    """The CTRL/HF rule: for every id in row b's history (counted once however often it
    occurred), a positive logit is divided by `penalty`, any other multiplied by it.

    history: None, a (B, T) id tensor, or B rows of ids of any lengths (ragged), each a 1-D
    tensor or a list of ints.
    Returns a new (B, V) tensor; `logits_BV` is not modified.
    """
    if not (math.isfinite(penalty) and penalty > 0):
        raise BadArgument(f"repetition penalty must be a finite number > 0, got {penalty}")
    if history is None or penalty == 1.0:
        return logits_BV
    B, V = logits_BV.shape
    seen = _seen_BV(history, B, V, logits_BV.device)
    penalised = torch.where(logits_BV > 0, logits_BV / penalty, logits_BV * penalty)
    return torch.where(seen, penalised, logits_BV)


def _top_k(logits_BV: torch.Tensor, k: int) -> torch.Tensor:
    if k == 0 or k >= logits_BV.shape[-1]:
        return logits_BV
    kth_B1 = torch.topk(logits_BV, k, dim=-1).values[:, -1:]
    return logits_BV.masked_fill(logits_BV < kth_B1, float("-inf"))


def _top_p(logits_BV: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the fewest most probable classes whose probability sums to >= p (the top one always)."""
    if p >= 1.0:
        return logits_BV
    sorted_BV, order_BV = torch.sort(logits_BV, dim=-1, descending=True)
    probs_BV = sorted_BV.softmax(dim=-1)
    mass_before_BV = probs_BV.cumsum(dim=-1) - probs_BV  # a class is kept while p is not yet reached
    drop_BV = torch.zeros_like(logits_BV, dtype=torch.bool).scatter(-1, order_BV, mass_before_BV >= p)
    return logits_BV.masked_fill(drop_BV, float("-inf"))


def _refuse(logits_BV: torch.Tensor) -> None:
    """Say what is wrong with logits some row of which has no finite max."""
    if bool((torch.isnan(logits_BV) | torch.isposinf(logits_BV)).any()):
        raise BadArgument("logits contain NaN or +inf")
    rows = torch.isneginf(logits_BV).all(dim=-1).nonzero().flatten().tolist()
    raise BadArgument(f"every class is masked (-inf) in rows {rows}: nothing to sample")


def sample(
    logits_BV: torch.Tensor,
    cfg: SamplingConfig,
    generator: torch.Generator | None = None,
    history: History = None,
    mask_BV: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw one id per row: (B, V) logits -> (B,) int64.

    mask_BV: bool, broadcastable to (B, V); False forbids a class (e.g. the image "end" class).
    history: the ids each row has produced, for the repetition penalty (see
    `apply_repetition_penalty`). The generator is unused when cfg.temperature is 0.
    """
    if logits_BV.dim() != 2:
        raise BadArgument(f"logits must be (B, V), got shape {tuple(logits_BV.shape)}")
    logits = logits_BV.float()
    if mask_BV is not None:
        if mask_BV.dtype != torch.bool:
            raise BadArgument(f"mask must be a bool tensor, got {mask_BV.dtype}")
        logits = logits.masked_fill(~mask_BV.to(logits.device), float("-inf"))
    # A row's max is finite unless the row holds a NaN or +inf, or is -inf throughout: one check,
    # one host sync on the happy path. Greedy without a penalty takes the argmax from the same max.
    top = logits.max(dim=-1)
    if not bool(top.values.isfinite().all()):
        _refuse(logits)
    if cfg.greedy and (history is None or cfg.repetition_penalty == 1.0):
        return top.indices  # the first maximal class, as argmax
    logits = apply_repetition_penalty(logits, history, cfg.repetition_penalty)
    if cfg.greedy:
        return logits.argmax(dim=-1)
    # Shift so each row's max is 0 before dividing: a tiny temperature then gives -inf, not inf - inf.
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / cfg.temperature
    logits = _top_p(_top_k(logits, cfg.top_k), cfg.top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


def cfg_logits(cond_BV: torch.Tensor, uncond_BV: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance (release §6): uncond + scale · (cond - uncond).

    Scale 1 returns `cond_BV` itself and scale 0 `uncond_BV` itself, so guidance at 1 equals no
    guidance bit for bit. Otherwise the arithmetic runs in fp32 and the result has cond's dtype;
    a class that is -inf in either branch stays -inf.
    """
    if not (math.isfinite(scale) and scale >= 0):
        raise BadArgument(f"CFG scale must be a finite number >= 0 (1 = unguided), got {scale}")
    if cond_BV.shape != uncond_BV.shape:
        raise BadArgument(f"cond and uncond logits differ in shape: {tuple(cond_BV.shape)} vs {tuple(uncond_BV.shape)}")
    if scale == 1.0:
        return cond_BV
    if scale == 0.0:
        return uncond_BV
    c, u = cond_BV.float(), uncond_BV.float()
    forbidden = torch.isneginf(c) | torch.isneginf(u)
    return (u + scale * (c - u)).masked_fill(forbidden, float("-inf")).to(cond_BV.dtype)
