"""Text normalization and word error rate for judging speech against its transcript.

The same `normalize_text` is applied to the reference and to the ASR hypothesis, so a
transcript that says "forty two" and a recognizer that writes "42." count as a match:
lowercase, digits spelled out as words (American style, no "and"), hyphens and
punctuation dropped, British spellings of the vocabulary mapped to American ones.

`word_errors` is a plain Levenshtein distance over words (substitutions, deletions and
insertions cost 1); `corpus_wer` sums errors over utterances before dividing, as jiwer
does for a list of sentences.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))

# Whisper tiny.en is trained mostly on American English; British spellings of words in
# our vocabulary would otherwise count as errors for an utterance the judge heard right.
_SPELLINGS = {"colour": "color", "colours": "colors", "centre": "center", "grey": "gray"}

_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_PUNCT = re.compile(r"[^a-z0-9' ]+")


def number_to_words(value: int) -> str:
    """Spell a non-negative integer as words: 42 -> "forty two", 105 -> "one hundred five"."""
    if value < 0:
        return "minus " + number_to_words(-value)
    if value < 20:
        return _ONES[value]
    if value < 100:
        tens, ones = divmod(value, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if value < 1000:
        hundreds, rest = divmod(value, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for scale, name in _SCALES:
        if value >= scale:
            high, rest = divmod(value, scale)
            return number_to_words(high) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def _spell_number(match: re.Match) -> str:
    text = match.group(0).replace(",", "")
    whole, _, frac = text.partition(".")
    words = number_to_words(int(whole))
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    return f" {words} "


def normalize_text(text: str) -> str:
    """Lowercase, spell out numbers, drop punctuation; words separated by single spaces."""
    text = text.lower().replace("-", " ")
    text = _NUMBER.sub(_spell_number, text)
    text = _PUNCT.sub(" ", text).replace("'", "")
    words = [_SPELLINGS.get(w, w) for w in text.split()]
    # "one hundred and five" and "one hundred five" are the same number.
    out = [w for i, w in enumerate(words) if not (w == "and" and 0 < i < len(words) - 1 and words[i - 1] == "hundred")]
    return " ".join(out)


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Minimum number of word substitutions, deletions and insertions turning reference into hypothesis."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, start=1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution or match
            )
        previous = current
    return previous[-1]


def utterance_wer(reference: str, hypothesis: str) -> float:
    """WER of one normalized pair; an empty reference scores 0 if the hypothesis is empty too, else 1."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return float(bool(hyp))
    return word_errors(ref, hyp) / len(ref)


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Total word errors over total reference words, for (reference, hypothesis) normalized pairs."""
    errors = words = 0
    for reference, hypothesis in pairs:
        ref, hyp = reference.split(), hypothesis.split()
        errors += word_errors(ref, hyp)
        words += len(ref)
    return errors / words if words else 0.0
