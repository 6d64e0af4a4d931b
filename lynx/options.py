"""Checks of command-line values shared by several commands (kept light: `history` imports it)."""

from __future__ import annotations

from lynx.errors import UsageError


def whole_number(value: object, flag: str) -> int:
    """A non-negative integer option, or a usage error naming the flag."""
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if number < 0:
        raise UsageError(f"{flag}: {value!r} is not a whole number >= 0")
    return number
