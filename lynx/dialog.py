"""The recovery dialog: after a failed step, ask whether to rerun it, rerun all, or abort."""

from __future__ import annotations

import sys
from typing import Callable, TextIO

CHOICES = {"s": "step", "step": "step", "r": "step", "p": "pipeline", "pipeline": "pipeline",
           "a": "abort", "abort": "abort", "q": "abort"}
QUESTION = "Rerun the [s]tep, rerun the [p]ipeline from this run's first step, or [a]bort? "


def ask(step_name: str, reason: str, read_line: Callable[[], str] | None = None,
        out: TextIO | None = None) -> str:
    """Return 'step', 'pipeline' or 'abort'; end of input (Ctrl+D) means abort, and so does a
    terminal that is gone (a closed pipe, a hang-up): nobody is there to answer."""
    out = out or sys.stderr
    read_line = read_line or (sys.stdin.readline if sys.stdin else None)
    if out is None or read_line is None:   # started with stderr or stdin closed (`2>&-`): Python has None
        return "abort"
    try:
        return _ask(step_name, reason, read_line, out)
    except OSError:
        return "abort"


def _ask(step_name: str, reason: str, read_line: Callable[[], str], out: TextIO) -> str:
    out.write(f"\nStep '{step_name}' failed ({reason}).\n")
    while True:
        out.write(QUESTION)
        out.flush()
        try:
            line = read_line()
        except (EOFError, OSError):
            line = ""
        if not line:
            out.write("\nEnd of input: aborting.\n")
            return "abort"
        choice = CHOICES.get(line.strip().lower())
        if choice:
            return choice
        out.write(f"Please answer s, p or a (not {line.strip()!r}).\n")
