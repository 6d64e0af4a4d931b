"""`lynx stop` and `lynx status` (the background issue implements them)."""

from __future__ import annotations

from lynx.errors import UsageError


def stop(args: dict[str, object]) -> int:
    raise UsageError("`lynx stop` is not available yet")


def status(args: dict[str, object]) -> int:
    raise UsageError("`lynx status` is not available yet")
