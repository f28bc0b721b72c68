"""The native model (report Sec. 2.4-2.5; release §1, §4, §6, §8): the released size on meta,
inputs built by the embedding formula, causal and packing-invariant predictions, a loss equal to
a direct computation, the audio end class, MoE counters that add up, level weights, and a tiny
model whose every head learns."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dina.errors import BadArgument, BadCodes
from dina.model.batch import ModelBatch, collate
from dina.model.native import NativeModel
from dina.presets import longcat_next, small, tiny
from dina.sequence.document import IGNORE, MODALITIES, Document
from dina.sequence.formats import ASR_PROMPT, ImageItem, SpeechItem, build_document
from dina.text.bpe import TextTokenizer

CFG = tiny()
VOCAB = CFG.vocab
TEXTS = ["draw a red ball", "a blue cube on the left", "hello there", "the cat sat", ASR_PROMPT, "0 1 2 3 4 5"]


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer.train(TEXTS * 4, VOCAB)


def _codes(sizes, n: int, seed: int) -> torch.Tensor:
    """(n, L) codes, level l in [0, sizes[l])."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, k, (n,), generator=g) for k in sizes], dim=1)


def _image(seed: int, h: int = 2, w: int = 3) -> ImageItem:
    codes = _codes(VOCAB.visual_codebook_sizes, h * w, seed).view(h, w, -1)
    return ImageItem(codes=codes, captions=("a blue cube on the left",), prompt="draw a red ball")


def _speech(seed: int, frames: int = 5, text: str = "hello there") -> SpeechItem:
    return SpeechItem(codes=_codes(VOCAB.audio_codebook_sizes, frames, seed), text=text)


def _doc(tok: TextTokenizer, name: str, seed: int = 0) -> Document:
    items = {
        "t2i": [_image(seed)],
        "caption": [_image(seed + 1)],
        "asr": [_speech(seed, text="the cat sat")],
        "tts": [_speech(seed, frames=5), _speech(seed + 1, frames=4, text="the cat sat")],
    }[name]
    return build_document(name, tok, items, np.random.default_rng(seed))


def _mixed(tok: TextTokenizer) -> ModelBatch:
    return collate([_doc(tok, name, seed) for seed, name in enumerate(("t2i", "tts", "asr", "caption"))])


def _model(cfg=CFG) -> NativeModel:
    """Eval mode: the MoE's correction bias stays fixed, so two forwards route alike."""
    torch.manual_seed(0)
    return NativeModel(cfg).eval()


def _sp(tok: TextTokenizer, name: str) -> int:
    return tok.special_id(f"<longcat_{name}>")


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _close(a, b, **kw) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, **kw)


# ---- the released size ------------------------------------------------------------------------
def test_longcat_next_builds_on_meta_with_the_reports_parameter_counts():
    before = _rss_bytes()
    with torch.device("meta"):
        model = NativeModel(longcat_next())
    assert _rss_bytes() - before < 1 << 30  # fp32 weights alone would be ~280 GB
    assert all(p.is_meta for p in model.parameters()) and all(b.is_meta for b in model.buffers())
    counts = model.parameter_counts()
    # Report Sec. 2.4: LongCat-Flash-Lite, 68.5B in total, 3B active on average (2.9B to 4.5B).
    assert counts["language_model"] == pytest.approx(68.5e9, rel=0.005)
    assert counts["active_min"] == pytest.approx(2.9e9, rel=0.03)
    assert counts["active_max"] == pytest.approx(4.5e9, rel=0.03)
    assert counts["active_min"] < counts["active_max"] < counts["total"]
    # Release §1: one table of 282,624 rows (text, specials, audio and visual levels) of width 3072.
    assert tuple(model.embedding.embed_tokens.weight.shape) == (282624, 3072)
    assert counts["embedding_table"] == 282624 * 3072


