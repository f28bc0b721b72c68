"""The engine (report Sec. 2.5.2-2.5.3; release §2, §6, §8): the KV cache reproduces the training
forward, batching changes nothing, the image and speech protocols hold, seeds repeat."""

import dataclasses

import numpy as np
import pytest
import torch

from dina.errors import BadArgument, BadConfig
from dina.inference.cache import KVCache, backbone_step
from dina.inference.engine import Callbacks, Engine, GenerationConfig, ImageOut, SpeechOut
from dina.inference.sampling import GREEDY, SamplingConfig
from dina.model.batch import collate
from dina.model.native import NativeModel
from dina.presets import tiny
from dina.sequence.document import NO_CODE
from dina.sequence.formats import ImageItem, SpeechItem, build_document
from dina.text.bpe import TextTokenizer

TEXTS = ["a red circle on the left", "the blue square is small", "say hello", "two green stars"] * 5


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(TEXTS, tiny().vocab)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return NativeModel(tiny()).eval()


def _image_item(seed: int = 0) -> ImageItem:
    g = torch.Generator().manual_seed(seed)
    sizes = tiny().vocab.visual_codebook_sizes
    codes = torch.stack([torch.randint(0, k, (2, 3), generator=g) for k in sizes], dim=-1)
    return ImageItem(codes=codes, captions=("a red circle",), qa=(("what?", "red"),), prompt="a red circle")


def _speech_item(seed: int = 0) -> SpeechItem:
    g = torch.Generator().manual_seed(seed)
    sizes = tiny().vocab.audio_codebook_sizes
    return SpeechItem(
        codes=torch.stack([torch.randint(0, k, (6,), generator=g) for k in sizes], dim=-1), text="say hello"
    )


def _greedy(**kw) -> GenerationConfig:
    return GenerationConfig(text=GREEDY, image=GREEDY, audio=GREEDY, **kw)


def _image_prompt(tok, h: int, w: int) -> list[int]:
    sp = tok.special_id
    return [
        *tok.encode("a red circle"),
        sp("<longcat_img_token_size>"),
        *tok.encode(f"{h} {w}"),
        sp("</longcat_img_token_size>"),
        sp("<longcat_img_start>"),
    ]


# ---- the cache ------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["t2i", "tts", "caption"])
def test_cached_decode_equals_the_training_forward(model, tok, fmt):
    rng = np.random.default_rng(0)
    items = [_speech_item()] if fmt == "tts" else [_image_item()]
    doc = build_document(fmt, tok, items, rng)
    with torch.no_grad():
        full = model(collate([doc])).hidden_ND
    engine = Engine(model, tok)
    cache = KVCache(model.cfg.backbone, 1, len(doc))
    x = engine._embed(doc.ids.tolist(), doc.guide.tolist(), doc.visual_codes.tolist(), doc.audio_codes.tolist())
    prefix = 5  # a prompt-like chunk, then one position at a time
    got = [backbone_step(model.backbone, x[:prefix].transpose(0, 1), cache, torch.tensor([0]))[0]]
    for t in range(prefix, len(doc)):
        got.append(backbone_step(model.backbone, x[t : t + 1], cache, torch.tensor([0]))[0])
    torch.testing.assert_close(torch.cat(got), full, atol=2e-5, rtol=1e-4)
    assert cache.bytes_per_token == 2 * model.cfg.backbone.n_layers * 2 * 2 * 32 * 4  # k and v, G = 2, Dh = 32


# ---- protocols ----------------------------------------------------------------------------
def test_the_image_protocol_takes_h_times_w_plus_one_steps(model, tok):
    engine = Engine(model, tok)
    h, w = 2, 3
    rows = []
    out = engine.generate(
        [_image_prompt(tok, h, w)],
        _greedy(max_new_tokens=h * (w + 1)),
        Callbacks(on_image_row=lambda b, y, codes: rows.append((b, y, tuple(codes.shape)))),
    )[0]
    sp = tok.special_id
    pad, nl, end = sp("<longcat_img_pad>"), sp("<longcat_img_newline>"), sp("<longcat_img_end>")
    made = out.ids[len(_image_prompt(tok, h, w)) :]
    assert made == [pad] * w + [nl] + [pad] * w + [end]
    (image,) = out.segments
    assert isinstance(image, ImageOut) and image.complete and image.grid().shape == (h, w, 8)
    sizes = torch.tensor(model.cfg.vocab.visual_codebook_sizes)
    assert bool(((image.grid() >= 0) & (image.grid() < sizes)).all())  # never the "end" class
    assert rows == [(0, 0, (w, 8)), (0, 1, (w, 8))]


