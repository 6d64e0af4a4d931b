"""Checks of command-line values shared by several commands (kept light: `history` imports it)."""

from __future__ import annotations

from lynx.errors import UsageError


def whole_number(value: object, flag: str, maximum: int | None = None, minimum: int = 0) -> int:
    """An integer option >= `minimum` (at most `maximum`, if given), or a usage error naming the flag."""
    try:
        number = int(str(value))
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise UsageError(f"{flag}: {value!r} is not a whole number >= {minimum}")
    if maximum is not None and number > maximum:
        raise UsageError(f"{flag}: at most {maximum}, not {value!r}")
    return number
