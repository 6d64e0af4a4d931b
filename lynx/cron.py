"""Cron schedules with APScheduler 3.11 CronTrigger semantics, computed with croniter.

Daylight saving time (derived from the dst-* vectors, which APScheduler 3.11 computed): the
search runs on naive wall-clock times, starting at the local wall time of `after`.
- A wall time that exists once fires at that instant.
- A wall time that occurs twice (fall back) fires at both instants, in order: once the first
  pass through the repeated hour is over, the clock reads those wall times again.
- A wall time that does not exist (spring forward) is read with the offset in force before the
  change, so it fires shifted forward by the gap (Berlin 02:30 -> 03:30+02:00). The following
  search starts at the real wall time just after that fire, so the gap's other missing times and
  real times up to the fire do not fire again (Berlin hourly :30 -> 01:30, 03:30; New York */20
  -> 01:40, 03:00, 03:20).
"""

from __future__ import annotations

import calendar
import copy
import os
import re
from bisect import bisect_left
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Callable, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from lynx.errors import ConfigError, LynxError
from lynx.yamlsafe import clip, exponent_hint, is_seconds

KEYS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second",
        "start_date", "end_date", "timezone", "jitter")
FIELDS = KEYS[:8]
_RANGES = {"year": (1970, 9999), "month": (1, 12), "day": (1, 31), "week": (1, 53),
           "day_of_week": (0, 6), "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}
_DEFAULTS = {"year": "*", "month": "1", "day": "1", "week": "*", "day_of_week": "*",
             "hour": "0", "minute": "0", "second": "0"}
_NAMES = {"month": ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
          "day_of_week": ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
_WEEKDAYS = _NAMES["day_of_week"]
_POSITIONS = ("1st", "2nd", "3rd", "4th", "5th", "last")
_TERM = re.compile(r"(\*|[0-9a-z]+)(?:-([0-9a-z]+))?(?:/(\d+))?$", re.IGNORECASE)
_POSITION = re.compile(r"(1st|2nd|3rd|4th|5th|last)(?:\s+(\S+))?$", re.IGNORECASE)
_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2}):(\d{1,2})"
                   r"(?:\.(\d{1,6}))?(Z|[+-]\d\d:\d\d)?)?$")
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)


class _Field(NamedTuple):
    values: frozenset | None  # plain numbers; None for any year or week
    last: bool = False  # day: 'last'
    positions: tuple = ()  # day: (position 0-4 or 5 = last, weekday 0 = Monday)


