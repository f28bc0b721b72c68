"""The five pipelines over one engine: see, paint, hear, speak, chat (report Sec. 2.5, Fig. 7;
`longcat-next-release.md` §2 for the prompt layouts).

Each pipeline builds the prompt of the chat format the model was fine-tuned on
(`dina.sequence.formats`: system prompt, user turn, `<longcat_assistant>`), encodes the user's
images and speech with the frozen tokenizers into that prompt, calls `Engine.generate`, and
turns what comes back into text, pixels (the vision de-tokenizer) or a waveform (the audio
de-tokenizer):

- `see(images, question)`: images (understanding layout) + question -> text;
- `paint(prompt, h, w)`: the reply opens with the size tag `h w` and `<longcat_img_start>`, as
  the release's HF code inserts it; any aspect ratio, h and w in 28-px tokens -> an image;
- `hear(wave)`: "Transcribe the audio." + the clip -> text (a spoken question works the same);
- `speak(text, reference=None)`: "Say: {text}" -> text-guided speech; with a reference clip the
  system prompt becomes the release's voice-cloning instruction followed by the clip (§2);
- `chat(wave)`: the user's speech -> a text-guided spoken answer (and its text);
- `reply(text)`: a plain text turn.

A model directory (`dina train model`'s `out/model`) holds the native model, its tokenizer.json,
and the two tokenizers it was trained with (`vision/`, `audio/`).

Shapes: h×w token grid, T audio frames, L levels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dina.audio.encoder import SAMPLES_PER_TOKEN
from dina.audio.tokenizer import AudioCodes, AudioTokenizer
from dina.errors import BadArgument, BadAudio, BadInputFile
from dina.inference.engine import Callbacks, Engine, GenerationConfig, ImageOut, RowOutput, SpeechOut
from dina.io.audio import SAMPLE_RATE, mono_at
from dina.model.native import NativeModel
from dina.sequence.document import Document, DocumentBuilder
from dina.sequence.formats import ASR_PROMPT, ASSISTANT, CAPTION_PROMPT, END, SYSTEM, SYSTEM_PROMPT, TTS_PROMPT, USER
from dina.text.bpe import TextTokenizer
from dina.vision.tokenizer import VisionCodes, VisionTokenizer

CLONE_PROMPT = "Replicate the voice in the audio clip to formulate an answer."  # release §2


@dataclass(frozen=True, kw_only=True)
class Picture:
    image: np.ndarray  # (28·rows, 28·w, 3) uint8
    codes: torch.Tensor  # (rows, w, L)
    complete: bool  # False when max_new_tokens cut the image (only full rows are kept)


@dataclass(frozen=True, kw_only=True)
class Speech:
    wave: np.ndarray  # float32 at 16 kHz
    text: str  # the text stream that guided it
    codes: torch.Tensor  # (T, L)
    delay: int | None
    complete: bool


class Pipelines:
    """see / paint / hear / speak / chat with one model and its tokenizers."""

    def __init__(self, model: NativeModel, tok: TextTokenizer, vision: VisionTokenizer, audio: AudioTokenizer) -> None:
        self.engine, self.tok, self.vision, self.audio = Engine(model, tok), tok, vision.eval(), audio.eval()
        self.callbacks = Callbacks()  # streaming: set `on_text` etc. to watch every generation

    def _generate(self, prompt: Document, gen: GenerationConfig | None) -> RowOutput:
        return self.engine.generate([prompt], gen, self.callbacks)[0]

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Pipelines:
        d = Path(directory)
        for part, what in (("model.safetensors", "model weights"), ("tokenizer.json", "text tokenizer")):
            if not (d / part).is_file():
                raise BadInputFile(f"model directory {d} has no {what} ({part})")
        for part in ("vision", "audio"):
            if not (d / part / "config.json").is_file():
                raise BadInputFile(f"model directory {d} has no {part} tokenizer ({part}/)")
        model = NativeModel.from_pretrained(d)
        return cls(
            model,
            TextTokenizer.load(d, model.cfg.vocab),
            VisionTokenizer.from_pretrained(d / "vision"),
            AudioTokenizer.from_pretrained(d / "audio"),
        )

    # ---- prompts ------------------------------------------------------------------------------
    def _turn(self, name: str, system: str = SYSTEM_PROMPT) -> DocumentBuilder:
        return DocumentBuilder(self.tok, name).special(SYSTEM, loss=False).text(system, loss=False)

    def _audio_codes(self, wave: np.ndarray, sr: int, what: str) -> torch.Tensor:
        wave16 = mono_at(np.asarray(wave, dtype=np.float32), sr, SAMPLE_RATE, where=what)
        if float(np.abs(wave16).max(initial=0.0)) < 1e-4:
            raise BadAudio(f"the {what} is silence")
        return self.audio.encode(wave16, SAMPLE_RATE).codes

    def _reply_text(self, out: RowOutput, prompt: Document) -> str:
        """The reply's text: up to the end of the turn, specials dropped."""
        ids = out.ids[len(prompt) :]
        end = self.tok.special_id(END)
        ids = ids[: ids.index(end)] if end in ids else ids
        return self.tok.decode([i for i in ids if i < self.tok.vocab.text_vocab_size]).strip()

    def _speech(self, out: RowOutput) -> Speech:
        """The first speech segment, decoded; empty (and incomplete) if max_new_tokens came first."""
        seg = next((s for s in out.segments if isinstance(s, SpeechOut)), None)
        if seg is None or not seg.codes:
            text = self.tok.decode(seg.text_ids) if seg else ""
            empty = torch.zeros(0, len(self.tok.vocab.audio_codebook_sizes), dtype=torch.long)
            return Speech(wave=np.zeros(0, np.float32), text=text, codes=empty, delay=None, complete=False)
        codes = torch.tensor(seg.codes, dtype=torch.long)
        wave, _ = self.audio.decode(AudioCodes(codes=codes, num_samples=codes.shape[0] * SAMPLES_PER_TOKEN))
        text = self.tok.decode(seg.text_ids)
        return Speech(wave=wave, text=text, codes=codes, delay=seg.delay, complete=seg.complete)

    # ---- the pipelines --------------------------------------------------------------------------
    def reply(self, text: str, gen: GenerationConfig | None = None) -> str:
        """A text turn -> the model's text reply."""
        b = self._turn("reply").special(USER, loss=False).text(text, loss=False)
        prompt = b.special(ASSISTANT, loss=False).build()
        return self._reply_text(self._generate(prompt, gen), prompt)

    def see(self, images: list[np.ndarray], question: str = CAPTION_PROMPT, gen: GenerationConfig | None = None) -> str:
        """Images + a question -> the answer (default question: describe the image)."""
        if not images:
            raise BadArgument("see needs at least one image")
        b = self._turn("see").special(USER, loss=False)
        for grid in self.vision.encode(images).codes:
            b.image_understanding(grid)
        prompt = b.text(question, loss=False).special(ASSISTANT, loss=False).build()
        return self._reply_text(self._generate(prompt, gen), prompt)

    def paint(self, prompt: str, h: int, w: int, gen: GenerationConfig | None = None) -> Picture:
        """A prompt -> an h×w-token image (28·h × 28·w px)."""
        limit = self.engine.cfg.backbone.max_seq_len
        if h < 1 or w < 1 or h * (w + 1) >= limit:
            raise BadArgument(f"image size {h}x{w} tokens must be at least 1x1 and fit {limit} positions")
        b = self._turn("paint").special(USER, loss=False).text(prompt, loss=False).special(ASSISTANT, loss=False)
        b.special("<longcat_img_token_size>", loss=False).text(f"{h} {w}", loss=False)
        ids = b.special("</longcat_img_token_size>", loss=False).special("<longcat_img_start>", loss=False).build()
        gen = gen or GenerationConfig(max_new_tokens=h * (w + 1) + 1)
        out = self._generate(ids, gen)
        image = next((s for s in out.segments if isinstance(s, ImageOut)), None)
        if image is None or not image.grid().shape[0]:
            raise BadArgument(f"max_new_tokens {gen.max_new_tokens} ended the image before its first row")
        grid = image.grid()
        size = (28 * grid.shape[0], 28 * grid.shape[1])
        pixels = self.vision.decode(VisionCodes(codes=(grid,), sizes=(size,), original_sizes=(size,)))[0]
        return Picture(image=pixels, codes=grid, complete=image.complete)

    def hear(self, wave: np.ndarray, sr: int, gen: GenerationConfig | None = None, question: str = ASR_PROMPT) -> str:
        """Speech -> text: its transcript, or the answer to `question` about it."""
        b = self._turn("hear").special(USER, loss=False).text(question, loss=False)
        prompt = b.audio(self._audio_codes(wave, sr, "clip"), loss=False).special(ASSISTANT, loss=False).build()
        return self._reply_text(self._generate(prompt, gen), prompt)

    def speak(
        self, text: str, gen: GenerationConfig | None = None, reference: tuple[np.ndarray, int] | None = None
    ) -> Speech:
        """Text -> text-guided speech; `reference` (wave, rate) is the voice to clone."""
        if not text.strip():
            raise BadArgument("speak needs some text")
        if reference is None:
            b = self._turn("speak")
        else:
            b = self._turn("speak", CLONE_PROMPT).audio(self._audio_codes(*reference, "reference clip"), loss=False)
        b.special(USER, loss=False).text(TTS_PROMPT + text, loss=False).special(ASSISTANT, loss=False)
        prompt = b.special("<longcat_audiogen_start>", loss=False).build()
        return self._speech(self._generate(prompt, gen))

    def chat(self, wave: np.ndarray, sr: int, gen: GenerationConfig | None = None) -> Speech:
        """The user's speech -> a spoken answer guided by its own text."""
        b = self._turn("chat").special(USER, loss=False).audio(self._audio_codes(wave, sr, "clip"), loss=False)
        prompt = b.special(ASSISTANT, loss=False).special("<longcat_audiogen_start>", loss=False).build()
        return self._speech(self._generate(prompt, gen))
