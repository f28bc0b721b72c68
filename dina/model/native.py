"""The native multimodal model: embeddings -> LongCat-Flash backbone -> LM head and depth heads.

Report Sec. 2.4 (one modality-agnostic MoE backbone), 2.5.1 (additive multi-level embeddings),
2.5.2 (LM head for text, a DepthTransformer per modality), 2.5.3 (text-guided audio),
3.2.1 (Pre-Buffer), 3.2.5 (MoE statistics per modality, Fig. 11); `longcat-next-release.md`
§1, §4, §6, §8. Inputs of position t (`dina.sequence.document` explains the streams):

    x_t = word(ids_t) [0 at img/audio/audiotext pads; n-gram mixed when enabled]
        + word(guide_t) [text-guided audio; 0 for audiotext_pad]
        + PreBuffer(Σ_l E[visual_l]) at image positions + Σ_l E[audio_l] at audio positions

The backbone's final-normed hidden state h_{t-1} predicts position t: the LM head (text and
special ids, the release's 131,125 rows) where `lm_labels_t` is set, the visual / audio
DepthTransformer (teacher forced on the true codes) where the level labels are set. The loss
is the mean over all predictions (a position predicted by the LM and a depth head, as in
text-guided audio, counts twice); a depth prediction's loss is the level-weighted mean of its
levels' cross-entropies over the levels it labels.

Departures: the release's LM head may hold all 282,624 rows; ours holds the text and special
ids only, the ids the LM head is ever asked for (release §1: inference slices it to 131,125).

Shapes: N positions, D width, L levels, P predictions, F formats, X experts (routed + zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dina.backbone.embedding import MultimodalEmbedding
from dina.backbone.model import Backbone
from dina.backbone.ngram import NgramEmbedding
from dina.config import SPECIAL_TOKENS, DinaConfig
from dina.errors import BadCodes
from dina.heads.depth import DepthTransformer
from dina.model.batch import ModelBatch
from dina.sequence.document import IGNORE, MODALITIES
from dina.training.checkpoint import Pretrained


@dataclass(frozen=True, kw_only=True)
class ModelOutput:
    loss: torch.Tensor  # () mean over all predictions
    parts: dict[str, float]  # per head: loss and count; per level: cross-entropy
    format_loss_F: torch.Tensor  # summed loss of each format's predictions
    format_count_F: torch.Tensor  # their number
    moe_counts_YMX: torch.Tensor  # per layer Y, modality M (text, image, audio): selections per expert
    hidden_ND: torch.Tensor


def _level_weights(weights: Sequence[float], levels: int) -> torch.Tensor:
    return torch.tensor(list(weights) if weights else [1.0] * levels)


class NativeModel(Pretrained, nn.Module):
    """One decoder for text, image and audio ids (module docstring)."""

    config_class = DinaConfig
    checkpoint_kind = "native_model"
    checkpoint_name = "model"
    visual_weights_L: torch.Tensor
    audio_weights_L: torch.Tensor
    silent_ids: torch.Tensor

    def __init__(self, cfg: DinaConfig) -> None:
        super().__init__()
        self.cfg = self.config = cfg
        b, v = cfg.backbone, cfg.vocab
        self.embedding = MultimodalEmbedding(v, b.dim, cfg.prebuffer_dim, eps=b.norm_eps)
        self.ngram = NgramEmbedding(b, v.text_vocab_size) if b.ngram_vocab_ratio > 0 else None
        self.backbone = Backbone(b)
        self.lm_head = nn.Linear(b.dim, v.audio_offset, bias=False)
        self.visual_head = DepthTransformer(cfg.visual_head, b.dim, v.visual_codebook_sizes)
        self.audio_head = DepthTransformer(cfg.audio_head, b.dim, v.audio_codebook_sizes)
        self.register_buffer(
            "visual_weights_L", _level_weights(cfg.visual_head.level_weights, len(v.visual_codebook_sizes)), False
        )
        self.register_buffer(
            "audio_weights_L", _level_weights(cfg.audio_head.level_weights, len(v.audio_codebook_sizes)), False
        )
        special = v.text_vocab_size
        pads = ("<longcat_img_pad>", "<longcat_audio_pad>", "<longcat_audiotext_pad>")
        self.register_buffer("silent_ids", torch.tensor([special + SPECIAL_TOKENS.index(n) for n in pads]), False)
        self.audiotext_pad = special + SPECIAL_TOKENS.index("<longcat_audiotext_pad>")
        self.apply(_init_weights)

    # ---- inputs ----------------------------------------------------------------------------
    def _inputs(self, batch: ModelBatch) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """(N, D) input embeddings (module docstring), and per modality the positions carrying
        codes with their (S, L, D) level embeddings, which the depth heads reuse as their teacher
        inputs. Every row comes from one lookup in the shared table, so its gradient is one
        dense (or, sharded, one local) tensor rather than one per kind of position."""
        emb = self.embedding
        guided_N = (batch.guide_N >= 0) & (batch.guide_N != self.audiotext_pad)
        guide_rows = guided_N.nonzero().squeeze(1)
        pieces = [emb.text_ids(batch.ids_N), emb.text_ids(batch.guide_N[guide_rows])]
        code_rows = {}
        for modality, codes_NL in (("visual", batch.visual_codes_NL), ("audio", batch.audio_codes_NL)):
            rows = (codes_NL[:, 0] >= 0).nonzero().squeeze(1)
            code_rows[modality] = rows
            pieces.append(emb.level_ids(modality, codes_NL[rows]).flatten())
        word, guide, visual, audio = emb.embed_tokens(torch.cat(pieces)).split([p.numel() for p in pieces])
        if self.ngram is not None:
            word = self.ngram(batch.ids_N, word, batch.cu_seqlens)
        x_ND = word * (~torch.isin(batch.ids_N, self.silent_ids))[:, None].to(word.dtype)
        x_ND = x_ND.index_add(0, guide_rows, guide)
        d = x_ND.shape[1]
        levels = {
            "visual": visual.view(-1, batch.visual_codes_NL.shape[1], d),
            "audio": audio.view(-1, batch.audio_codes_NL.shape[1], d),
        }
        if code_rows["visual"].numel():
            x_ND = x_ND.index_add(0, code_rows["visual"], emb.pre_buffer(levels["visual"].sum(dim=1)))
        x_ND = x_ND.index_add(0, code_rows["audio"], levels["audio"].sum(dim=1))
        return x_ND, {m: (code_rows[m], levels[m]) for m in levels}

    def embed(self, batch: ModelBatch) -> torch.Tensor:
        """(N, D) input embeddings (module docstring)."""
        return self._inputs(batch)[0]

    # ---- training forward --------------------------------------------------------------------
    def forward(self, batch: ModelBatch) -> ModelOutput:
        x_ND, levels = self._inputs(batch)
        out = self.backbone(x_ND, batch.cu_seqlens, batch.pos_N)
        h_ND = out.hidden_ND
        n_formats = len(batch.formats)
        losses: list[torch.Tensor] = []
        targets: list[torch.Tensor] = []
        parts: dict[str, float] = {}

        lm_P = (batch.lm_labels_N != IGNORE).nonzero().squeeze(1)
        if lm_P.numel():
            ce_P = F.cross_entropy(self.lm_head(h_ND[lm_P - 1]), batch.lm_labels_N[lm_P], reduction="none")
            losses.append(ce_P)
            targets.append(lm_P)
            parts.update(lm_loss=float(ce_P.detach().mean()), lm_count=lm_P.numel())
        for name, head, codes_NL, labels_NL, weights_L in (
            ("visual", self.visual_head, batch.visual_codes_NL, batch.visual_labels_NL, self.visual_weights_L),
            ("audio", self.audio_head, batch.audio_codes_NL, batch.audio_labels_NL, self.audio_weights_L),
        ):
            rows_P = (labels_NL != IGNORE).any(dim=1).nonzero().squeeze(1)
            if not rows_P.numel():
                continue
            teacher_PLD = self._teacher(head, levels[name], rows_P, codes_NL, labels_NL)
            loss_P, per_level = self._depth_loss(head, h_ND[rows_P - 1], teacher_PLD, labels_NL[rows_P], weights_L)
            losses.append(loss_P)
            targets.append(rows_P)
            parts.update({f"{name}_loss": float(loss_P.detach().mean()), f"{name}_count": rows_P.numel()})
            parts.update({f"{name}_l{i}": v for i, v in enumerate(per_level)})

        if losses:
            loss_P, target_P = torch.cat(losses), torch.cat(targets)
            loss = loss_P.mean()
            fmt_P = batch.format_N[target_P]
            format_loss = torch.bincount(fmt_P, weights=loss_P.detach(), minlength=n_formats)
            format_count = torch.bincount(fmt_P, minlength=n_formats)
        else:  # a batch with nothing to predict still runs (and trains nothing)
            loss = h_ND.sum() * 0.0
            format_loss = torch.zeros(n_formats)
            format_count = torch.zeros(n_formats, dtype=torch.long)
        moe = torch.stack([self._routing_by_modality(m.indices_NK, batch.modality_N) for m in out.moe])
        return ModelOutput(
            loss=loss,
            parts=parts,
            format_loss_F=format_loss,
            format_count_F=format_count,
            moe_counts_YMX=moe,
            hidden_ND=h_ND,
        )

    @staticmethod
    def _teacher(
        head: DepthTransformer,
        levels: tuple[torch.Tensor, torch.Tensor],
        rows_P: torch.Tensor,
        codes_NL: torch.Tensor,
        labels_NL: torch.Tensor,
    ) -> torch.Tensor:
        """(P, L, D) level embeddings the depth head is teacher-forced with: those of the codes at
        each predicted position, which are its labels (checked); zeros where it has no codes (the
        "end" of speech, whose later levels carry no loss)."""
        labels_PL, codes_PL = labels_NL[rows_P], codes_NL[rows_P]
        real_PL = (labels_PL >= 0) & (labels_PL < torch.tensor(head.codebook_sizes))
        if bool((real_PL & (labels_PL != codes_PL)).any()):
            raise BadCodes("a depth-head label differs from the codes at its position")
        code_rows, levels_SLD = levels
        slot_N = torch.full((codes_NL.shape[0],), levels_SLD.shape[0], dtype=torch.long)
        slot_N[code_rows] = torch.arange(code_rows.numel())
        padded = torch.cat([levels_SLD, levels_SLD.new_zeros(1, *levels_SLD.shape[1:])])
        return padded[slot_N[rows_P]]

    def _depth_loss(
        self,
        head: DepthTransformer,
        h_PD: torch.Tensor,
        teacher_PLD: torch.Tensor,
        labels_PL: torch.Tensor,
        weights_L: torch.Tensor,
    ) -> tuple[torch.Tensor, list[float]]:
        """Per prediction, the weighted mean cross-entropy over its labelled levels; per level, the mean."""
        logits = head(h_PD, teacher_PLD)
        ce_PL = torch.stack(
            [F.cross_entropy(lg, labels_PL[:, i], reduction="none") for i, lg in enumerate(logits)], dim=1
        )
        mask_PL = (labels_PL != IGNORE).to(ce_PL.dtype)
        w_PL = weights_L[None] * mask_PL
        loss_P = (ce_PL * w_PL).sum(1) / w_PL.sum(1).clamp(min=1e-12)
        level = ((ce_PL * mask_PL).sum(0) / mask_PL.sum(0).clamp(min=1)).detach()
        return loss_P, [round(float(v), 6) for v in level]

    def _routing_by_modality(self, indices_NK: torch.Tensor, modality_N: torch.Tensor) -> torch.Tensor:
        """(modalities, X) selections per expert of the tokens of each modality."""
        x = self.cfg.backbone.n_experts + self.cfg.backbone.n_zero_experts
        flat = (modality_N[:, None] * x + indices_NK).flatten()
        return torch.bincount(flat, minlength=len(MODALITIES) * x).view(len(MODALITIES), x)

    # ---- parameter counts --------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """Total and per-part parameter counts, and the active range per token (works on meta)."""

        def n(module: nn.Module | None) -> int:
            return sum(p.numel() for p in module.parameters()) if module is not None else 0

        b, v = self.cfg.backbone, self.cfg.vocab
        per_expert = 3 * b.dim * b.expert_dim
        experts = b.n_layers * b.n_experts * per_expert
        layers = n(self.backbone)
        text_rows = v.audio_offset * b.dim  # the text + special rows of the shared table
        ngram = n(self.ngram)
        ngram_active = (
            0 if self.ngram is None else sum(p.shape[0] * p.shape[1] for p in self.ngram.post_projs.parameters())
        )
        # A token reads one row per table; the projections all run.
        dense = layers - experts + n(self.lm_head) + ngram_active
        return {
            "total": n(self),
            "backbone_layers": layers,
            "ngram_embedding": ngram,
            "embedding_table": self.embedding.embed_tokens.weight.numel(),
            "pre_buffer": n(self.embedding.pre_buffer),
            "lm_head": n(self.lm_head),
            "visual_head": n(self.visual_head),
            "audio_head": n(self.audio_head),
            # LongCat-Flash-Lite's own count: layers, n-gram tables, text embedding and LM head.
            "language_model": layers + ngram + text_rows + n(self.lm_head),
            # Per token: everything but unchosen experts; zero experts cost nothing, so the
            # range runs from all top-k slots on zero experts to all on routed ones.
            "active_min": dense,
            "active_max": dense + b.n_layers * min(b.top_k, b.n_experts) * per_expert,
        }


def _init_weights(module: nn.Module) -> None:
    """Normal(0, 0.02) linears and embeddings (GPT-style); the MoE keeps its own init."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