class CronSchedule:
    """A validated cron schedule; `next_fire` gives its fire times. Immutable once built."""

    __slots__ = (
        "_croniter",
        "_fields",
        "_type_ok",
        "_years",
        "end_date",
        "expression",
        "jitter",
        "start_date",
        "timezone",
        "timezone_name",
    )

    def __init__(self, timezone: tzinfo, timezone_name: str, jitter: float | None,
                 start_date: datetime | None, end_date: datetime | None, expression: str,
                 fields: Mapping[str, _Field], years: tuple | None) -> None:
        values = {"timezone": timezone, "timezone_name": timezone_name, "jitter": jitter,
                  "start_date": start_date, "end_date": end_date, "expression": expression,
                  "_fields": fields,
                  "_years": years,                 # sorted; None = any year
                  "_type_ok": {},                  # year type -> can fire (a cache)
                  # parsed once; each search works on a copy
                  "_croniter": croniter(expression, datetime(2000, 1, 1), day_or=False)}
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a CronSchedule is immutable: cannot set {name}")

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, timezone={self.timezone_name!r})"

    def next_fire(self, after: datetime, inclusive: bool = True) -> datetime | None:
        """First fire time >= after (> after when not inclusive), in self.timezone; None if none."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError(f"next_fire needs an aware datetime, got {after!r}")
        try:
            at = after.astimezone(timezone.utc) + timedelta(microseconds=0 if inclusive else 1)
            if self.start_date is not None:
                at = max(at, self.start_date.astimezone(timezone.utc))
            if at.microsecond:  # APScheduler rounds a fractional start up to the next second
                at = at.replace(microsecond=0) + _SECOND
            fire = self._first_from(at)
        except OverflowError:   # past 9999-12-31 23:59:59: no fire time a datetime can hold
            return None
        if fire is None or (self.end_date is not None and _utc(fire) > _utc(self.end_date)):
            return None
        return fire

    def near_dst_change(self, fire: datetime) -> bool:
        """True when a UTC-offset change of self.timezone lies within 24 h of `fire`."""
        if fire.tzinfo is None:
            raise ValueError(f"near_dst_change needs an aware datetime, got {fire!r}")
        base = _utc(fire)  # hourly samples: offset changes are hours apart
        offsets = set()
        for hours in range(-24, 25):
            try:
                offsets.add((base + timedelta(hours=hours)).astimezone(self.timezone).utcoffset())
            except OverflowError:   # a fire time on the calendar's first or last day
                continue
        return len(offsets) > 1

    def _first_from(self, at: datetime) -> datetime | None:
        """First fire instant >= the UTC instant `at`, ignoring end_date."""
        local = at.astimezone(self.timezone)
        wall = local.replace(tzinfo=None, fold=0)
        while True:
            wall = self._next_wall(wall)
            if wall is None:
                return None
            best = next((i for i in self._instants(wall) if i >= at), None)
            if best is not None:
                break
            wall += _SECOND   # (only when needed: after 9999-12-31 23:59:59 it overflows)
        switch = _fall_back_instant(local)
        if switch is not None and best >= switch:  # the repeated hour's second pass comes first
            other = self._first_from(switch)
            best = min(best, _utc(other)) if other is not None else best
        return best.astimezone(self.timezone)

    def _instants(self, wall: datetime) -> list:
        """UTC instants of a wall time: two when repeated, one shifted forward when missing."""
        first = wall.replace(tzinfo=self.timezone).astimezone(timezone.utc)
        second = wall.replace(tzinfo=self.timezone, fold=1).astimezone(timezone.utc)
        # fold=0 in a gap uses the offset before the change: later than fold=1, the APScheduler fire
        return [first] if first >= second else [first, second]

    def _next_wall(self, start: datetime) -> datetime | None:
        """First naive wall time >= start that matches every field."""
        while True:
            try:
                hit = copy.copy(self._croniter).get_next(datetime, start_time=start - _SECOND)
            except (CroniterBadDateError, OverflowError, ValueError):
                hit = None  # croniter gives up after 50 years; _next_date decides exactly
            if hit is not None and hit < start:   # never loop on an answer from the past
                raise LynxError(f"croniter gave {hit} for a time from {start}; this machine's clock "
                                "setup confuses it (a time zone with leap seconds?)")
            if hit is not None and self._extras_ok(hit.date()):
                return hit
            day = self._next_date(_add_day(hit.date() if hit else start.date()))
            if day is None:
                return None
            start = datetime.combine(day, time())

    def _extras_ok(self, day: date) -> bool:
        """Check what croniter cannot: year, ISO week and positional days."""
        fields = self._fields
        return ((self._years is None or day.year in fields["year"].values)
                and (fields["week"].values is None or day.isocalendar()[1] in fields["week"].values)
                and (not _is_special(fields["day"]) or _day_ok(fields["day"], day)))

    def _date_ok(self, day: date) -> bool:
        """Whether every date field matches `day`."""
        fields = self._fields
        return (day.month in fields["month"].values and day.weekday() in fields["day_of_week"].values
                and _day_ok(fields["day"], day) and self._extras_ok(day))

    def _next_date(self, day: date | None) -> date | None:
        """First matching date >= day; years whose calendar type cannot match are skipped."""
        while day is not None:
            year = self._next_year(day.year)
            if year is None:
                return None
            day = day if year == day.year else date(year, 1, 1)
            if self._year_can_fire(year):
                while day is not None and day.year == year:
                    if self._date_ok(day):
                        return day
                    day = _add_day(day)
            else:
                day = date(year + 1, 1, 1) if year < 9999 else None
        return None

    def _next_year(self, year: int) -> int | None:
        """First allowed year >= year."""
        if self._years is None:
            return year if year <= 9999 else None
        index = bisect_left(self._years, year)
        return self._years[index] if index < len(self._years) else None

    def _year_can_fire(self, year: int) -> bool:
        """Whether an allowed year of this calendar type has a matching date (cached per type)."""
        # ISO weeks of early January also depend on whether the previous year was a leap year
        kind = (calendar.isleap(year - 1), calendar.isleap(year), date(year, 1, 1).weekday())
        if kind not in self._type_ok:
            days = (date(year, 1, 1) + timedelta(n) for n in range(365 + kind[1]))
            self._type_ok[kind] = any(self._date_ok(d) for d in days
                                      if d.month in self._fields["month"].values)
        return self._type_ok[kind]


def build(values: Mapping[str, Any], where: Callable[[str], str] = lambda key: f"cron.{key}") -> CronSchedule:
    """Validate the mapping and build the schedule; raise ConfigError naming the bad key."""
    for key in values:
        if key not in KEYS:
            import difflib  # only when there is an error to explain

            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(KEYS)}"
            raise ConfigError(f"{where(str(key))}: unknown key; {hint}")
    for key, value in values.items():
        if value is None:
            raise ConfigError(f"{where(key)}: has no value")
    if _counts_leap_seconds():
        raise ConfigError(f"TZ={os.environ.get('TZ', '(from /etc/localtime)')}: this time zone counts leap "
                          "seconds, and croniter's fire times come ~27 s early in it; use the zone without "
                          "'right/' (e.g. TZ=Europe/Berlin)")
    zone, zone_name = _zone(values["timezone"], where) if "timezone" in values else _local_zone()
    given = [name for name in FIELDS if name in values]
    last_given = FIELDS.index(given[-1]) if given else len(FIELDS)  # none given: every second
    fields = {name: _parse_field(name, values[name] if name in values else
                                 "*" if i < last_given else _DEFAULTS[name], where)
              for i, name in enumerate(FIELDS)}
    start = _date(values.get("start_date"), zone, "start_date", where)
    end = _date(values.get("end_date"), zone, "end_date", where)
    if start is not None and end is not None and _utc(end) < _utc(start):
        raise ConfigError(f"{where('end_date')}: {end.isoformat()} is before start_date {start.isoformat()}")
    return CronSchedule(zone, zone_name, _jitter(values.get("jitter"), where), start, end,
                        _expression(fields), fields,
                        None if fields["year"].values is None else tuple(sorted(fields["year"].values)))


def _counts_leap_seconds() -> bool:
    """True when the C library counts leap seconds (a `right/` zone): its gmtime then disagrees with
    calendar arithmetic, which croniter mixes with it."""
    import time as clock

    stamp = 1_700_000_000
    return calendar.timegm(clock.gmtime(stamp)) != stamp


def _parse_field(name: str, raw: Any, where: Callable[[str], str]) -> _Field:
    """Parse one APScheduler field expression into its allowed values."""
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{where(name)}: {message}")

    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise fail(f"{_shown(raw)} is not valid; give a number or a string such as '*/5' or '1,15'")
    low, high = _RANGES[name]
    if isinstance(raw, int) and not low <= raw <= high:
        raise fail(f"{_shown(raw)} is out of range {low}-{high}")
    if isinstance(raw, str) and len(raw) > 1000:   # (int() of thousands of digits refuses, or is slow)
        raise fail(f"{_shown(raw)} is too long to be a cron expression")
    values, last, positions = set(), False, []
    for term in re.split(r"\s*,\s*", str(raw).strip()):
        match = _POSITION.match(term) if name == "day" else None
        if match and match.group(2) is None and match.group(1).lower() == "last":
            last = True
        elif match and match.group(2) is not None:
            if match.group(2).lower() not in _WEEKDAYS:
                raise fail(f"{match.group(2)!r} is not a weekday name; use mon..sun, e.g. '2nd mon'")
            positions.append((_POSITIONS.index(match.group(1).lower()), _WEEKDAYS.index(match.group(2).lower())))
        else:
            values.update(_parse_term(name, term, fail))
    if name in ("year", "week") and values == set(range(low, high + 1)):
        return _Field(None)  # any year or week: nothing for the filter to check
    return _Field(frozenset(values), last, tuple(positions))


def _parse_term(name: str, term: str, fail: Callable[[str], ConfigError]) -> range:
    """Parse `*`, `*/n`, `a`, `a-b`, `a-b/n` or `a/n` into the values it allows."""
    low, high = _RANGES[name]
    names = _NAMES.get(name, ())
    hint = f"use {low}-{high}" + (f" or {names[0]}..{names[-1]}" if names else "") + \
        ", ranges a-b, steps */n, a-b/n, a/n" + (", 'last', '2nd mon', 'last fri'" if name == "day" else "")
    match = _TERM.match(term)
    if not term or not match or (match.group(1) == "*" and match.group(2)):
        raise fail(f"{_shown(term)} is not a valid expression; {hint}")
    if len({token.isdigit() for token in match.group(1, 2) if token not in (None, "*")}) > 1:
        raise fail(f"{_shown(term)} mixes numbers and names; {hint}")
    bounds = []
    for token in match.group(1, 2):
        if token is None or token == "*" or token.isdigit():
            bounds.append(None if token in (None, "*") else int(token))
        elif token.lower() in names:
            bounds.append(names.index(token.lower()) + (name == "month"))
        else:
            kind = {"month": "a month name", "day_of_week": "a weekday name"}.get(name, "valid here")
            raise fail(f"{token!r} is not {kind}; {hint}")
    first, last = bounds
    step = int(match.group(3)) if match.group(3) else None
    if step is not None and not match.group(1).isdigit() and match.group(1) != "*":
        raise fail(f"{_shown(term)}: a step cannot follow names; use numbers, e.g. 1-12/3")
    if first is not None and last is not None and first > last:
        raise fail(f"{_shown(term)} is a reversed range; the first value must not be higher than the last")
    if step == 0:
        raise fail(f"{_shown(term)}: the step must be at least 1")
    for value in (first, last):
        if value is not None and not low <= value <= high:
            raise fail(f"{_shown(value)} is out of range {low}-{high}")
    first = low if first is None else first
    last = last if last is not None else first if step is None and match.group(1) != "*" else high
    span = (last or high) - first  # APScheduler's check, quirk included
    if step is not None and step > span:
        raise fail(f"{_shown(term)}: the step {step} is larger than the range ({span})")
    return range(first, last + 1, step or 1)


def _expression(fields: Mapping[str, _Field]) -> str:
    """The croniter expression (seconds last) for everything but year, week and positional days."""
    day = fields["day"]
    day_text = "*" if _is_special(day) else "L" if day.last else _compact(day.values, 1, 31)
    dows = sorted(fields["day_of_week"].values)
    dow_text = "*" if len(dows) == 7 else ",".join(
        f"{_WEEKDAYS[a]}-{_WEEKDAYS[b]}" if b - a > 1 else ",".join(_WEEKDAYS[a:b + 1])
        for a, b in _runs([d for d in dows if d < 6])) + (",sun" if 6 in dows else "")
    return " ".join([_compact(fields["minute"].values, 0, 59), _compact(fields["hour"].values, 0, 23),
                     day_text, _compact(fields["month"].values, 1, 12), dow_text.lstrip(","),
                     _compact(fields["second"].values, 0, 59)])


def _compact(values: frozenset, low: int, high: int) -> str:
    """Shortest of `*`, `*/n` or a list of numbers and ranges for a value set."""
    ordered = sorted(values)
    for step in range(1, (high - low) // 2 + 1):  # `*/n` only when it stands for 3 or more values
        if ordered == list(range(low, high + 1, step)):
            return "*" if step == 1 else f"*/{step}"
    return ",".join(f"{a}-{b}" if b - a > 1 else ",".join(map(str, range(a, b + 1))) for a, b in _runs(ordered))


def _runs(ordered: list) -> list:
    """Consecutive runs of sorted numbers as (first, last) pairs."""
    runs: list = []
    for value in ordered:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _is_special(day: _Field) -> bool:
    """Whether the day field needs the filter: positional days, or 'last' mixed with numbers."""
    return bool(day.positions) or (day.last and bool(day.values))


def _day_ok(day: _Field, when: date) -> bool:
    """Whether the day field matches `when`."""
    month_length = calendar.monthrange(when.year, when.month)[1]
    return (when.day in day.values or (day.last and when.day == month_length)
            or any(weekday == when.weekday() and (when.day + 7 > month_length if position == 5
                                                  else (when.day - 1) // 7 == position)
                   for position, weekday in day.positions))


def _fall_back_instant(local: datetime) -> datetime | None:
    """When `local` is in the first pass of a repeated hour, the UTC instant the clock goes back."""
    before, after = local.utcoffset(), local.replace(fold=1).utcoffset()
    if local.fold or before is None or after is None or after >= before:
        return None
    start, low, high = _utc(local), 0, int((before - after).total_seconds())
    while high - low > 1:  # binary search for the first second with the later offset
        middle = (low + high) // 2
        low, high = ((middle, high) if (start + timedelta(seconds=middle)).astimezone(local.tzinfo)
                     .utcoffset() == before else (low, middle))
    return start + timedelta(seconds=high)


def _zone(value: Any, where: Callable[[str], str]) -> tuple:
    """A ZoneInfo for an IANA name."""
    try:
        if isinstance(value, str) and value.strip():
            return ZoneInfo(value.strip()), value.strip()
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    raise ConfigError(f"{where('timezone')}: {value!r} is not an IANA time zone name "
                      "(such as 'Europe/Berlin' or 'UTC')")


def _local_zone() -> tuple:
    """The machine's local zone and its best name: TZ, /etc/localtime's link, /etc/timezone."""
    given = os.environ.get("TZ", "").lstrip(":")
    if given and not os.path.isabs(given):   # a name, not a file
        try:
            return ZoneInfo(given), given
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # A POSIX rule (CET-1CEST,M3.5.0,M10.5.0/3): guessing a zone from elsewhere would fire
            # at other times than the user's clock shows.
            raise _unknown_zone(given, "an IANA time zone name") from None
    if given and given != "/etc/localtime" and "/zoneinfo/" not in os.path.realpath(given):   # kept elsewhere
        try:
            with open(given, "rb") as file:
                return ZoneInfo.from_file(file, key=given), given
        except (OSError, ValueError):
            raise _unknown_zone(given, "a readable time zone file") from None
    names = [os.path.realpath(given) if given else "", os.path.realpath("/etc/localtime")]
    try:
        with open("/etc/timezone", encoding="utf-8") as file:
            names.append(file.read().strip())
    except OSError:
        pass
    for name in names:
        name = name.split("/zoneinfo/", 1)[-1]
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
    try:
        with open("/etc/localtime", "rb") as file:
            return ZoneInfo.from_file(file, key="localtime"), "localtime"
    except (OSError, ValueError):
        return ZoneInfo("UTC"), "UTC"


def _unknown_zone(given: str, what: str) -> ConfigError:
    return ConfigError(f"TZ={given!r} is not {what}, so the schedule's zone is unknown; give the cron "
                       "section a `timezone:` (e.g. Europe/Berlin)")


def _date(value: Any, zone: tzinfo, key: str, where: Callable[[str], str]) -> datetime | None:
    """An aware datetime from a datetime, a date (local midnight) or an ISO string."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    else:
        match = _DATE.match(value.strip()) if isinstance(value, str) else None
        try:
            moment = datetime(*[int(p or 0) for p in match.groups()[:6]],
                              int((match.group(7) or "").ljust(6, "0"))) if match else None
        except ValueError:  # such as month 13
            moment = None
        if moment is None:
            raise ConfigError(f"{where(key)}: {value!r} is not a date; use 2026-05-01, "
                              "'2026-05-01 00:00:00' or 2026-05-01T00:00:00+02:00")
        if match.group(8):
            offset = match.group(8)
            minutes = 0 if offset == "Z" else int(offset[1:3]) * 60 + int(offset[4:6])
            if minutes >= 24 * 60 or offset[4:6] >= "60":
                raise ConfigError(f"{where(key)}: {value!r} has the offset {offset}, which no clock has; "
                                  "use -23:59 to +23:59")
            moment = moment.replace(tzinfo=timezone(timedelta(minutes=-minutes if offset[0] == "-" else minutes)))
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=zone)  # naive: wall time in the schedule's zone
    try:
        return _utc(moment).astimezone(zone)
    except OverflowError:   # year 1 or 9999 with an offset that carries it past the calendar
        raise ConfigError(f"{where(key)}: {value!r} is outside the calendar in this time zone") from None


def _jitter(value: Any, where: Callable[[str], str]) -> float | None:
    """Jitter in seconds: a non-negative finite number."""
    if value is None:
        return None
    if not is_seconds(value, positive=False):
        hint = exponent_hint(value, lambda n: is_seconds(n, positive=False)) if isinstance(value, str) else ""
        raise ConfigError(f"{where('jitter')}: {_shown(value)} is not valid; give a number of seconds >= 0 "
                          f"(at most ten years){hint}")
    return float(value)


def _shown(value: Any) -> str:
    """A value as a message quotes it: at most 40 characters."""
    try:
        return clip(repr(value))
    except ValueError:   # an int past Python's 4300-digit limit for turning it into text
        return "a number of thousands of digits"


def _utc(moment: datetime) -> datetime:
    """The same instant in UTC (same-zone comparisons would ignore fold)."""
    return moment.astimezone(timezone.utc)


def _add_day(day: date) -> date | None:
    """The next day, or None after 9999-12-31."""
    return day + _DAY if day < date.max else None