# ---- inputs -----------------------------------------------------------------------------------
def test_embed_follows_the_formula_at_every_kind_of_position(tok):
    model = _model()
    emb = model.embedding
    silent = [_sp(tok, "img_pad"), _sp(tok, "audio_pad"), _sp(tok, "audiotext_pad")]
    with torch.no_grad():
        emb.embed_tokens.weight[silent] = 100.0  # any leak of a pad's own row would show
    batch = _mixed(tok)
    with torch.no_grad():
        x = model.embed(batch)
        table = emb.embed_tokens.weight

        def level_sum(modality: str, rows: torch.Tensor) -> torch.Tensor:
            codes = getattr(batch, f"{modality}_codes_NL")[rows]
            return table[codes + torch.tensor(VOCAB.level_offsets(modality))].sum(dim=1)

        image = (batch.visual_codes_NL[:, 0] >= 0).nonzero().squeeze(1)
        audio = batch.audio_codes_NL[:, 0] >= 0
        guide = batch.guide_N
        pure = (audio & (guide < 0)).nonzero().squeeze(1)
        guided = (audio & (guide >= 0) & (guide != silent[2])).nonzero().squeeze(1)
        guided_by_pad = (audio & (guide == silent[2])).nonzero().squeeze(1)
        text = ((batch.modality_N == 0) & (guide < 0)).nonzero().squeeze(1)
        assert min(len(image), len(pure), len(guided), len(guided_by_pad), len(text)) > 0
        assert set(batch.ids_N[image].tolist()) == {silent[0]}
        assert set(batch.ids_N[torch.cat([pure, guided, guided_by_pad])].tolist()) == {silent[1]}
        assert torch.equal(x[image], emb.pre_buffer(level_sum("visual", image)))
        assert torch.equal(x[pure], level_sum("audio", pure))
        _close(x[guided], level_sum("audio", guided) + table[guide[guided]])
        assert torch.equal(x[guided_by_pad], level_sum("audio", guided_by_pad))
        assert torch.equal(x[text], table[batch.ids_N[text]])
        # Text-guided steps before the audio starts: the main id (0 for a pad) plus the guide.
        lead = ((batch.modality_N == 0) & (guide >= 0)).nonzero().squeeze(1)
        assert len(lead) > 0
        main = table[batch.ids_N[lead]] * (batch.ids_N[lead] != silent[2])[:, None]
        extra = table[guide[lead]] * (guide[lead] != silent[2])[:, None]
        _close(x[lead], main + extra)


# ---- causality and packing --------------------------------------------------------------------
def test_packing_a_second_document_changes_nothing_about_the_first(tok):
    model = _model()
    a, b = _doc(tok, "tts"), _doc(tok, "t2i", seed=3)
    with torch.no_grad():
        alone, other = model(collate([a])), model(collate([b]))
        first = model(collate([a, b]))
        second = model(collate([b, a], formats=("tts", "t2i")))
    predictions = int((a.lm_labels != IGNORE).sum()) + int((a.audio_labels != IGNORE).any(1).sum())
    _close(first.hidden_ND[: len(a)], alone.hidden_ND)
    _close(second.hidden_ND[len(b) :], alone.hidden_ND)
    for packed in (first, second):
        assert int(packed.format_count_F[0]) == int(alone.format_count_F[0]) == predictions
        _close(packed.format_loss_F[0], alone.format_loss_F[0])
        # Routing is per token: the packed counters are the sum of each document's.
        assert torch.equal(packed.moe_counts_YMX, alone.moe_counts_YMX + other.moe_counts_YMX)


def test_changing_position_t_changes_no_hidden_state_before_t(tok):
    model = _model()
    a, b = _doc(tok, "t2i"), _doc(tok, "caption", seed=1)
    batch = collate([a, b])
    t = int((batch.visual_codes_NL[:, 0] >= 0).nonzero()[2])  # an image position of the first document
    codes = batch.visual_codes_NL.clone()
    codes[t] = (codes[t] + 1) % torch.tensor(VOCAB.visual_codebook_sizes)
    ids = batch.ids_N.clone()
    s = len(a) + len(b) - 3  # a caption token of the second document
    ids[s] = (ids[s] + 1) % VOCAB.text_vocab_size
    with torch.no_grad():
        base = model(batch).hidden_ND
        labels = torch.where(batch.visual_labels_NL[t] == IGNORE, IGNORE, codes[t])  # labels are the codes
        changed = dataclasses.replace(batch, visual_codes_NL=codes, visual_labels_NL=batch.visual_labels_NL.clone())
        changed.visual_labels_NL[t] = labels
        image_changed = model(changed).hidden_ND
        text_changed = model(dataclasses.replace(batch, ids_N=ids)).hidden_ND
    _close(image_changed[:t], base[:t])
    _close(image_changed[len(a) :], base[len(a) :])  # the other document does not see it
    assert (image_changed[t] - base[t]).abs().max() > 1e-2
    _close(text_changed[:s], base[:s])
    assert (text_changed[s] - base[s]).abs().max() > 1e-2


