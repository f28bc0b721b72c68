"""Argument types shared by the CLI modules: they reject bad values with a `DinaError`."""

from __future__ import annotations

from dina.errors import BadArgument


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadArgument(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise BadArgument(f"expected a positive integer, got {value}")
    return value


def seed_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadArgument(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise BadArgument(f"seed must be in [0, 2**32), got {value}")
    return value
