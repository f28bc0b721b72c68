"""A document as the native model reads it: one id stream, codes at code positions, labels.

Report Sec. 2.5 (one next-token objective over every modality), 2.5.3 (text-guided audio),
4.4.2 (loss masks); `longcat-next-release.md` §2 (layouts), §4 (visual inputs), §8 (text-guided
audio inputs). Position t of a document holds:

- `ids[t]`: its token in the main stream: text and special ids, `<longcat_img_pad>` at image
  positions, `<longcat_audio_pad>` at audio positions;
- `guide[t]`: the parallel text stream of text-guided audio (`<longcat_audiotext_pad>` when the
  text has ended), -1 elsewhere; its embedding is added to the position's;
- `visual_codes[t]` / `audio_codes[t]`: the position's L codes, -1 where it has none;
- what the model must predict *at* t from the hidden state of t - 1 (-100 = no loss):
  `lm_labels[t]` (LM head: the main id, or the text stream inside text-guided audio),
  `visual_labels[t]` / `audio_labels[t]` (the depth heads: the codes, or the "end" class K_0
  at level 0 of the position that closes a text-guided audio span);
- `modality[t]`: 1 image or 2 audio at positions carrying codes, else 0 text (special tokens
  and the text-only steps of text-guided audio included); for the per-modality MoE statistics.

`DocumentBuilder` appends spans in the release's layouts; the sample formats
(`dina.sequence.formats`) compose them. Shapes: N positions, L levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dina.config import VocabConfig
from dina.errors import BadArgument, BadCodes
from dina.text.bpe import TextTokenizer

IGNORE = -100
NO_CODE = -1
TEXT, IMAGE, AUDIO = 0, 1, 2
MODALITIES = ("text", "image", "audio")


@dataclass(frozen=True, kw_only=True)
class Document:
    """One document's positions (module docstring); every tensor has N rows."""

    format: str
    ids: torch.Tensor  # (N,) int64
    guide: torch.Tensor  # (N,) int64, -1 = none
    visual_codes: torch.Tensor  # (N, Lv) int64, -1 = none
    audio_codes: torch.Tensor  # (N, La) int64, -1 = none
    lm_labels: torch.Tensor  # (N,) int64, -100 = no loss
    visual_labels: torch.Tensor  # (N, Lv) int64, -100 = no loss
    audio_labels: torch.Tensor  # (N, La) int64, -100 = no loss
    modality: torch.Tensor  # (N,) int64 in {TEXT, IMAGE, AUDIO}

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def n_targets(self) -> int:
        """Positions with any loss."""
        has = (self.lm_labels != IGNORE) | (self.visual_labels != IGNORE).any(1) | (self.audio_labels != IGNORE).any(1)
        return int(has.sum())

    def crop(self, n: int) -> Document:
        """The first n positions (a document split at the sequence budget keeps its head)."""
        cut = {k: getattr(self, k)[:n] for k in _TENSORS}
        return Document(format=self.format, **cut)


_TENSORS = ("ids", "guide", "visual_codes", "audio_codes", "lm_labels", "visual_labels", "audio_labels", "modality")