def test_an_image_cut_by_max_new_tokens_is_kept_and_marked(model, tok):
    out = Engine(model, tok).generate([_image_prompt(tok, 3, 3)], _greedy(max_new_tokens=6))[0]
    (image,) = out.segments
    assert isinstance(image, ImageOut) and not image.complete and image.grid().shape == (1, 3, 8)


def test_cfg_runs_an_unconditional_twin_and_is_deterministic(model, tok):
    engine = Engine(model, tok)
    prompt = _image_prompt(tok, 2, 2)
    plain = engine.generate([prompt], _greedy(max_new_tokens=6))[0]
    same = engine.generate([prompt], _greedy(max_new_tokens=6, cfg_scale=1.0))[0]
    guided = engine.generate([prompt], _greedy(max_new_tokens=6, cfg_scale=3.0))[0]
    again = engine.generate([prompt], _greedy(max_new_tokens=6, cfg_scale=3.0))[0]
    assert plain.segments[0].grid().tolist() == same.segments[0].grid().tolist()
    assert guided.segments[0].grid().tolist() == again.segments[0].grid().tolist()
    assert guided.segments[0].complete
    assert guided.segments[0].grid().tolist() != plain.segments[0].grid().tolist()


@pytest.mark.parametrize("delay", [0, 2, None])
def test_speech_follows_the_delay_and_terminates(tok, delay):
    torch.manual_seed(0)
    model = NativeModel(tiny()).eval()
    sp = tok.special_id
    text = tok.encode("say hello")
    # Steer: the text stream writes `text` then ends; the audio head ends after twelve frames.
    engine = Engine(model, tok)
    script = [*text, sp("<longcat_audiotext_pad>")]
    calls = {"n": 0}
    real_sample = __import__("dina.inference.engine", fromlist=["sample"]).sample

    def scripted(logits, cfg, generator=None, history=None, mask_BV=None):
        if mask_BV is not None and logits.shape[1] == model.cfg.vocab.audio_offset:  # the text stream
            i = calls["n"]
            calls["n"] += 1
            return torch.tensor([script[min(i, len(script) - 1)]])
        return real_sample(logits, cfg, generator, history=history, mask_BV=mask_BV)

    import dina.inference.engine as eng

    end_bias = model.audio_head.heads[0].bias
    with torch.no_grad():
        end_bias[-1] = -1e4  # no end until twelve frames are out
    frames = {"n": 0}

    def count_frames(b, codes):
        frames["n"] += 1
        if frames["n"] == 12:
            with torch.no_grad():
                end_bias[-1] = 1e4

    prompt = [*tok.encode("say hello"), sp("<longcat_audiogen_start>")]
    original = eng.sample
    eng.sample = scripted
    try:
        out = engine.generate([prompt], _greedy(max_new_tokens=40, delay=delay), Callbacks(on_audio=count_frames))[0]
    finally:
        eng.sample = original
    seg = out.segments[0]
    assert isinstance(seg, SpeechOut) and seg.complete and len(seg.codes) == 12
    assert seg.text_ids == text
    assert seg.delay == (len(text) if delay is None else delay)  # serial: audio once the text has ended
    assert out.ids[len(prompt)] == sp("<longcat_audiogen_end>")  # the main stream records the segment's end


