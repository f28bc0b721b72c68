"""The errors dina raises on bad input.

Every failure that a user can cause (a missing file, a corrupt image, a malformed
manifest, an inconsistent config, a checkpoint that does not match) is a
`DinaError`. The CLI prints it as one line on stderr and exits with code 2;
anything else is a bug and exits 1 with its traceback.
"""

from __future__ import annotations


class DinaError(Exception):
    """Base class: a problem with what the user handed us, never a bug in dina."""


class BadInputFile(DinaError):
    """A path that is missing, unreadable, of the wrong kind, or whose content is corrupt."""


class BadImage(BadInputFile):
    """An image that cannot be decoded, is truncated, or exceeds the pixel limit."""


class BadAudio(BadInputFile):
    """Audio that cannot be decoded, is empty, or holds NaN/inf samples."""


class BadManifest(BadInputFile):
    """A JSONL manifest with a malformed line (the message names the line number)."""


class BadConfig(DinaError):
    """A config whose values are inconsistent or out of range."""


class BadCheckpoint(DinaError):
    """A checkpoint with missing, extra or mis-shaped tensors, or written by another config."""


class BadCodes(DinaError):
    """Token ids out of range, or with the wrong number of levels."""


class BadArgument(DinaError):
    """A command-line or API argument out of its allowed range."""


class MissingDependency(DinaError):
    """An optional tool (a TTS engine, an OCR binary, an ASR model) that is not installed."""
