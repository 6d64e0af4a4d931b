"""Checks of command-line values shared by several commands (kept light: `history` imports it)."""

from __future__ import annotations

from lynx.errors import UsageError


def whole_number(value: object, flag: str, maximum: int | None = None) -> int:
    """A non-negative integer option (at most `maximum`, if given), or a usage error naming the flag."""
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if number < 0:
        raise UsageError(f"{flag}: {value!r} is not a whole number >= 0")
    if maximum is not None and number > maximum:
        raise UsageError(f"{flag}: at most {maximum}, not {value!r}")
    return number