# ---- batching, seeds, streaming -----------------------------------------------------------
def test_batched_equals_one_by_one_and_seeds_repeat(model, tok):
    engine = Engine(model, tok)
    prompts = [tok.encode("a red circle"), _image_prompt(tok, 2, 2), tok.encode("two green stars on the left")]
    gen = GenerationConfig(max_new_tokens=12, text=SamplingConfig(temperature=0.0), image=GREEDY)
    batched = engine.generate(prompts, gen)
    alone = [engine.generate([p], gen)[0] for p in prompts]
    assert [o.ids for o in batched] == [o.ids for o in alone]
    sampled = GenerationConfig(max_new_tokens=12, text=SamplingConfig(temperature=1.0), seed=3)
    first = [o.ids for o in engine.generate(prompts, sampled)]
    assert first == [o.ids for o in engine.generate(prompts, sampled)]
    other = [o.ids for o in engine.generate(prompts, dataclasses.replace(sampled, seed=4))]
    assert first != other


def test_streamed_text_equals_the_final_text(model, tok):
    streamed: list[int] = []
    prompt = tok.encode("a red circle")
    out = Engine(model, tok).generate(
        [prompt],
        GenerationConfig(max_new_tokens=10, text=SamplingConfig(temperature=1.0)),
        Callbacks(on_text=lambda b, t: streamed.append(t)),
    )[0]
    assert streamed == out.ids[len(prompt) :]


def test_bad_input(model, tok):
    engine = Engine(model, tok)
    with pytest.raises(BadArgument, match="empty prompt"):
        engine.generate([[]])
    with pytest.raises(BadArgument, match="without a preceding"):
        engine.generate([[tok.special_id("<longcat_img_start>")]])
    with pytest.raises(BadArgument, match="max_seq_len"):
        engine.generate([[1] * 10], GenerationConfig(max_new_tokens=5000))
    for bad in ({"max_new_tokens": 0}, {"cfg_scale": -1.0}, {"delay": -2}):
        with pytest.raises(BadArgument):
            GenerationConfig(**bad)
    ngram = dataclasses.replace(tiny(), backbone=dataclasses.replace(tiny().backbone, ngram_vocab_ratio=2))
    with pytest.raises(BadConfig, match="n-gram"):
        Engine(NativeModel(ngram), tok)


def test_step_inputs_equal_the_training_embedding(model, tok):
    engine = Engine(model, tok)
    lv, la, pad = engine.lv, engine.la, engine.ids["img_pad"]
    none_v, none_a = [NO_CODE] * lv, [NO_CODE] * la
    text = [5, pad, tok.special_id("</longcat_s>")]  # the pad is silent: a zero row
    codes = [[3, 1, 4, 1, 5, 9, 2, 6], [0] * lv]
    for ids, guides, visual, audio in (
        (text, [NO_CODE] * 3, [none_v] * 3, [none_a] * 3),  # plain text
        ([pad, pad], [NO_CODE] * 2, codes, [none_a] * 2),  # image positions
        ([5, pad], [NO_CODE] * 2, [none_v, codes[0]], [none_a] * 2),  # mixed: the general road
    ):
        fast = engine._step_inputs(ids, guides, visual, audio)
        assert torch.equal(fast, engine._embed(ids, guides, visual, audio))


def test_backbone_steps_of_rows_out_of_order_and_unequal_lengths_equal_steps_alone(model):
    torch.manual_seed(5)
    D = model.cfg.backbone.dim
    lengths = {0: 3, 2: 5, 3: 1}
    together = KVCache(model.cfg.backbone, 4, 8)
    alone = {b: KVCache(model.cfg.backbone, 1, 8) for b in lengths}
    prompts = {b: torch.randn(1, n, D) for b, n in lengths.items()}
    for b, x in prompts.items():
        backbone_step(model.backbone, x, together, torch.tensor([b]))
        backbone_step(model.backbone, x, alone[b], torch.tensor([0]))
    for rows in ([3, 0, 2], [0, 2], [2, 3]):  # out of order, a gap, consecutive with unequal lengths
        x = torch.randn(len(rows), 1, D)
        got = backbone_step(model.backbone, x, together, torch.tensor(rows))
        for j, b in enumerate(rows):
            want = backbone_step(model.backbone, x[j : j + 1], alone[b], torch.tensor([0]))
            torch.testing.assert_close(got[j], want[0], atol=1e-5, rtol=1e-5)
    assert together.lengths_B.tolist() == [5, 0, 8, 3]
