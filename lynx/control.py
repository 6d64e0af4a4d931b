"""`lynx stop` and `lynx status`: find the background Lynx through its pidfile, show it, stop its tree.

These commands never import yaml or croniter, and psutil only once a pidfile names a process.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lynx import pidfile
from lynx.errors import LynxError, UsageError

if TYPE_CHECKING:
    import psutil

NOT_RUNNING = 3


def stop(args: dict[str, object]) -> int:
    """Stop the background Lynx (asking first on a terminal); 0 stopped or not running, 1 refused."""
    path = Path(str(args["--pid-file"]))
    timeout = parse_timeout(args["--timeout"])
    record = pidfile.read(path)
    if record is None:
        print(f"lynx: not running (no pidfile {path})")
        return 0
    proc, why = pidfile.identify(record)
    if proc is None:
        pidfile.remove(path, record["pid"])
        print(f"lynx: not running: removed the stale pidfile {path} ({why})")
        return 0
    print("\n".join(describe(path, record, proc)))
    if not args["--yes"] and not confirm(f"Stop Lynx pid {proc.pid}? [y/N] "):
        print("lynx: not stopped")
        return 1
    print(f"lynx: sent SIGTERM to pid {proc.pid}; waiting up to {timeout:g} s for it to stop")
    from lynx.proctree import terminate

    clean = terminate(proc, timeout)
    pidfile.remove(path, proc.pid)   # a killed daemon could not remove it itself
    if clean:
        print(f"lynx: stopped (pid {proc.pid})")
    else:
        print(f"lynx: pid {proc.pid} did not stop within {timeout:g} s: killed it and its processes")
    return 0


def status(args: dict[str, object]) -> int:
    """Say whether the background Lynx runs and how its runs went; 0 running, 3 not running."""
    path = Path(str(args["--pid-file"]))
    record = pidfile.read(path)
    if record is None:
        print(f"lynx: not running (no pidfile {path})")
        return NOT_RUNNING
    proc, why = pidfile.identify(record)
    if proc is None:
        print(f"lynx: not running (stale pidfile {path}: {why}; `lynx stop` or the next start removes it)")
        print("\n".join(ledger_lines(record)))
        return NOT_RUNNING
    print("\n".join(describe(path, record, proc)))
    return 0


def parse_timeout(value: object) -> float:
    """--timeout as seconds >= 0."""
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise UsageError(f"--timeout: {value!r} is not a number of seconds >= 0")
    return seconds


def confirm(question: str) -> bool:
    """Ask on the terminal; no terminal is a refusal (never hang), end of input means no."""
    if sys.stdin is None or not sys.stdin.isatty():
        raise LynxError("not stopped: no terminal to ask on; use `lynx stop --yes` to stop without asking")
    sys.stdout.write(question)
    sys.stdout.flush()
    answer = sys.stdin.readline()
    if not answer:
        sys.stdout.write("\n")
    return answer.strip().lower() in ("y", "yes")


# --- showing ---------------------------------------------------------------------------------------


def describe(path: Path, record: pidfile.Record, proc: psutil.Process) -> list[str]:
    """What `status` and `stop` show about a running background Lynx."""
    up = time.time() - proc.create_time()
    lines = [f"lynx: running in the background (pid {proc.pid}, up {duration(up)})",
             f"  started:   {when(record.get('started'))}",
             f"  config:    {record.get('config') or '?'}",
             f"  log file:  {record.get('log_file') or 'none (output discarded)'}",
             f"  pidfile:   {os.path.abspath(path)}",
             f"  now:       {doing(record)}",
             f"  next run:  {when(record.get('next_fire')) if record.get('next_fire') else '-'}"]
    return lines + [f"  last run:  {last_run(record.get('last_run'))}",
                    f"  runs:      {record.get('runs', 0)}", *ledger_lines(record)]


def ledger_lines(record: pidfile.Record) -> list[str]:
    """The newest run in the run ledger the daemon writes to (it outlives the daemon)."""
    if not record.get("ledger"):
        return []
    from lynx import ledger

    try:
        entries, damaged = ledger.read(str(record["ledger"]), 1)
    except OSError as exc:   # never a reason for `stop` or `status` to fail
        return [f"  ledger:    {record['ledger']} (cannot read it: {exc.strerror or exc})"]
    if not entries:
        skipped = f"; {damaged} damaged line(s) skipped" if damaged else ""
        return [f"  ledger:    {record['ledger']} (no runs yet{skipped})"]
    last = entries[-1]
    return [f"  ledger:    {record['ledger']}",
            (f"  recorded:  run {last.get('run_id')} started {when(last.get('start'))}, "
             f"took {duration(float(last.get('duration') or 0))}: {last.get('result')}")]


def doing(record: pidfile.Record) -> str:
    """What the daemon is doing now, from its pidfile."""
    running = record.get("running")
    if record.get("state") == "running" and running:
        due = f", run due {when(running['due'])}" if running.get("due") else ""
        step = f"step '{running['step']}' since {when(running['step_started'])}" if running.get("step") \
            else f"a run since {when(running.get('started'))}"
        return f"running {step}{due}"
    if record.get("state") == "waiting":
        return "waiting for the next run" if record.get("next_fire") else "the schedule has ended"
    return "starting"


def last_run(run: dict | None) -> str:
    """'<start>, took <duration>: <result>' for the last run, or 'none yet'."""
    if not run:
        return "none yet"
    text = f"{when(run.get('started'))}, took {duration(run.get('duration') or 0.0)}: {run.get('result')}"
    if run.get("failed_step"):
        text += f" (step '{run['failed_step']}': {run.get('reason')})"
    return text


def when(text: str | None) -> str:
    """An ISO-8601 time from the pidfile as '2026-01-31 12:00:00+01:00'."""
    if not text:
        return "?"
    try:
        return datetime.fromisoformat(str(text)).isoformat(sep=" ", timespec="seconds")
    except ValueError:
        return str(text)


def duration(seconds: float) -> str:
    """1.23 s, 2 min 05 s, 3 h 04 min, 2 d 05 h."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours:02d} h"
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
