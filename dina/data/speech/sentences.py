"""The sentences SpeechWorld speaks: ShapesWorld captions, questions and answers, commands, numbers.

The vocabulary is ShapesWorld's own (`dina.data.shapes.scene`: shapes, palette colors,
sizes, the 3x3 grid of regions and their phrases), imported rather than repeated, so a
model can learn the link between a spoken and a drawn "large red circle in the top left".

Every sentence is lowercase words without punctuation or digits (numbers are spelled
out), so the transcript is exactly what a judge should hear and WER stays fair.
"""

from __future__ import annotations

import numpy as np

from dina.data.shapes.scene import PALETTE, REGION_PHRASES, REGIONS, SHAPES, SIZES
from dina.data.speech.textnorm import number_to_words

# The vocabulary is ShapesWorld's own, so spoken captions and questions match the images' text.
COLORS = tuple(PALETTE)
PLURALS = {shape: "crosses" if shape == "cross" else f"{shape}s" for shape in SHAPES}
POSITIONS = REGION_PHRASES
RELATIONS = ("left of", "right of", "above", "below")
COMMANDS = (
    "turn left",
    "turn right",
    "stop the music",
    "play the music",
    "go forward",
    "go back",
    "open the door",
    "close the window",
    "turn on the lights",
    "turn off the lights",
    "volume up",
    "volume down",
    "start the timer",
    "cancel that",
    "what time is it",
    "call home",
)

# Kinds of sentence and how often each is drawn: mostly grounded shape talk, some
# commands and numbers so the speech side is not a single template.
KINDS = ("caption", "relation", "count", "question", "answer", "command", "move", "number")
KIND_WEIGHTS = (0.20, 0.10, 0.10, 0.20, 0.10, 0.10, 0.10, 0.10)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _thing(rng: np.random.Generator, sized: bool = True) -> str:
    """'large red circle' or 'red circle' (no article)."""
    words = [_pick(rng, SIZES)] if sized and rng.random() < 0.5 else []
    return " ".join([*words, _pick(rng, COLORS), _pick(rng, SHAPES)])


def _where(rng: np.random.Generator) -> str:
    """A region phrase: "in the top left", "at the bottom", ..."""
    return POSITIONS[_pick(rng, REGIONS)]


def _a(phrase: str) -> str:
    """The phrase with its indefinite article: "a red star", "an orange star"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _count(rng: np.random.Generator) -> str:
    k = int(rng.integers(2, 10))
    return f"there are {number_to_words(k)} {_pick(rng, COLORS)} {PLURALS[_pick(rng, SHAPES)]}"


def _question(rng: np.random.Generator) -> str:
    form = int(rng.integers(5))
    if form == 0:
        return f"what color is the {_pick(rng, SHAPES)} {_where(rng)}"
    if form == 1:
        return f"how many {PLURALS[_pick(rng, SHAPES)]} are there"
    if form == 2:
        return f"where is the {_thing(rng)}"
    if form == 3:
        return f"is there {_a(_thing(rng))} {_where(rng)}"
    return f"what shape is {_where(rng)}"


def _answer(rng: np.random.Generator) -> str:
    form = int(rng.integers(5))
    if form == 0:
        return _pick(rng, COLORS)
    if form == 1:
        return number_to_words(int(rng.integers(0, 10)))
    if form == 2:
        return _pick(rng, ("yes", "no"))
    if form == 3:
        return _where(rng)
    return _a(f"{_pick(rng, COLORS)} {_pick(rng, SHAPES)}")


def _number(rng: np.random.Generator) -> str:
    # Two digits most of the time ("forty two"), sometimes three ("three hundred twelve").
    high = 100 if rng.random() < 0.7 else 1000
    return number_to_words(int(rng.integers(0, high)))


def sample_sentence(rng: np.random.Generator) -> str:
    """One sentence of SpeechWorld, drawn from `rng`."""
    kind = KINDS[int(rng.choice(len(KINDS), p=KIND_WEIGHTS))]
    if kind == "caption":
        return f"{_a(_thing(rng))} {_where(rng)}"
    if kind == "relation":
        return f"the {_thing(rng, sized=False)} is {_pick(rng, RELATIONS)} the {_thing(rng, sized=False)}"
    if kind == "count":
        return _count(rng)
    if kind == "question":
        return _question(rng)
    if kind == "answer":
        return _answer(rng)
    if kind == "command":
        return _pick(rng, COMMANDS)
    if kind == "move":
        return f"move the {_thing(rng, sized=False)} to the {_pick(rng, REGIONS)}"
    return _number(rng)


def vocabulary() -> set[str]:
    """Every word a sentence can contain (numbers below one thousand included)."""
    words = set(
        " ".join((*SHAPES, *PLURALS.values(), *COLORS, *SIZES, *POSITIONS.values(), *RELATIONS, *COMMANDS)).split()
    )
    words |= {"a", "an", "the", "in", "is", "there", "are", "what", "color", "how", "many", "where", "shape", "move"}
    words |= {"to", "yes", "no", "center"}
    for k in range(1000):
        words |= set(number_to_words(k).split())
    return words
