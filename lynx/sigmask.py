"""Holding Ctrl+C and stop signals over a few lines that must not be cut in half."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

# What ends Lynx from outside: Ctrl+C, a stop request, a closed terminal.
STOPS = {signal.SIGINT, signal.SIGTERM} | ({signal.SIGHUP} if hasattr(signal, "SIGHUP") else set())


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while inside; they are delivered (and raise) on the way out.

    A process started inside would inherit the blocked signals and keep them across exec: start
    none there. Where threads' signal masks do not exist (Windows), nothing is held.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