# ---- the loss ---------------------------------------------------------------------------------
def _depth_ce(model: NativeModel, modality: str, h_D: torch.Tensor, labels_L: torch.Tensor) -> torch.Tensor:
    """One depth prediction: the mean cross-entropy over all levels, or level 0 alone for "end"."""
    head = model.visual_head if modality == "visual" else model.audio_head
    if bool((labels_L != IGNORE).all()):
        logits = head(h_D[None], model.embedding.level_embeddings(modality, labels_L[None]))
        return torch.stack([F.cross_entropy(lg[0], labels_L[i]) for i, lg in enumerate(logits)]).mean()
    assert modality == "audio" and bool((labels_L[1:] == IGNORE).all()), labels_L
    assert int(labels_L[0]) == head.codebook_sizes[0]  # the end class
    zeros = torch.zeros_like(labels_L)[None]  # level 0 reads only h: the teacher codes do not matter
    return F.cross_entropy(head(h_D[None], model.embedding.level_embeddings(modality, zeros))[0][0], labels_L[0])


def test_loss_equals_a_direct_computation_from_the_hidden_states(tok):
    model = _model()
    batch = _mixed(tok)
    with torch.no_grad():
        out = model(batch)
        h = out.hidden_ND
        losses: list[tuple[int, torch.Tensor]] = []  # (format, loss) per prediction
        counts = {"lm": 0, "visual": 0, "audio": 0}
        for t in range(1, batch.n_tokens):
            f = int(batch.format_N[t])
            if int(batch.lm_labels_N[t]) != IGNORE:
                losses.append((f, F.cross_entropy(model.lm_head(h[t - 1]), batch.lm_labels_N[t])))
                counts["lm"] += 1
            for modality in ("visual", "audio"):
                labels_L = getattr(batch, f"{modality}_labels_NL")[t]
                if bool((labels_L != IGNORE).any()):
                    losses.append((f, _depth_ce(model, modality, h[t - 1], labels_L)))
                    counts[modality] += 1
    all_P = torch.stack([loss for _, loss in losses])
    _close(out.loss, all_P.mean())
    assert {k: out.parts[f"{k}_count"] for k in counts} == counts
    assert int(out.format_count_F.sum()) == len(losses)
    _close(out.format_loss_F.sum(), out.loss * len(losses))
    for f in range(len(batch.formats)):
        mine = [loss for g, loss in losses if g == f]
        assert int(out.format_count_F[f]) == len(mine) > 0
        _close(out.format_loss_F[f], torch.stack(mine).sum())


def test_audiogen_end_predicts_the_end_class_at_level_0_only(tok):
    model = _model()
    doc = _doc(tok, "tts")
    end = (doc.ids == _sp(tok, "audiogen_end")).nonzero().squeeze(1)
    assert len(end) == 2
    k0 = VOCAB.audio_codebook_sizes[0]
    assert doc.audio_labels[end].tolist() == [[k0] + [IGNORE] * 7] * 2
    assert doc.lm_labels[end].tolist() == [_sp(tok, "audiogen_end")] * 2
    # Keep only the two end predictions of the audio head.
    only_end = torch.full_like(doc.audio_labels, IGNORE)
    only_end[end] = doc.audio_labels[end]
    batch = collate([dataclasses.replace(doc, audio_labels=only_end)])
    with torch.no_grad():
        out = model(batch)
        assert out.parts["audio_count"] == 2 and torch.isfinite(out.loss)
        h = out.hidden_ND[end - 1]
        direct = F.cross_entropy(model.audio_head.heads[0](_head_state(model, h)), torch.full((2,), k0))
        assert out.parts["audio_loss"] == pytest.approx(float(direct), rel=1e-5)
        assert out.parts["audio_l0"] == pytest.approx(out.parts["audio_loss"], rel=1e-5)
        assert all(out.parts[f"audio_l{i}"] == 0 for i in range(1, 8))
        # Levels >= 1 carry no loss there: changing their classifiers changes nothing.
        for head in model.audio_head.heads[1:]:
            head.weight.normal_()
        assert model(batch).loss == out.loss
        model.audio_head.heads[0].weight.normal_()
        assert model(batch).loss != out.loss


