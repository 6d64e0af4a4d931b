"""`lynx history`: the last runs from the run ledger, as a table."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any

from lynx import ledger
from lynx.errors import LynxError


def ledger_path(args: dict[str, object]) -> str:
    """--ledger if given, else .lynx/runs.jsonl beside the config file (which need not be valid)."""
    if args.get("--ledger"):
        return os.path.realpath(str(args["--ledger"]))
    return ledger.default_path(str(args["--config-file"]))


def history(args: dict[str, object]) -> int:
    """Print the last -n runs, oldest first; damaged ledger lines are reported and skipped."""
    from lynx.options import whole_number

    count = whole_number(args["-n"], "-n", minimum=1)   # -n 0 would say "no runs recorded" of a full ledger
    path = ledger_path(args)
    try:
        entries, damaged = ledger.read(path, count)
    except OSError as exc:
        raise LynxError(f"cannot read the run ledger {path}: {exc.strerror or exc}") from exc
    if damaged:
        print(f"lynx: warning: {path}: skipped {damaged} damaged line(s)", file=sys.stderr)
    if not entries:
        print(f"no runs recorded in {path}")
        return 0
    print(table(entries))
    return 0


def table(entries: list[dict[str, Any]]) -> str:
    """started, duration, trigger, result, steps, run id — one row per run."""
    rows = [("started", "duration", "trigger", "result", "steps", "run id")]
    rows += [_row(entry) for entry in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _row(entry: dict[str, Any]) -> tuple[str, ...]:
    steps = entry.get("steps") or []
    failed = [step for step in steps if not step.get("ok")]
    detail = f"{len(steps) - len(failed)}/{len(steps)} ok"
    if failed:
        detail += f"; {failed[0].get('name')}: {failed[0].get('reason')}"
    return (_when(entry.get("start")), f"{float(entry.get('duration') or 0):.1f} s", _when(entry.get("trigger")),
            str(entry.get("result")), detail, str(entry.get("run_id")))


def _when(text: Any) -> str:
    """An ISO time as local 'YYYY-MM-DD HH:MM:SS'; other text ('manual') as it is."""
    try:
        return datetime.fromisoformat(str(text)).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError):   # not a time, or one astimezone cannot move (year 1 or 9999)
        return str(text)
