"""One `generate()` for every modality: text, images and text-guided speech in a single call
(report Sec. 2.5.2-2.5.3, Fig. 7; `longcat-next-release.md` §2, §6, §8).

Each row of a batch is a prompt; the prompts are prefilled together (right-padded) into a
preallocated KV cache (`dina.inference.cache`), then all unfinished rows decode together, one
position per step. A
row is in one of three modes, switched by the special tokens it reads or writes:

- **text**: the LM head samples the next id. `</longcat_s>` ends the row. `<longcat_img_start>`
  enters image mode with the size of the latest `<longcat_img_token_size>h w</longcat_img_token_size>`
  tag; `<longcat_audiogen_start>` enters speech mode.
- **image** (release §2, §6): h rows of w positions, `<longcat_img_newline>` after each row and
  `<longcat_img_end>` after the last, h · (w + 1) steps. At a position the visual DepthTransformer
  samples the 8 codes from the hidden state (the LM's own token is forced to the pad), and the
  next input is the Pre-Buffer of their level sum. With a CFG scale s ≠ 1 an unconditional row
  (the size tag and `<longcat_img_start>` alone, as the release's demo builds it) runs beside the
  conditional one in the same batch; each level's logits are l_u + s (l_c - l_u) and both rows
  are fed the code sampled once.
- **speech** (release §8, Sec. 2.5.3): after `<longcat_audiogen_start>`, step p's hidden state
  gives a text-stream token (LM head; only text ids and `<longcat_audiotext_pad>`, which ends the
  text) and, once p > d, the audio head's 8 codes. Step p's input is the main id
  (`audiotext_pad` before the delay d, `audiotext_start` at d, the audio pad after) plus the text
  token plus the audio level sum. With `delay=None` (serial) d becomes the step at which the text
  ends. The audio head's level-0 "end" class closes the segment: the input is
  `<longcat_audiogen_end>` and the row returns to text mode, where the model may start another
  segment or end.

Reaching `max_new_tokens` mid-image or mid-speech keeps what was made, marked incomplete.
Streaming callbacks receive text ids as they are sampled, each finished image row, and each
audio frame's codes. Sampling is seeded per call (`GenerationConfig.seed`): the same prompts and
seed give the same output.

Shapes: B rows, D width, L levels.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from dina.errors import BadArgument, BadConfig
from dina.inference.cache import KVCache, backbone_step
from dina.inference.depth_sampling import level_embedder, sample_levels
from dina.inference.sampling import AUDIO_DEFAULT, IMAGE_DEFAULT, TEXT_DEFAULT, SamplingConfig, sample
from dina.model.batch import ModelBatch
from dina.model.native import NativeModel
from dina.sequence.document import NO_CODE, Document
from dina.text.bpe import TextTokenizer


@dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    max_new_tokens: int = 512
    text: SamplingConfig = TEXT_DEFAULT
    image: SamplingConfig = IMAGE_DEFAULT
    audio: SamplingConfig = AUDIO_DEFAULT
    cfg_scale: float = 1.0  # image classifier-free guidance; 1 = none
    delay: int | None = 0  # text-guided speech: 0 parallel ... None serial
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise BadArgument(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.cfg_scale >= 0:
            raise BadArgument(f"cfg_scale must be >= 0, got {self.cfg_scale}")
        if self.delay is not None and self.delay < 0:
            raise BadArgument(f"delay must be >= 0 or None (serial), got {self.delay}")


@dataclass(kw_only=True)
class ImageOut:
    h: int
    w: int
    codes: list[list[list[int]]] = field(default_factory=list)  # rows of w positions of L codes
    complete: bool = False

    def grid(self) -> torch.Tensor:
        """(rows made, w, L) codes."""
        full = [r for r in self.codes if len(r) == self.w]
        return torch.tensor(full, dtype=torch.long).reshape(len(full), self.w, -1)


@dataclass(kw_only=True)
class SpeechOut:
    delay: int | None  # the delay used (serial: known once the text has ended)
    text_ids: list[int] = field(default_factory=list)
    codes: list[list[int]] = field(default_factory=list)  # (T, L)
    complete: bool = False


@dataclass(kw_only=True)
class RowOutput:
    """Everything one row generated, in order: `ids` is the main stream (text and specials as read
    back), `segments` the images and speech segments."""

    ids: list[int] = field(default_factory=list)
    segments: list[ImageOut | SpeechOut] = field(default_factory=list)
    finished: bool = False


@dataclass(kw_only=True)
class _Row:
    out: RowOutput
    mode: str = "text"
    step: int = 0  # within the image or speech segment
    text_ended: bool = False
    delay: int | None = 0


@dataclass(frozen=True, kw_only=True)
class Callbacks:
    on_text: Callable[[int, int], None] | None = None  # (row, id)
    on_image_row: Callable[[int, int, torch.Tensor], None] | None = None  # (row, y, (w, L) codes)
    on_audio: Callable[[int, torch.Tensor], None] | None = None  # (row, (L,) codes)


_SIZE_TAG = re.compile(r"<longcat_img_token_size>\s*(\d+)\s+(\d+)\s*</longcat_img_token_size>")


class Engine:
    """Generation with a `NativeModel` and its text tokenizer."""

    def __init__(self, model: NativeModel, tok: TextTokenizer) -> None:
        if model.ngram is not None:
            raise BadConfig("the engine does not compute n-gram embeddings yet; use a preset without them")
        self.model, self.tok, self.cfg = model.eval(), tok, model.cfg
        sp = tok.special_id
        self.ids = {
            name: sp(f"<longcat_{name}>")
            for name in (
                "img_start",
                "img_end",
                "img_pad",
                "img_newline",
                "audio_pad",
                "audiogen_start",
                "audiogen_end",
                "audiotext_start",
                "audiotext_pad",
            )
        }
        self.end_of_turn = sp("</longcat_s>")
        self.size_open, self.size_close = sp("<longcat_img_token_size>"), sp("</longcat_img_token_size>")
        vocab = self.cfg.vocab
        self.lv, self.la = len(vocab.visual_codebook_sizes), len(vocab.audio_codebook_sizes)
        self.visual_embed = level_embedder(model.embedding, "visual", checked=False)
        self.audio_embed = level_embedder(model.embedding, "audio", checked=False)
        # The text stream of speech may hold text ids and the pad that ends it, nothing else.
        self.speech_text_mask = torch.zeros(vocab.audio_offset, dtype=torch.bool)
        self.speech_text_mask[: vocab.text_vocab_size] = True
        self.speech_text_mask[self.ids["audiotext_pad"]] = True

    # ---- inputs ---------------------------------------------------------------------------
    def _embed(
        self, ids: list[int], guides: list[int], visual: list[list[int]], audio: list[list[int]]
    ) -> torch.Tensor:
        """One position per row -> (B, 1, D) input embeddings, by the training formula."""
        n = len(ids)
        batch = ModelBatch(
            ids_N=torch.tensor(ids),
            guide_N=torch.tensor(guides),
            visual_codes_NL=torch.tensor(visual, dtype=torch.long).reshape(n, self.lv),
            audio_codes_NL=torch.tensor(audio, dtype=torch.long).reshape(n, self.la),
            lm_labels_N=torch.full((n,), -100),
            visual_labels_NL=torch.full((n, self.lv), -100),
            audio_labels_NL=torch.full((n, self.la), -100),
            modality_N=torch.zeros(n, dtype=torch.long),
            format_N=torch.zeros(n, dtype=torch.long),
            formats=("generate",),
            cu_seqlens=torch.arange(n + 1, dtype=torch.int32),
            pos_N=torch.zeros(n, dtype=torch.long),
        )
        return self.model.embed(batch)[:, None]

    def _prompt_inputs(self, prompt: Sequence[int] | Document) -> torch.Tensor:
        """(T, D) input embeddings of a prompt: ids, or a document whose images and audio carry codes."""
        if not len(prompt):
            raise BadArgument("an empty prompt")
        if isinstance(prompt, Document):
            x = self._embed(
                prompt.ids.tolist(), prompt.guide.tolist(), prompt.visual_codes.tolist(), prompt.audio_codes.tolist()
            )
        else:
            n = len(prompt)
            x = self._embed(list(prompt), [NO_CODE] * n, [[NO_CODE] * self.lv] * n, [[NO_CODE] * self.la] * n)
        return x[:, 0]

    def _prefill(self, cache: KVCache, row: int, prompt: Sequence[int] | Document) -> torch.Tensor:
        """Run one prompt into cache row `row`; its last hidden state (D,)."""
        x = self._prompt_inputs(prompt)[None]
        return backbone_step(self.model.backbone, x, cache, torch.tensor([row]))[0, -1]

    def _prefill_batch(self, cache: KVCache, prompts: Sequence[Sequence[int] | Document]) -> torch.Tensor:
        """Run all prompts into cache rows 0 … B-1 in one backbone step, right-padded to the longest:
        a padded position sits after its row's prompt, where no real query looks (causal), and
        decoding overwrites it. Returns each row's last real hidden state (B, D)."""
        inputs = [self._prompt_inputs(p) for p in prompts]
        lengths = torch.tensor([x.shape[0] for x in inputs])
        x_BTD = inputs[0].new_zeros(len(inputs), int(lengths.max()), inputs[0].shape[1])
        for b, x in enumerate(inputs):
            x_BTD[b, : x.shape[0]] = x
        rows = torch.arange(len(inputs))
        h_BTD = backbone_step(self.model.backbone, x_BTD, cache, rows)
        cache.lengths_B[rows] = lengths
        return h_BTD[rows, lengths - 1]

    # ---- the loop ---------------------------------------------------------------------------
    def _image_size(self, ids: list[int]) -> tuple[int, int]:
        text = self.tok.decode(ids[-64:])
        found = _SIZE_TAG.findall(text)
        if not found:
            raise BadArgument("<longcat_img_start> without a preceding <longcat_img_token_size>h w</...> tag")
        h, w = (int(v) for v in found[-1])
        if h < 1 or w < 1:
            raise BadArgument(f"image size {h}x{w} must be at least 1x1")
        return h, w

    def _enter(self, state: _Row, token: int, gen: GenerationConfig) -> None:
        """Switch mode after the row reads `token`."""
        if token == self.ids["img_start"]:
            h, w = self._image_size(state.out.ids)
            state.mode, state.step = "image", 0
            state.out.segments.append(ImageOut(h=h, w=w))
        elif token == self.ids["audiogen_start"]:
            state.mode, state.step, state.text_ended, state.delay = "speech", 0, False, gen.delay
            state.out.segments.append(SpeechOut(delay=gen.delay))

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int] | Document],
        gen: GenerationConfig | None = None,
        callbacks: Callbacks | None = None,
    ) -> list[RowOutput]:
        """Continue each prompt until it ends or `max_new_tokens` steps. A prompt is ids (text and
        specials), or a `Document` (`dina.sequence.document`) whose images and audio carry codes."""
        gen, cb = gen or GenerationConfig(), callbacks or Callbacks()
        B = len(prompts)
        if B == 0:
            raise BadArgument("no prompts")
        guided = gen.cfg_scale != 1.0
        longest = max(len(p) for p in prompts)
        max_len = longest + gen.max_new_tokens + 1
        if max_len > self.cfg.backbone.max_seq_len:
            raise BadArgument(f"prompt + max_new_tokens ({max_len}) exceed max_seq_len {self.cfg.backbone.max_seq_len}")
        cache = KVCache(self.cfg.backbone, 2 * B if guided else B, max_len)
        generator = torch.Generator().manual_seed(gen.seed)
        ids = [p.ids.tolist() if isinstance(p, Document) else list(p) for p in prompts]
        states = [_Row(out=RowOutput(ids=list(i))) for i in ids]
        hidden = self._prefill_batch(cache, prompts)
        uncond: dict[int, torch.Tensor] = {}  # row -> hidden state of its unconditional twin (CFG)
        for b, i in enumerate(ids):
            self._enter(states[b], i[-1], gen)
        for _ in range(gen.max_new_tokens):
            if guided:
                for b, state in enumerate(states):
                    if state.mode == "image" and state.step == 0 and b not in uncond:
                        uncond[b] = self._prefill_uncond(cache, state, B + b)
            active = [b for b in range(B) if not states[b].out.finished]
            reading = [b for b in active if states[b].mode != "image"]  # image positions ignore the LM head
            logits = self.model.lm_head(hidden[reading]) if reading else hidden.new_empty(0)  # one call
            row_logits = dict(zip(reading, logits.split(1), strict=True)) if reading else {}
            drawn = self._greedy_text(states, reading, logits, gen)
            steps = {
                b: self._decide(
                    b, states[b], hidden[b], row_logits.get(b), drawn.get(b), uncond.get(b), gen, generator, cb
                )
                for b in active
            }
            rows = [b for b, step in steps.items() if step is not None]
            if not rows:
                break
            next_ids, guides, visual, audio = zip(*(steps[b] for b in rows), strict=True)  # type: ignore[misc]
            x = self._step_inputs(list(next_ids), list(guides), list(visual), list(audio))
            twins = [j for j, b in enumerate(rows) if b in uncond]  # unconditional rows read the same inputs
            cache_rows = torch.tensor(rows + [B + rows[j] for j in twins])
            x = torch.cat([x, x[twins]]) if twins else x
            h_new = backbone_step(self.model.backbone, x, cache, cache_rows)[:, 0]
            hidden[rows] = h_new[: len(rows)]
            for j, h in zip(twins, h_new[len(rows) :], strict=True):
                uncond[rows[j]] = h
            for b in rows:
                if states[b].mode != "image":
                    uncond.pop(b, None)
        return [s.out for s in states]

    def _greedy_text(
        self, states: list[_Row], reading: list[int], logits_RV: torch.Tensor, gen: GenerationConfig
    ) -> dict[int, int]:
        """Greedy text ids of every text-mode row in one `sample` call (greedy draws use no random
        numbers, so drawing them together equals drawing them one by one); {} when text is sampled."""
        text = [j for j, b in enumerate(reading) if states[b].mode == "text"]
        if not gen.text.greedy or not text:
            return {}
        history = self._text_history([states[reading[j]] for j in text], gen)
        rows_TV = logits_RV if len(text) == len(reading) else logits_RV[text]
        tokens = sample(rows_TV, gen.text, history=history).tolist()
        return {reading[j]: t for j, t in zip(text, tokens, strict=True)}

    @staticmethod
    def _text_history(states: list[_Row], gen: GenerationConfig) -> list[torch.Tensor] | None:
        """The last 64 ids of each row, for the repetition penalty (None when it is off)."""
        if gen.text.repetition_penalty == 1.0:
            return None
        return [torch.tensor(s.out.ids[-64:], dtype=torch.long) for s in states]

    def _step_inputs(
        self, ids: list[int], guides: list[int], visual: list[list[int]], audio: list[list[int]]
    ) -> torch.Tensor:
        """`_embed` of one decoding step, by a shorter road where every row is plain text or every
        row an image position: the same rows of the same table, the same sums (no range checks,
        whose host syncs cost more than the step's embedding; the codes were drawn in range)."""
        emb, pad = self.model.embedding, self.ids["img_pad"]
        plain = all(v[0] == NO_CODE for v in visual) and all(a[0] == NO_CODE for a in audio)
        if plain and all(g == NO_CODE for g in guides) and all(0 <= i < self.cfg.vocab.audio_offset for i in ids):
            ids_N = torch.tensor(ids)
            word_ND = emb.embed_tokens(ids_N)
            return (word_ND * (~torch.isin(ids_N, self.model.silent_ids))[:, None].to(word_ND.dtype))[:, None]
        image = all(i == pad and v[0] != NO_CODE for i, v in zip(ids, visual, strict=True))
        if image and all(g == NO_CODE for g in guides) and all(a[0] == NO_CODE for a in audio):
            # The pad is silent (its word row is multiplied by 0): the input is the Pre-Buffer alone.
            rows_NL = torch.tensor(visual) + torch.tensor(self.cfg.vocab.level_offsets("visual"))
            return emb.pre_buffer(emb.embed_tokens(rows_NL).sum(dim=1))[:, None]
        return self._embed(ids, guides, visual, audio)

    def _prefill_uncond(self, cache: KVCache, state: _Row, row: int) -> torch.Tensor:
        """The unconditional prompt of the image `state` starts (its size tag and start token alone,
        as the release's demo builds it), prefilled into cache row `row` from empty."""
        seg = state.out.segments[-1]
        assert isinstance(seg, ImageOut)
        prompt = [self.size_open, *self.tok.encode(f"{seg.h} {seg.w}"), self.size_close, self.ids["img_start"]]
        cache.lengths_B[row] = 0
        return self._prefill(cache, row, prompt)

    # ---- one row's step ---------------------------------------------------------------------
    def _decide(
        self,
        b: int,
        state: _Row,
        h_D: torch.Tensor,
        logits_1V: torch.Tensor | None,
        drawn: int | None,
        h_uncond_D: torch.Tensor | None,
        gen: GenerationConfig,
        generator: torch.Generator,
        cb: Callbacks,
    ) -> tuple[int, int, list[int], list[int]] | None:
        """From the row's latest hidden state, what it writes next: (id, guide, visual, audio) of
        its next input position, or None when the row has finished. `drawn`: the text id already
        drawn for it (`_greedy_text`), if any; `logits_1V` is None in image mode, which ignores the LM head."""
        none_v, none_a = [NO_CODE] * self.lv, [NO_CODE] * self.la
        out = state.out
        if state.mode == "image":
            return self._image_step(b, state, h_D, h_uncond_D, gen, generator, cb)
        assert logits_1V is not None
        if state.mode == "speech":
            return self._speech_step(b, state, h_D, logits_1V, gen, generator, cb)
        token = drawn
        if token is None:
            token = int(sample(logits_1V, gen.text, generator, history=self._text_history([state], gen))[0])
        out.ids.append(token)
        if cb.on_text:
            cb.on_text(b, token)
        if token == self.end_of_turn:
            out.finished = True
            return None
        self._enter(state, token, gen)
        return token, NO_CODE, none_v, none_a

    def _image_step(
        self,
        b: int,
        state: _Row,
        h_D: torch.Tensor,
        h_uncond_D: torch.Tensor | None,
        gen: GenerationConfig,
        generator: torch.Generator,
        cb: Callbacks,
    ) -> tuple[int, int, list[int], list[int]]:
        seg = state.out.segments[-1]
        assert isinstance(seg, ImageOut)
        none_a = [NO_CODE] * self.la
        col = state.step % (seg.w + 1)
        state.step += 1
        if col < seg.w:  # an image position: the codes, then their embedding as the next input
            guided = h_uncond_D is not None and gen.cfg_scale != 1.0
            h = torch.stack([h_D, h_uncond_D]) if guided else h_D[None]  # type: ignore[list-item]
            codes = sample_levels(
                self.model.visual_head,
                self.visual_embed,
                h,
                gen.image,
                generator=generator,
                allow_end="none",
                cfg_scale=gen.cfg_scale if guided else 1.0,
            ).codes_NL[0]
            if col == 0:
                seg.codes.append([])
            code_list = codes.tolist()
            seg.codes[-1].append(code_list)
            state.out.ids.append(self.ids["img_pad"])
            if col == seg.w - 1 and cb.on_image_row:
                cb.on_image_row(b, len(seg.codes) - 1, torch.tensor(seg.codes[-1]))
            return self.ids["img_pad"], NO_CODE, list(code_list), none_a
        last_row = len(seg.codes) == seg.h
        token = self.ids["img_end"] if last_row else self.ids["img_newline"]
        state.out.ids.append(token)
        if last_row:
            seg.complete = True
            state.mode = "text"
        return token, NO_CODE, [NO_CODE] * self.lv, none_a

    def _speech_step(
        self,
        b: int,
        state: _Row,
        h_D: torch.Tensor,
        logits_1V: torch.Tensor,
        gen: GenerationConfig,
        generator: torch.Generator,
        cb: Callbacks,
    ) -> tuple[int, int, list[int], list[int]]:
        seg = state.out.segments[-1]
        assert isinstance(seg, SpeechOut)
        p = state.step
        state.step += 1
        tpad = self.ids["audiotext_pad"]
        if state.text_ended:
            text = tpad
        else:
            history = [torch.tensor(seg.text_ids[-64:], dtype=torch.long)]
            text = int(sample(logits_1V, gen.text, generator, history=history, mask_BV=self.speech_text_mask[None])[0])
            if text == tpad:
                state.text_ended = True
                if state.delay is None:  # serial: the audio starts once the text is complete
                    state.delay = p
            else:
                seg.text_ids.append(text)
                if cb.on_text:
                    cb.on_text(b, text)
        d = state.delay
        if d is None or p < d:
            return tpad, text, [NO_CODE] * self.lv, [NO_CODE] * self.la
        if p == d:
            seg.delay = d  # serial segments learn theirs here
            return self.ids["audiotext_start"], text, [NO_CODE] * self.lv, [NO_CODE] * self.la
        past = [[torch.tensor([c[lvl] for c in seg.codes[-64:]], dtype=torch.long)] for lvl in range(self.la)]
        drawn = sample_levels(
            self.model.audio_head, self.audio_embed, h_D[None], gen.audio, generator=generator, allow_end="level0",
            history=past,
        )  # fmt: skip
        if bool(drawn.ended_N[0]):
            seg.complete = True
            state.mode = "text"
            end = self.ids["audiogen_end"]
            state.out.ids.append(end)
            return end, NO_CODE, [NO_CODE] * self.lv, [NO_CODE] * self.la
        codes = drawn.codes_NL[0].tolist()
        seg.codes.append(codes)
        if cb.on_audio:
            cb.on_audio(b, torch.tensor(codes))
        return self.ids["audio_pad"], text, [NO_CODE] * self.lv, codes
