"""A sample is a sequence of typed segments: text, image, audio (report Sec. 2.5, Table 8).

Here a segment knows how many positions it occupies in the one token sequence the
backbone reads, which is all the packing statistics need; the ids and loss masks the model
trains on come from the sample formats (`dina.sequence.formats`). Token counts follow the
release (§2):

- image (understanding): `<img_start>` + h*w pads + `<img_end>`, h = H/28, w = W/28;
- audio: `<audio_start>` + ceil(seconds * 12.5) pads + `<audio_end>`;
- text: its ids when given, else its UTF-8 byte count (an upper bound on the BPE's count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dina.errors import BadInputFile

IMAGE_TOKEN_PX = 28
AUDIO_FRAME_RATE = 12.5


@dataclass(frozen=True, kw_only=True)
class TextSegment:
    text: str
    ids: tuple[int, ...] | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.ids) if self.ids is not None else len(self.text.encode("utf-8"))


@dataclass(frozen=True, kw_only=True)
class ImageSegment:
    width: int
    height: int
    path: str | None = None
    token_px: int = IMAGE_TOKEN_PX

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % self.token_px or self.height % self.token_px:
            raise BadInputFile(
                f"image segment {self.width}x{self.height} is not a positive multiple of {self.token_px} px"
            )

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) in tokens."""
        return self.height // self.token_px, self.width // self.token_px

    @property
    def num_tokens(self) -> int:
        h, w = self.grid
        return h * w + 2


@dataclass(frozen=True, kw_only=True)
class AudioSegment:
    seconds: float
    path: str | None = None
    frame_rate: float = AUDIO_FRAME_RATE

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise BadInputFile(f"audio segment must last > 0 s, got {self.seconds}")

    @property
    def num_tokens(self) -> int:
        return math.ceil(self.seconds * self.frame_rate) + 2


Segment = TextSegment | ImageSegment | AudioSegment


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One document: its segments in reading order."""

    segments: tuple[Segment, ...]
    source: str = ""

    @property
    def num_tokens(self) -> int:
        return sum(s.num_tokens for s in self.segments) + 1  # + end of document

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset(type(s).__name__.removesuffix("Segment").lower() for s in self.segments)
