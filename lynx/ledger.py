"""The run ledger: one JSON line per run, appended whole; a damaged line is skipped, never fatal."""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from typing import Any

try:   # the C escaper json.dumps uses: importing json whole (its decoder) was ~0.9 ms of every run's start
    from _json import encode_basestring_ascii as _quote
except ImportError:   # an interpreter without CPython's accelerator
    from json.encoder import encode_basestring_ascii as _quote

log = logging.getLogger("lynx")

# Paths are strings (os.path), not pathlib here and in what `lynx start` imports: pathlib
# (with urllib.parse, which it imports) was ~3 ms of every run's start-up.
DEFAULT_NAME = os.path.join(".lynx", "runs.jsonl")


def default_path(config_path: str | os.PathLike) -> str:
    """The ledger next to the config: CONFIG_DIR/.lynx/runs.jsonl."""
    return os.path.join(os.path.dirname(os.path.realpath(config_path)), DEFAULT_NAME)


def new_run_id(now: float) -> str:
    """Sortable and unique enough: the start time (UTC, from time.time()) plus a little randomness."""
    # os.urandom, not secrets: secrets pulls in OpenSSL (~4 MB resident, ~7 ms) for six hex digits.
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "-" + os.urandom(3).hex()


def iso_utc(seconds: float) -> str:
    """datetime.fromtimestamp(seconds, timezone.utc).isoformat(), to the character.

    A run's times are time.time() values: importing datetime was ~0.7 ms of every run's start-up.
    """
    fraction, whole = math.modf(seconds)
    if fraction < 0:
        fraction, whole = fraction + 1, whole - 1
    micro = round(fraction * 1e6)   # half to even, as datetime rounds
    if micro == 1_000_000:
        micro, whole = 0, whole + 1
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{text}.{micro:06d}+00:00" if micro else f"{text}+00:00"


def append(path: str | os.PathLike, entry: dict[str, Any]) -> None:
    """Append one entry as one line with a single write, so readers never see half of it.

    A ledger that cannot be written is reported and the run goes on: the ledger is a record of
    the work, not part of it.
    """
    line = (to_json(entry) + "\n").encode("ascii")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _start_on_a_fresh_line(fd, path)
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("could not write the run ledger %s: %s", path, exc.strerror or exc)


def to_json(value: Any) -> str:
    """json.dumps(value, separators=(",", ":"), default=str), to the character: mappings, lists and
    tuples, text, numbers, booleans and None; anything else as its str() (json's `default=str`)."""
    if isinstance(value, str):
        return _quote(value)
    if value is None or value is True or value is False:
        return _CONSTANTS[value]
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value) if math.isfinite(value) else _NON_FINITE[float.__repr__(value)]
    if isinstance(value, dict):
        return "{" + ",".join(f"{_quote(_key(key))}:{to_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(to_json, value)) + "]"
    return _quote(str(value))


def _key(key: Any) -> str:
    """A mapping key as json writes it: text as it is, a number, boolean or None as its JSON text."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (int, float)):
        return to_json(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


_CONSTANTS = {None: "null", True: "true", False: "false"}
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _start_on_a_fresh_line(fd: int, path: str | os.PathLike) -> None:
    """After a crash mid-write the file may end in half a line: never glue a new entry onto it."""
    size = os.fstat(fd).st_size
    if size:
        with open(path, "rb") as handle:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                os.write(fd, b"\n")


def read(path: str | os.PathLike, last: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The last `last` entries (all if None), oldest first, and how many lines were damaged."""
    entries: deque = deque(maxlen=last)
    damaged = 0
    if not os.path.exists(path):
        return [], 0
    with open(path, "rb") as handle:
        for raw in handle:
            entry = _parse(raw)
            if entry is None:
                damaged += raw.strip() != b""
            else:
                entries.append(entry)
    return list(entries), damaged


def _parse(raw: bytes) -> dict[str, Any] | None:
    import json  # here: a run only writes the ledger (to_json)

    try:
        entry = json.loads(raw)
    except (ValueError, RecursionError):   # not JSON, or nested thousands deep
        return None
    return entry if _well_formed(entry) else None


def _well_formed(entry: Any) -> bool:
    """What `history` and `status` rely on: a run id, a finite duration, the steps as a list of mappings.

    Anything else (a hand edit, another tool's line) is a damaged line, reported and skipped.
    """
    if not isinstance(entry, dict) or "run_id" not in entry:
        return False
    seconds, steps = entry.get("duration"), entry.get("steps")
    if seconds is not None and not _finite_number(seconds):
        return False
    return steps is None or isinstance(steps, list) and all(isinstance(step, dict) for step in steps)


def _finite_number(value: Any) -> bool:
    try:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:   # an int too large for a float
        return False


def entry(run_id: str, trigger: str, started: float, ended: float, status: str, result: Any,
          config: str, log_file: str | None) -> dict[str, Any]:
    """One ledger line: the run (`started`, `ended`: time.time() values) and each step that ran
    (a runner.RunResult's steps)."""
    return {
        "run_id": run_id, "trigger": trigger, "config": str(config),
        "start": iso_utc(started), "end": iso_utc(ended),
        "duration": round(ended - started, 3), "result": status,
        "steps": [_step(step, log_file) for step in result.steps],
    }


def exit_status_and_signal(returncode: int | None) -> tuple[int | None, int | None]:
    """Popen's returncode as (exit status, None) or (None, the signal that ended it: -N)."""
    if returncode is None:
        return None, None
    return (returncode, None) if returncode >= 0 else (None, -returncode)


def _step(step: Any, log_file: str | None) -> dict[str, Any]:
    exit_status, signal = exit_status_and_signal(step.returncode)
    fields = {
        "name": step.name, "attempts": step.attempts, "ok": step.ok, "exit_status": exit_status,
        "signal": signal, "reason": step.reason, "duration": round(step.duration, 3), "log_file": log_file,
    }
    if getattr(step, "job_id", None):  # a Slurm step: the job of its last attempt
        fields["job_id"] = step.job_id
    return fields