class DocumentBuilder:
    """Appends spans to a document in the release's layouts; `loss` marks what is predicted."""

    def __init__(self, text: TextTokenizer, fmt: str) -> None:
        self.tok, self.vocab, self.format = text, text.vocab, fmt
        self.lv, self.la = len(self.vocab.visual_codebook_sizes), len(self.vocab.audio_codebook_sizes)
        self.rows: dict[str, list] = {k: [] for k in _TENSORS}

    def sp(self, name: str) -> int:
        return self.tok.special_id(name)

    def _push(
        self,
        token: int,
        *,
        lm: int = IGNORE,
        guide: int = NO_CODE,
        visual: Sequence[int] | None = None,
        audio: Sequence[int] | None = None,
        visual_label: Sequence[int] | None = None,
        audio_label: Sequence[int] | None = None,
        modality: int = TEXT,
    ) -> None:
        r = self.rows
        r["ids"].append(token)
        r["guide"].append(guide)
        r["lm_labels"].append(lm)
        r["visual_codes"].append(list(visual) if visual is not None else [NO_CODE] * self.lv)
        r["audio_codes"].append(list(audio) if audio is not None else [NO_CODE] * self.la)
        r["visual_labels"].append(list(visual_label) if visual_label is not None else [IGNORE] * self.lv)
        r["audio_labels"].append(list(audio_label) if audio_label is not None else [IGNORE] * self.la)
        r["modality"].append(modality)

    # ---- text ----------------------------------------------------------------------------
    def ids(self, ids: Sequence[int], *, loss: bool) -> DocumentBuilder:
        for i in ids:
            self._push(int(i), lm=int(i) if loss else IGNORE)
        return self

    def text(self, text: str, *, loss: bool) -> DocumentBuilder:
        return self.ids(self.tok.encode(text), loss=loss)

    def special(self, name: str, *, loss: bool) -> DocumentBuilder:
        return self.ids([self.sp(name)], loss=loss)

    # ---- images --------------------------------------------------------------------------
    def _grid(self, codes_hwL: torch.Tensor) -> np.ndarray:
        if codes_hwL.ndim != 3 or codes_hwL.shape[2] != self.lv or 0 in codes_hwL.shape:
            raise BadCodes(f"image codes must be a non-empty (h, w, {self.lv}) grid, got {tuple(codes_hwL.shape)}")
        return codes_hwL.numpy()

    def image_understanding(self, codes_hwL: torch.Tensor) -> DocumentBuilder:
        """`<img_start>` + h·w pads carrying the codes + `<img_end>` (release §2); input only."""
        grid = self._grid(codes_hwL)
        self.special("<longcat_img_start>", loss=False)
        pad = self.sp("<longcat_img_pad>")
        for c in grid.reshape(-1, self.lv).tolist():
            self._push(pad, visual=c, modality=IMAGE)
        return self.special("<longcat_img_end>", loss=False)

    def image_generation(self, codes_hwL: torch.Tensor, *, loss: bool) -> DocumentBuilder:
        """`<img_token_size>h w</img_token_size><img_start>`, then each row's w pads followed by
        `<img_newline>`, the last row by `<img_end>` (release §2). With `loss`, the size tag,
        every pad (LM: the pad; visual head: the codes), newline and end are predicted."""
        grid = self._grid(codes_hwL)
        h, w = grid.shape[:2]
        self.special("<longcat_img_token_size>", loss=loss).text(f"{h} {w}", loss=loss)
        self.special("</longcat_img_token_size>", loss=loss).special("<longcat_img_start>", loss=loss)
        pad = self.sp("<longcat_img_pad>")
        for y in range(h):
            for c in grid[y].tolist():
                self._push(pad, lm=pad if loss else IGNORE, visual=c, visual_label=c if loss else None, modality=IMAGE)
            self.special("<longcat_img_end>" if y == h - 1 else "<longcat_img_newline>", loss=loss)
        return self

    # ---- audio ---------------------------------------------------------------------------
    def _frames(self, codes_TL: torch.Tensor) -> list[list[int]]:
        if codes_TL.ndim != 2 or codes_TL.shape[1] != self.la or codes_TL.shape[0] == 0:
            raise BadCodes(f"audio codes must be a non-empty (T, {self.la}) array, got {tuple(codes_TL.shape)}")
        return codes_TL.tolist()

    def audio(self, codes_TL: torch.Tensor, *, loss: bool) -> DocumentBuilder:
        """Pure audio: `<audio_start>` + T pads carrying the codes + `<audio_end>` (release §2).
        With `loss`, the audio head predicts the codes and the LM the pads and the end."""
        self.special("<longcat_audio_start>", loss=loss)
        pad = self.sp("<longcat_audio_pad>")
        for c in self._frames(codes_TL):
            self._push(pad, lm=pad if loss else IGNORE, audio=c, audio_label=c if loss else None, modality=AUDIO)
        return self.special("<longcat_audio_end>", loss=loss)

    def text_guided_audio(self, text_ids: Sequence[int], codes_TL: torch.Tensor, *, delay: int) -> DocumentBuilder:
        """Generated speech (release §2, §8; report Sec. 2.5.3), always with loss:

            main : audiogen_start | audiotext_pad × d | audiotext_start | audio_pad × T | audiogen_end
            guide:                | text, then audiotext_pad, over the d + 1 + T positions  |

        The LM predicts the text stream, the audio head the codes from position d + 1 on, and
        the end class (level 0) at `audiogen_end`. The delay is raised where the text would
        not fit beside the audio (m > d + 1 + T)."""
        frames, m = self._frames(codes_TL), len(text_ids)
        if delay < 0:
            raise BadArgument(f"delay must be >= 0, got {delay}")
        delay = max(delay, m - 1 - len(frames))
        tpad = self.sp("<longcat_audiotext_pad>")
        self.special("<longcat_audiogen_start>", loss=True)
        for p in range(delay + 1 + len(frames)):
            g = int(text_ids[p]) if p < m else tpad
            if p < delay:
                self._push(tpad, lm=g, guide=g)
            elif p == delay:
                self._push(self.sp("<longcat_audiotext_start>"), lm=g, guide=g)
            else:
                c = frames[p - delay - 1]
                self._push(self.sp("<longcat_audio_pad>"), lm=g, guide=g, audio=c, audio_label=c, modality=AUDIO)
        end = [self.vocab.audio_codebook_sizes[0]] + [IGNORE] * (self.la - 1)
        end_id = self.sp("<longcat_audiogen_end>")
        self._push(end_id, lm=end_id, audio_label=end)
        return self

    def build(self) -> Document:
        r = self.rows
        if not r["ids"]:
            raise BadArgument("an empty document")
        t = {k: torch.tensor(r[k], dtype=torch.long) for k in _TENSORS}
        for k, width in (("visual_codes", self.lv), ("audio_codes", self.la)):
            t[k] = t[k].reshape(-1, width)
            t[k.replace("codes", "labels")] = t[k.replace("codes", "labels")].reshape(-1, width)
        t["lm_labels"][0] = IGNORE  # nothing precedes the first position
        t["visual_labels"][0] = IGNORE
        t["audio_labels"][0] = IGNORE
        return Document(format=self.format, **t)


def sample_delay(rng: np.random.Generator, text_len: int, *, p_parallel: float = 0.5) -> int:
    """The text-guided delay (report Sec. 2.5.3: uniform in [1, m] for m text tokens; the
    release's training packer draws 0, fully parallel, with probability 0.5 first)."""
    if text_len < 1:
        return 0
    return 0 if rng.random() < p_parallel else int(rng.integers(1, text_len + 1))


def check_document(doc: Document, vocab: VocabConfig) -> None:
    """Refuse ids outside the vocabulary's text+special range and codes outside their levels."""
    n_text = vocab.audio_offset
    if len(doc) and (int(doc.ids.min()) < 0 or int(doc.ids.max()) >= n_text):
        raise BadCodes(f"{doc.format}: ids must be in [0, {n_text})")
    for name, sizes in (("visual", vocab.visual_codebook_sizes), ("audio", vocab.audio_codebook_sizes)):
        codes = getattr(doc, f"{name}_codes")
        has = codes[:, 0] != NO_CODE
        if bool(((codes < 0) & has[:, None]).any()) or bool((codes >= torch.tensor(sizes)).any()):
            raise BadCodes(f"{doc.format}: {name} codes outside their codebooks {sizes}")
