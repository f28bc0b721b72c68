"""Sampling one step's RVQ levels from a DepthTransformer head, one level at a time.

Release §6 (image head) and §8 (text-guided audio); report Sec. 2.5.2. `DepthTransformer.forward`
is teacher-forced; at generation the codes are not known yet, so level l is sampled from the
logits of position l, whose input Σ_{i<l} E_i[c_i] only needs the levels already drawn:

- level by level through `DepthTransformer.step`, which keeps each block's keys and values of
  the levels already run: level l computes one position, whose logits equal those of a
  teacher-forced pass over the final codes (the release instead re-runs the whole 8-position
  stack every level, feeding code 0 where a level is not drawn yet; causality makes the two
  equal, and the cache does 1/L of the work);
- the extra "end" class K_l is masked at every level (left out of the draw, which is the same),
  except at level 0 when `allow_end` is "level0" (audio: a level-0 end is the segment's end
  flag, §8). A position that ends keeps K_0 as its level-0 code and -1 at the levels it never
  draws;
- classifier-free guidance (§6): with `cfg_scale` != 1 the rows are [N conditional; N
  unconditional]; each level's logits are combined as l_u + s·(l_c − l_u), one code is drawn
  per position, and both rows of that position are fed the same code for the next level.

Shapes: N positions, L levels, M backbone width, K_l codes of level l.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from dina.backbone.embedding import MultimodalEmbedding
from dina.errors import BadArgument
from dina.heads.depth import DepthTransformer
from dina.inference.sampling import History, SamplingConfig, cfg_logits, sample

LevelEmbed = Callable[[int, torch.Tensor], torch.Tensor]  # (level, codes (N,)) -> rows (N, M)
END_POLICIES = ("none", "level0")


@dataclass(frozen=True, kw_only=True)
class LevelSample:
    codes_NL: torch.Tensor  # int64; K_0 at level 0 where a position ended, -1 where never drawn
    ended_N: torch.Tensor  # bool: level 0 drew the end class
    logits: tuple[torch.Tensor, ...]  # per level drawn (N, K_l + 1): the guided logits, before the mask


def level_embedder(embedding: MultimodalEmbedding, modality: str, *, checked: bool = True) -> LevelEmbed:
    """The level rows of `modality` ("audio" or "visual") in the shared table: (l, c_N) -> E[offset_l + c_N].

    `checked=False` skips the range check (two host syncs per level), for codes that
    `sample_levels` drew: they are in [0, K_l) by construction."""
    embedding.vocab.codebook_sizes(modality)  # refuse an unknown modality now, not at the first level
    if checked:
        return lambda level, codes_N: embedding.level_rows(modality, level, codes_N)
    offsets = embedding.vocab.level_offsets(modality)
    return lambda level, codes_N: embedding.embed_tokens(codes_N + offsets[level])


def _level_configs(
    head: DepthTransformer,
    h_ND: torch.Tensor,
    sampling: SamplingConfig | Sequence[SamplingConfig],
    allow_end: str,
    cfg_scale: float,
    history: Sequence[History] | None,
) -> list[SamplingConfig]:
    """Check the arguments of `sample_levels`; one sampling config per level."""
    L, width = len(head.codebook_sizes), head.hidden_proj.in_features
    if h_ND.ndim != 2 or h_ND.shape[1] != width:
        raise BadArgument(f"depth sampling expects (N, {width}) hidden states, got {tuple(h_ND.shape)}")
    if allow_end not in END_POLICIES:
        raise BadArgument(f"allow_end must be one of {END_POLICIES}, got {allow_end!r}")
    if cfg_scale != 1.0 and h_ND.shape[0] % 2:
        raise BadArgument(f"guidance needs [conditional; unconditional] rows, got an odd number: {h_ND.shape[0]}")
    configs = [sampling] * L if isinstance(sampling, SamplingConfig) else list(sampling)
    if len(configs) != L:
        raise BadArgument(f"need one sampling config or {L} (one per level), got {len(configs)}")
    if history is not None and len(history) != L:
        raise BadArgument(f"need a repetition history per level ({L}), got {len(history)}")
    return configs


@torch.no_grad()
def sample_levels(
    head: DepthTransformer,
    level_embed: LevelEmbed,
    h_ND: torch.Tensor,
    sampling: SamplingConfig | Sequence[SamplingConfig],
    *,
    generator: torch.Generator | None = None,
    allow_end: str = "none",
    cfg_scale: float = 1.0,
    history: Sequence[History] | None = None,
) -> LevelSample:
    """Draw the L codes of N positions from final-normed hidden states h_ND (module docstring).

    `h_ND` is (N, M), or (2N, M) [conditional; unconditional] when `cfg_scale` != 1.
    `sampling`: one config for every level or one per level. `history[l]`: per position, the
    codes already generated at level l (repetition penalty); the caller extends it.
    When every position ends at level 0, the later levels are not run (`logits` holds one entry).
    """
    configs = _level_configs(head, h_ND, sampling, allow_end, cfg_scale, history)
    guided = cfg_scale != 1.0
    R, L = h_ND.shape[0], len(head.codebook_sizes)
    N = R // 2 if guided else R
    cache = head.new_cache()
    x_RM = h_ND  # level 0 reads h; level l the sum of the codes' level embeddings before it
    ended_N = torch.zeros(N, dtype=torch.bool, device=h_ND.device)
    drawn: list[torch.Tensor] = []
    used: list[torch.Tensor] = []
    for level in range(L):
        logits_RK = head.step(cache, x_RM)
        logits_NK = cfg_logits(logits_RK[:N], logits_RK[N:], cfg_scale) if guided else logits_RK
        used.append(logits_NK)
        may_end = allow_end == "level0" and level == 0
        # A forbidden end class is left out of the draw, which equals masking it to -inf.
        rows = None if history is None else history[level]
        drawn_N = sample(logits_NK if may_end else logits_NK[:, :-1], configs[level], generator, history=rows)
        if may_end:
            ended_N = drawn_N == head.end_class[0]
            if bool(ended_N.all()):
                drawn.append(drawn_N)
                break
        drawn.append(drawn_N)  # an ended position's later levels are drawn with the batch, then dropped
        if level + 1 == L:
            break
        row_NM = level_embed(level, drawn_N.masked_fill(ended_N, 0) if may_end else drawn_N).to(h_ND.dtype)
        row_RM = torch.cat([row_NM, row_NM]) if guided else row_NM  # cond and uncond share the code
        x_RM = row_RM if level == 0 else x_RM + row_RM
    if allow_end == "none":  # every level drawn, none ended
        return LevelSample(codes_NL=torch.stack(drawn, dim=1), ended_N=ended_N, logits=tuple(used))
    codes_NL = torch.full((N, L), -1, dtype=torch.long, device=h_ND.device)
    codes_NL[:, : len(drawn)] = torch.stack(drawn, dim=1).masked_fill(ended_N[:, None], -1)
    codes_NL[:, 0] = drawn[0]  # K_0 where a position ended
    return LevelSample(codes_NL=codes_NL, ended_N=ended_N, logits=tuple(used))
