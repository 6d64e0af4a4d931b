"""The background Lynx's pidfile: who it is (pid, create time, command line) and how it is doing.

The file is JSON, always replaced whole (a temp file in the same directory, then os.replace),
so `lynx status` never reads half a file. Identity is pid + create time + command line: a pid
alone may have been reused by another program since the file was written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from lynx.errors import AlreadyRunningError, LynxError

if TYPE_CHECKING:
    import psutil

FORMAT = 1
# psutil computes create times from the boot time, which /proc reports in whole seconds
# (and which moves when the clock is stepped): the same process can read ~1 s apart.
CREATE_TIME_SLACK = 1.0
REQUIRED = {"pid": int, "create_time": (int, float), "cmdline": list}

log = logging.getLogger("lynx")
Record = dict[str, Any]


def now_iso() -> str:
    """The local time now, with its offset, to the second."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def iso(when: datetime | None) -> str | None:
    """A datetime as ISO-8601 text (None stays None)."""
    return when.isoformat(timespec="seconds") if when is not None else None


def new_record(config: str, log_file: str | None, ledger: str | None = None) -> Record:
    """The record of this process, as the daemon writes it when it starts."""
    import psutil  # here and in identify: `lynx stop` with no pidfile does not need it

    me = psutil.Process()
    return {"format": FORMAT, "pid": me.pid, "create_time": me.create_time(), "cmdline": me.cmdline(),
            "cwd": os.getcwd(), "config": config, "log_file": log_file, "ledger": ledger, "started": now_iso(),
            "state": "starting", "next_fire": None, "running": None, "last_run": None, "runs": 0}


def read(path: Path) -> Record | None:
    """The pidfile's record, None if there is no pidfile; LynxError if it is not a Lynx pidfile."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LynxError(f"cannot read the pidfile {path}: {exc.strerror or exc}") from exc
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), t) for k, t in REQUIRED.items()):
        # Never treat it as stale and delete it: --pid-file may have named some other file.
        raise LynxError(f"{path} is not a Lynx pidfile (no pid, create_time and cmdline); "
                        "if it is left over from an old Lynx, remove it yourself")
    return record


def write(path: Path, record: Record) -> None:
    """Replace the pidfile atomically: readers see the old file or the new one, never a mix."""
    tmp = _temp_copy(path, record)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _temp_copy(path: Path, record: Record) -> str:
    """Write `record` to a new temp file next to `path` (same file system, so os.replace is atomic)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(record, out, indent=2)
            out.write("\n")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def claim(path: Path, record: Record) -> None:
    """Write the daemon's record, unless the pidfile names another live Lynx (AlreadyRunningError)."""
    tmp = _temp_copy(path, record)
    try:
        try:
            os.link(tmp, path)   # atomic create-if-absent: two racing starts cannot both win
            return
        except FileExistsError:
            other = read(path)
            if other is not None and other["pid"] != record["pid"] and identify(other)[0] is not None:
                raise AlreadyRunningError(already_running(path, other)) from None
        except OSError:
            pass                 # no hard links here (some file systems): plain replace
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def remove(path: Path, pid: int) -> bool:
    """Delete the pidfile if it still names `pid` (a newer Lynx may own it by now); True if removed."""
    try:
        record = read(path)
    except LynxError:
        return False
    if record is None or record["pid"] != pid:
        return False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True


def identify(record: Record) -> tuple[psutil.Process | None, str]:
    """(the live Lynx the record names, "") or (None, why the record is stale)."""
    import psutil

    pid = record["pid"]
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None, f"pid {pid} has exited"
        if abs(proc.create_time() - record["create_time"]) > CREATE_TIME_SLACK:
            return None, f"pid {pid} now belongs to another process ({proc.name()}, created at another time)"
        if proc.cmdline() != record["cmdline"]:
            return None, f"pid {pid} now belongs to another program ({proc.name()})"
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None, f"pid {pid} is gone"
    except psutil.AccessDenied as exc:
        raise LynxError(f"cannot tell whether pid {pid} is the Lynx of this pidfile (access denied); "
                        "run this as the user who started it") from exc
    return proc, ""


def already_running(path: Path, record: Record) -> str:
    """The refusal for a start while `record` names a live Lynx."""
    return (f"a background Lynx is already running for this pidfile (pid {record['pid']}, "
            f"started {record.get('started') or '?'}, config {record.get('config') or '?'}); "
            f"stop it with `lynx stop --pid-file {path}`, or use another --pid-file")


class Tracker:
    """The daemon's Progress: keeps the pidfile's state, next fire time and last run current."""

    def __init__(self, path: Path, record: Record, on_ready: Callable[[], None] | None = None) -> None:
        self.path = path
        self.record = record
        self.on_ready = on_ready
        self.run_clock = 0.0
        self.failed_writes = 0

    def next_fire(self, when: datetime | None) -> None:
        """The scheduler is waiting for `when` (None: the schedule has ended)."""
        self._update(state="waiting", next_fire=iso(when), running=None)

    def run_started(self, due: datetime | None) -> None:
        """A run began (due at `due`; None for an unscheduled run)."""
        self.run_clock = time.monotonic()
        self._update(state="running", next_fire=None,
                     running={"due": iso(due), "started": now_iso(), "step": None, "step_started": None})

    def step_started(self, step: Any) -> None:
        """A step (or hook) of the current run began."""
        running = dict(self.record.get("running") or {})
        running.update(step=step.name, step_started=now_iso())
        self._update(running=running)

    def run_ended(self, result: Any) -> None:
        """The run ended with `result` (a RunResult)."""
        running = self.record.get("running") or {}
        failed = result.failed or next((s for s in result.steps if not s.ok), None)
        last = {"due": running.get("due"), "started": running.get("started"), "ended": now_iso(),
                "duration": round(time.monotonic() - self.run_clock, 3), "result": result.status,
                "failed_step": failed.name if failed else None, "reason": failed.reason if failed else None}
        self._update(state="waiting", running=None, last_run=last, runs=int(self.record.get("runs", 0)) + 1)

    def _update(self, **changes: Any) -> None:
        """Apply `changes`, rewrite the file, and say "ready" the first time the scheduler reports."""
        self.record.update(changes)
        try:
            write(self.path, self.record)
        except OSError as exc:
            # The schedule matters more than the status display: log (once in a while) and go on.
            if self.failed_writes % 100 == 0:
                log.warning("cannot update the pidfile %s: %s", self.path, exc.strerror or exc)
            self.failed_writes += 1
        if self.on_ready is not None:
            ready, self.on_ready = self.on_ready, None
            ready()
