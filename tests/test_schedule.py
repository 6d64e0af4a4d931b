"""The schedule loop driven by a fake clock: no real waiting anywhere in this file."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta, timezone

import pytest
from conftest import FakeClock

from lynx.schedule import run_loop

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class EverySeconds:
    """A stand-in schedule: every `step` seconds from T0, optionally ending."""

    def __init__(self, step: int, end: datetime | None = None, jitter: float | None = None) -> None:
        self.step, self.end, self.jitter = step, end, jitter

    def next_fire(self, after: datetime, inclusive: bool = True):
        offset = (after - T0).total_seconds()
        n = -(-offset // self.step) if inclusive else offset // self.step + 1
        fire = T0 + timedelta(seconds=max(n, 0) * self.step)
        return None if self.end and fire > self.end else fire


class Runs:
    """run_once stand-in: records due times, can take time and fail."""

    def __init__(self, clock: FakeClock, duration: float = 0.0, results=None, stop_after: int = 10) -> None:
        self.clock, self.duration, self.results = clock, duration, list(results or [])
        self.due, self.started, self.stop_after = [], [], stop_after

    def __call__(self, due: datetime) -> bool:
        self.due.append(due)
        self.started.append(self.clock.now())
        self.clock.advance(self.duration)
        if len(self.due) >= self.stop_after:
            raise KeyboardInterrupt  # the test's way out of an endless schedule
        return self.results.pop(0) if self.results else True


def drive(schedule, runs, clock, **kw):
    try:
        return run_loop(schedule, runs, clock, **kw)
    except KeyboardInterrupt:
        return "stopped"


def test_it_fires_at_each_scheduled_time_and_waits_once_per_fire(fake_clock):
    runs = Runs(fake_clock, stop_after=3)
    drive(EverySeconds(10), runs, fake_clock)
    assert runs.due == [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)]
    assert fake_clock.waits == runs.due


def test_it_skips_fire_times_that_pass_while_a_run_is_still_going(fake_clock, caplog):
    runs = Runs(fake_clock, duration=25, stop_after=3)
    with caplog.at_level(logging.WARNING, logger="lynx"):
        drive(EverySeconds(10), runs, fake_clock)
    assert runs.due == [T0, T0 + timedelta(seconds=30), T0 + timedelta(seconds=60)]
    assert "skipped the fire time 2026-01-01 00:00:10+00:00" in caplog.text
    assert "skipped the fire time 2026-01-01 00:00:20+00:00" in caplog.text


def test_many_skipped_fire_times_are_counted_not_listed(fake_clock, caplog):
    runs = Runs(fake_clock, duration=3600, stop_after=2)
    with caplog.at_level(logging.WARNING, logger="lynx"):
        drive(EverySeconds(1), runs, fake_clock)
    assert runs.due[1] == T0 + timedelta(seconds=3601)
    assert "skipped 3600 fire times" in caplog.text


def test_a_failed_run_ends_the_schedule_with_status_1(fake_clock):
    runs = Runs(fake_clock, results=[True, False])
    assert drive(EverySeconds(10), runs, fake_clock) == 1
    assert len(runs.due) == 2


def test_keep_running_goes_on_after_a_failed_run(fake_clock):
    runs = Runs(fake_clock, results=[False, False, True], stop_after=4)
    assert drive(EverySeconds(10), runs, fake_clock, keep_running=True) == "stopped"
    assert len(runs.due) == 4


def test_the_end_date_ends_the_schedule_cleanly(fake_clock):
    runs = Runs(fake_clock)
    assert drive(EverySeconds(10, end=T0 + timedelta(seconds=20)), runs, fake_clock) == 0
    assert len(runs.due) == 3


def test_jitter_delays_each_fire_by_at_most_the_jitter(fake_clock):
    runs = Runs(fake_clock, stop_after=50)
    drive(EverySeconds(60, jitter=5), runs, fake_clock, rng=random.Random(7))
    delays = [(start - due).total_seconds() for start, due in zip(runs.started, runs.due)]
    assert all(0 <= d <= 5 for d in delays)
    assert len(set(delays)) > 40, "jitter should vary between fires"
    assert runs.due == [T0 + timedelta(seconds=60 * i) for i in range(50)]


def test_a_clock_jump_forward_runs_nothing_to_catch_up(fake_clock, caplog):
    class Jumping(FakeClock):
        def sleep_until(self, when):
            super().sleep_until(when)
            if len(self.waits) == 2:
                self.advance(5 * 3600)  # the laptop slept for five hours
            return True
    clock = Jumping(T0)
    runs = Runs(clock, stop_after=3)
    with caplog.at_level(logging.WARNING, logger="lynx"):
        drive(EverySeconds(60), runs, clock)
    assert runs.due[0] == T0
    assert runs.due[1] == T0 + timedelta(seconds=5 * 3600 + 120)
    assert "missed the fire time 2026-01-01 00:01:00+00:00" in caplog.text
    assert "skipped 300 fire times" in caplog.text


def test_a_clock_jump_backward_never_repeats_a_run(fake_clock):
    class Rewinding(Runs):
        def __call__(self, due):
            result = super().__call__(due)
            if len(self.due) == 2:
                self.clock.advance(-3600)  # NTP stepped the clock back an hour
            return result
    runs = Rewinding(fake_clock, stop_after=4)
    drive(EverySeconds(60), runs, fake_clock)
    assert runs.due == sorted(set(runs.due))
    assert runs.due[2] == T0 + timedelta(seconds=120)


def test_end_of_input_while_waiting_stops_cleanly(fake_clock):
    class Eof(FakeClock):
        def sleep_until(self, when):
            return len(self.waits) < 1 and not self.waits.append(when)
    clock = Eof(T0)
    runs = Runs(clock)
    assert drive(EverySeconds(10), runs, clock) == 0
    assert len(runs.due) == 1


def test_the_next_fire_time_is_reported_after_every_run(fake_clock):
    seen = []
    runs = Runs(fake_clock, stop_after=2)
    drive(EverySeconds(10), runs, fake_clock, on_next=seen.append)
    assert seen == [T0, T0 + timedelta(seconds=10)]


# --- the loop over real daylight-saving nights, with real cron schedules and zones ---------------

def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


DST_NIGHTS = [
    ("berlin-spring-forward", {"hour": 2, "minute": 30, "timezone": "Europe/Berlin"}, "2026-03-28T12:00:00+01:00",
     ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("berlin-fall-back", {"hour": 2, "minute": 30, "timezone": "Europe/Berlin"}, "2026-10-24T12:00:00+02:00",
     ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"]),
    ("new-york-spring-forward", {"hour": 2, "minute": 0, "timezone": "America/New_York"},
     "2026-03-07T12:00:00-05:00",
     ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]),
    ("new-york-fall-back", {"hour": 1, "minute": 30, "timezone": "America/New_York"},
     "2026-10-31T12:00:00-04:00",
     ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"]),
]


@pytest.mark.parametrize("cron, start, expected", [case[1:] for case in DST_NIGHTS],
                         ids=[case[0] for case in DST_NIGHTS])
def test_the_loop_fires_through_daylight_saving_nights_as_apscheduler_does(cron, start, expected):
    from lynx.cron import build

    expected = [utc(text) for text in expected]
    clock = FakeClock(utc(start))
    runs = Runs(clock, duration=60, stop_after=len(expected))
    drive(build(cron), runs, clock)
    assert [due.astimezone(timezone.utc) for due in runs.due] == expected
    assert [w.astimezone(timezone.utc) for w in clock.waits] == expected


def test_the_real_clock_hands_memory_back_before_a_long_wait_only(monkeypatch):
    from lynx import memory, schedule

    released, now = [], [T0]
    monkeypatch.setattr(memory, "release_free_memory", lambda: released.append(now[0]) or True)
    # No real waiting: the clock reads `now`, and sleeping moves it on.
    monkeypatch.setattr(schedule.time, "sleep", lambda seconds: now.append(now.pop() + timedelta(seconds=seconds)))

    class Clock(schedule.RealClock):
        def now(self) -> datetime:
            return now[0]

    clock = Clock()
    assert clock.sleep_until(T0 + timedelta(seconds=1))
    assert released == []                       # a wait of a second: not worth it
    assert clock.sleep_until(T0 + timedelta(minutes=5))
    assert released == [T0 + timedelta(seconds=1)]   # once, before the long wait began
    assert now[0] == T0 + timedelta(minutes=5)


def test_fire_times_passed_while_a_run_waited_for_its_jitter_are_said_to_be_skipped_for_that(fake_clock, caplog):
    class Late(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return 4.5   # every run starts 4.5 s after its fire time

    runs = Runs(fake_clock, duration=3, stop_after=2)
    with caplog.at_level(logging.WARNING, logger="lynx"):
        drive(EverySeconds(2, jitter=5), runs, fake_clock, rng=Late())
    # The run due :00 starts at :04.5 and ends at :07.5: :02 and :04 passed before it started, :06 during it.
    waited = "the run due 2026-01-01 00:00:00+00:00 had not started yet (jitter up to 5 s)"
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped the fire time 2026-01-01 00:00:02+00:00: {waited}",
        f"skipped the fire time 2026-01-01 00:00:04+00:00: {waited}",
        "skipped the fire time 2026-01-01 00:00:06+00:00: the previous run was still going"]


def test_with_keep_running_a_schedule_that_ends_after_a_failed_run_exits_1(fake_clock, caplog):
    runs = Runs(fake_clock, results=[True, False, True])
    with caplog.at_level(logging.WARNING, logger="lynx"):
        status = drive(EverySeconds(10, end=T0 + timedelta(seconds=20)), runs, fake_clock, keep_running=True)
    assert (status, len(runs.due)) == (1, 3)
    assert "the schedule has no more fire times; done, 1 run failed" in caplog.text



def test_with_keep_running_ctrl_d_after_a_failed_run_exits_1(fake_clock):
    class EndOfInputAfterTwoWaits(type(fake_clock)):
        def sleep_until(self, when):
            super().sleep_until(when)
            return len(self.waits) < 3

    clock = EndOfInputAfterTwoWaits(T0)
    runs = Runs(clock, results=[False, True])
    assert drive(EverySeconds(10), runs, clock, keep_running=True) == 1
    assert len(runs.due) == 2