def _head_state(model: NativeModel, h_PD: torch.Tensor) -> torch.Tensor:
    """The audio head's final state at level position 0, which depends on h alone."""
    head = model.audio_head
    x = head.hidden_proj(head.hidden_norm(h_PD))[:, None]
    for block in head.blocks:
        x = block(x)
    return head.headnorm(x)[:, 0]


def test_level_weights_select_the_levels_that_count(tok):
    weights = (1.0,) + (0.0,) * 7
    cfg = dataclasses.replace(CFG, visual_head=dataclasses.replace(CFG.visual_head, level_weights=weights))
    equal, level0 = _model(), _model(cfg)
    batch = _mixed(tok)
    with torch.no_grad():
        a, b = equal(batch), level0(batch)
        rows = (batch.visual_labels_NL != IGNORE).all(1).nonzero().squeeze(1)
        labels = batch.visual_labels_NL[rows]
        logits = level0.visual_head(b.hidden_ND[rows - 1], level0.embedding.level_embeddings("visual", labels))
        direct = [float(F.cross_entropy(lg, labels[:, i])) for i, lg in enumerate(logits)]
    assert b.parts["visual_loss"] == pytest.approx(direct[0], rel=1e-5)
    assert a.parts["visual_loss"] == pytest.approx(sum(direct) / 8, rel=1e-5)
    assert a.parts["audio_loss"] == b.parts["audio_loss"] and a.parts["lm_loss"] == b.parts["lm_loss"]
    assert a.parts["visual_loss"] != pytest.approx(b.parts["visual_loss"], rel=1e-3)


# ---- MoE statistics ---------------------------------------------------------------------------
def test_moe_counts_add_up_per_layer_and_modality(tok):
    batch = _mixed(tok)
    with torch.no_grad():
        counts = _model()(batch).moe_counts_YMX
    b = CFG.backbone
    assert counts.shape == (b.n_layers, len(MODALITIES), b.n_experts + b.n_zero_experts)
    per_modality = torch.bincount(batch.modality_N, minlength=3)
    assert bool((per_modality > 0).all())
    for layer in range(b.n_layers):
        assert counts[layer].sum(1).tolist() == (b.top_k * per_modality).tolist()


# ---- training ---------------------------------------------------------------------------------
def test_a_few_adamw_steps_lower_every_heads_loss(tok):
    torch.manual_seed(0)
    model = NativeModel(CFG).train()
    batch = _mixed(tok)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    curve = []
    for _ in range(8):
        out = model(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        curve.append(out.parts)
    for head in ("lm", "visual", "audio"):
        first, last = curve[0][f"{head}_loss"], curve[-1][f"{head}_loss"]
        assert last < 0.7 * first, (head, [round(p[f"{head}_loss"], 3) for p in curve])


# ---- bad input --------------------------------------------------------------------------------
def test_bad_ids_codes_and_batches_are_refused(tok):
    model = _model()
    batch = collate([_doc(tok, "t2i")])
    ids = batch.ids_N.clone()
    ids[1] = VOCAB.audio_offset  # the first audio code's id is not a text id
    with pytest.raises(BadCodes, match="text ids"):
        model(dataclasses.replace(batch, ids_N=ids))
    t = int((batch.visual_codes_NL[:, 0] >= 0).nonzero()[0])
    for level in (0, 7):
        codes = batch.visual_codes_NL.clone()
        codes[t, level] = VOCAB.visual_codebook_sizes[level]
        with pytest.raises(BadCodes, match=f"level {level}"):
            model(dataclasses.replace(batch, visual_codes_NL=codes))
    with pytest.raises(BadArgument, match="empty"):
        collate([])


def test_the_small_preset_sits_between_tiny_and_the_release():
    with torch.device("meta"):
        counts = NativeModel(small()).parameter_counts()
    assert 0.5e9 < counts["total"] < 1.5e9
    assert counts["active_min"] < counts["active_max"] < counts["total"] / 3
