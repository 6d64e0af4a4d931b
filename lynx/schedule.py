"""The schedule loop: wait for the next fire time, run, repeat; never overlap, never catch up.

Time comes from a Clock that is passed in, so tests drive the loop with a fake clock and
never sleep. The loop asks "when is the next fire time?" after every run, so fire times
that passed while a run was going (or while the machine slept) are skipped, not replayed.
"""

from __future__ import annotations

import logging
import os
import random
import select
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, Protocol, TextIO

log = logging.getLogger("lynx")

# Waking later than this after a fire time (suspend/resume, a clock step) means the fire
# time was missed: it is skipped rather than run hours late.
MISFIRE_GRACE = timedelta(seconds=60)
# Longest single wait, so a changed wall clock is noticed within a minute.
MAX_WAIT = 60.0
# Before a wait at least this long, freed memory goes back to the OS (it costs ~0.1 ms).
RELEASE_BEFORE = 2.0
# How many skipped fire times are listed one by one before they are only counted.
LIST_SKIPPED = 5
COUNT_SKIPPED = 10000


class Schedule(Protocol):
    def next_fire(self, after: datetime, inclusive: bool = True) -> datetime | None: ...

    @property
    def jitter(self) -> float | None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep_until(self, when: datetime) -> bool:
        """Wait until `when`; False if asked to stop while waiting (e.g. end of input)."""


class RealClock:
    """The wall clock; waits in steps of at most a minute, optionally watching stdin for EOF."""

    def __init__(self, stdin: TextIO | None = None) -> None:
        self.stdin = stdin

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep_until(self, when: datetime) -> bool:
        """Sleep until the wall clock reaches `when`; False on end of input."""
        if (when - self.now()).total_seconds() >= RELEASE_BEFORE:
            from lynx.memory import release_free_memory

            release_free_memory()
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return True
            if not self._wait(min(remaining, MAX_WAIT)):
                return False

    def _wait(self, seconds: float) -> bool:
        """One wait; False if stdin reached end of input meanwhile."""
        if self.stdin is None or not _owns_terminal(self.stdin):
            # Started with `&` (or put in the background since): reading the terminal would stop
            # Lynx with SIGTTIN the moment the user types ahead.
            time.sleep(seconds)
            return True
        ready, _, _ = select.select([self.stdin], [], [], seconds)
        if not ready or not _owns_terminal(self.stdin):   # moved to the background meanwhile: next wait
            return True
        if not os.read(self.stdin.fileno(), 4096):
            return False
        print("lynx: waiting for the next fire time (Ctrl+C or Ctrl+D stops)", file=sys.stderr)
        return True


def _owns_terminal(stdin: TextIO) -> bool:
    """Lynx is in the terminal's foreground process group (not a `&` job)."""
    try:
        return os.tcgetpgrp(stdin.fileno()) == os.getpgrp()
    except OSError:
        return False


RunOnce = Callable[[datetime], bool]   # runs the pipeline for a due time; True if it succeeded


def run_loop(schedule: Schedule, run_once: RunOnce, clock: Clock, keep_running: bool = False,
             rng: random.Random | None = None,
             on_next: Callable[[datetime | None], None] | None = None) -> int:
    """Run on schedule until it ends (0; 1 if a run failed with keep_running), a run fails without
    keep_running (1) or a stop (0)."""
    rng = rng or random.Random()
    floor = clock.now()           # no fire time at or before a run already done
    due = schedule.next_fire(floor)
    failed = 0                    # runs that failed (with keep_running), for the exit status
    while True:
        _announce(due, on_next)
        if due is None:
            if failed:
                log.warning("the schedule has no more fire times; done, %d run%s failed", failed,
                            "" if failed == 1 else "s")
                return 1
            log.info("the schedule has no more fire times; done")
            return 0
        # Arithmetic and comparisons in UTC: on a zone's wall clock, the second pass of a repeated
        # hour (fold=1) would compare equal to the first and lose its fold when a delta is added.
        fire_at = _utc(due) + timedelta(seconds=rng.uniform(0, schedule.jitter) if schedule.jitter else 0)
        if not clock.sleep_until(fire_at):
            log.info("end of input: stopped while waiting for %s", _fmt(due))
            return 1 if failed else 0   # the schedule ends here: as at its end_date
        woke = _utc(clock.now())
        late = (woke - fire_at).total_seconds()
        if woke - fire_at > MISFIRE_GRACE:
            log.warning("missed the fire time %s: woke %.1f s late (clock jump or suspend); not catching up",
                        _fmt(due), late)
        else:
            log.info("run due %s starting", _fmt(due))
            if not run_once(due):
                if not keep_running:
                    log.error("the run due %s failed; ending the schedule (use --keep-running to go on)",
                              _fmt(due))
                    return 1
                failed += 1
        floor = max(_utc(clock.now()), _utc(due))
        previous, (due, skipped) = due, _next_after_run(schedule, due, floor)
        if woke - fire_at > MISFIRE_GRACE:
            _log_skipped(skipped, "the clock jumped or the machine slept")
            continue
        # Fire times before the run started passed while it waited for its jitter (or for a busy
        # machine); the ones after, while it ran.
        delay = f"jitter up to {schedule.jitter:g} s" if schedule.jitter else f"{late:.1f} s late"
        _log_skipped([t for t in skipped if _utc(t) <= woke],
                     f"the run due {_fmt(previous)} had not started yet ({delay})")
        _log_skipped([t for t in skipped if _utc(t) > woke], "the previous run was still going")


def _next_after_run(schedule: Schedule, due: datetime, floor: datetime) -> tuple[datetime | None, list[datetime]]:
    """The first fire time after `floor`, and the ones skipped since `due` (at most COUNT_SKIPPED)."""
    skipped: list[datetime] = []
    nxt = schedule.next_fire(due, inclusive=False)
    while nxt is not None and _utc(nxt) <= floor and len(skipped) < COUNT_SKIPPED:
        skipped.append(nxt)
        nxt = schedule.next_fire(nxt, inclusive=False)
    if nxt is not None and _utc(nxt) <= floor:   # too many to count: jump straight past them
        nxt = schedule.next_fire(floor, inclusive=False)
    return nxt, skipped


def _log_skipped(skipped: list[datetime], why: str) -> None:
    """Say which fire times were skipped and why."""
    if not skipped:
        return
    if len(skipped) <= LIST_SKIPPED:
        for when in skipped:
            log.warning("skipped the fire time %s: %s", _fmt(when), why)
        return
    more = "or more " if len(skipped) >= COUNT_SKIPPED else ""
    log.warning("skipped %d %sfire times from %s to %s: %s",
                len(skipped), more, _fmt(skipped[0]), _fmt(skipped[-1]), why)


def _announce(due: datetime | None, on_next: Callable[[datetime | None], None] | None) -> None:
    if due is not None:
        log.info("next run at %s", _fmt(due))
    if on_next is not None:
        on_next(due)


def _utc(when: datetime) -> datetime:
    return when.astimezone(timezone.utc)


def _fmt(when: datetime) -> str:
    return when.isoformat(sep=" ")
