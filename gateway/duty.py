"""Officers' duty schedules: who is on duty at a given moment. Pure: the time is always passed in.

An officer's ``duty`` is a list of entries; the officer is on duty when any entry covers the
moment, read as wall-clock time in ``gateway.timezone``. An officer with no entries is always on
duty. One entry is ``[DAYS] START-END``::

    mon-fri 08:00-18:00     Monday to Friday, 08:00 up to (not including) 18:00
    sat,sun 09:00-17:00     a list of days
    daily 20:00-08:00       every day; past midnight, so Monday's shift runs to Tuesday 08:00
    fri-mon 22:00-06:00     a range may wrap past Sunday: fri, sat, sun, mon
    00:00-24:00             no days means daily: always on duty

- DAYS: ``daily``, or a comma-separated list of days (``mon tue wed thu fri sat sun``) and day
  ranges (``mon-fri``). Case does not matter.
- START, END: ``HH:MM``, 24-hour, 00:00 to 23:59; END may also be ``24:00`` (end of the day).
  The interval includes START and excludes END. An END earlier than START runs past midnight and
  belongs to the day it starts on. START equal to END is refused (write ``00:00-24:00``).

Schedules are parsed once into a week of minute intervals (:class:`DutySchedule`); a
:class:`DutyRoster` holds every officer's, so asking who is on duty per alarm event is a time-zone
conversion and a binary search.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator

if TYPE_CHECKING:
    from gateway.config import Officer

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES

_ENTRY = re.compile(r"^(?:(?P<days>\S+)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")
_EXAMPLE = "like 'mon-fri 08:00-18:00', 'sat,sun 09:00-17:00' or 'daily 20:00-08:00'"


def _day(name: str, entry: str) -> int:
    try:
        return DAYS.index(name)
    except ValueError:
        raise ValueError(
            f"duty entry {entry!r}: unknown day {name!r}; days are {', '.join(DAYS)} or daily"
        ) from None


def _days(spec: str, entry: str) -> list[int]:
    if spec == "daily":
        return list(range(7))
    days: list[int] = []
    for part in spec.split(","):
        first, dash, last = part.partition("-")
        if not first or (dash and not last):
            raise ValueError(f"duty entry {entry!r}: bad day list {spec!r}; write days like mon-fri, sat,sun or daily")
        a = _day(first, entry)
        b = _day(last, entry) if dash else a
        days += [(a + i) % 7 for i in range((b - a) % 7 + 1)]
    return days


def _minute(hhmm: str, entry: str, *, end: bool) -> int:
    hh, mm = (int(x) for x in hhmm.split(":"))
    if mm > 59 or hh > 24 or (hh == 24 and mm != 0):
        raise ValueError(f"duty entry {entry!r}: {hhmm} is not a time of day (00:00 to 24:00)")
    if hh == 24 and not end:
        raise ValueError(f"duty entry {entry!r}: 24:00 can only end an interval")
    return hh * 60 + mm


def parse_entry(entry: str) -> list[tuple[int, int]]:
    """One duty entry as week-minute intervals ``[start, end)``, Monday 00:00 being minute 0.

    Raises ValueError naming the entry and what is wrong with it.
    """
    if not isinstance(entry, str):
        raise ValueError(f"duty entry must be a string {_EXAMPLE}, not {entry!r}")
    m = _ENTRY.match(re.sub(r"\s*,\s*", ",", entry.strip().lower()))
    if m is None:
        raise ValueError(f"duty entry {entry!r} is not [DAYS] HH:MM-HH:MM, {_EXAMPLE}")
    start = _minute(m["start"], entry, end=False)
    end = _minute(m["end"], entry, end=True)
    if start == end:
        raise ValueError(f"duty entry {entry!r}: start and end are equal; for the whole day write 00:00-24:00")
    length = end - start if end > start else DAY_MINUTES - start + end
    out: list[tuple[int, int]] = []
    for day in _days(m["days"] or "daily", entry):
        a = day * DAY_MINUTES + start
        b = a + length
        if b <= WEEK_MINUTES:
            out.append((a, b))
        else:  # Sunday's night shift runs into Monday
            out += [(a, WEEK_MINUTES), (0, b - WEEK_MINUTES)]
    return out


def _check_entry(entry: str) -> str:
    parse_entry(entry)
    return entry


def _check_time_zone(name: str) -> str:
    time_zone(name)
    return name


# Config field types: a bad value is a validation error at its own key path.
DutyEntry = Annotated[str, AfterValidator(_check_entry)]
TimeZoneName = Annotated[str, AfterValidator(_check_time_zone)]


@dataclass(frozen=True, slots=True)
class DutySchedule:
    """A parsed duty schedule: sorted, merged week-minute intervals; ``always`` when none was given."""

    entries: tuple[str, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> DutySchedule:
        """Parse duty entries (see the module docstring); ValueError on a bad one."""
        entries = tuple(entries)
        merged: list[list[int]] = []
        for a, b in sorted(iv for e in entries for iv in parse_entry(e)):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return cls(entries, tuple(a for a, _ in merged), tuple(b for _, b in merged))

    @property
    def always(self) -> bool:
        return not self.entries

    def covers(self, week_minute: int) -> bool:
        """Whether the schedule covers a minute of the week (Monday 00:00 = 0)."""
        if self.always:
            return True
        i = bisect_right(self.starts, week_minute) - 1
        return i >= 0 and week_minute < self.ends[i]

    def on_duty(self, at_ms: int, tz: tzinfo) -> bool:
        """Whether the schedule covers the moment ``at_ms`` (epoch milliseconds), read in ``tz``."""
        if self.always:
            return True
        return self.covers(week_minute(at_ms, tz))


def week_minute(at_ms: int, tz: tzinfo) -> int:
    """The wall-clock minute of the week in ``tz`` at epoch milliseconds ``at_ms`` (Monday 00:00 = 0)."""
    local = datetime.fromtimestamp(at_ms // 1000, tz)
    return local.weekday() * DAY_MINUTES + local.hour * 60 + local.minute


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as 'Asia/Shanghai' or 'UTC'") from None


@lru_cache(maxsize=1024)
def _schedule(entries: tuple[str, ...]) -> DutySchedule:
    return DutySchedule.parse(entries)


def on_duty(officer: Officer, at_ms: int, tz: tzinfo) -> bool:
    """Whether ``officer`` is on duty at ``at_ms`` (epoch ms) in time zone ``tz``. Parsed schedules
    are cached; for many officers prefer a :class:`DutyRoster`."""
    return _schedule(tuple(officer.duty)).on_duty(at_ms, tz)


class DutyRoster:
    """Every officer's parsed schedule in the gateway's time zone. Unknown officers are always on duty."""

    def __init__(self, officers: Iterable[Officer], tz: tzinfo) -> None:
        self.tz = tz
        self.schedules: dict[str, DutySchedule] = {o.id: DutySchedule.parse(o.duty) for o in officers}

    def on_duty(self, officer: str, at_ms: int) -> bool:
        schedule = self.schedules.get(officer)
        return schedule is None or schedule.on_duty(at_ms, self.tz)

    def on_duty_among(self, officers: Iterable[str], at_ms: int) -> list[str]:
        """Those of ``officers`` on duty at ``at_ms``, in their order (the local time is computed once)."""
        minute: int | None = None
        out: list[str] = []
        for o in officers:
            schedule = self.schedules.get(o)
            if schedule is not None and not schedule.always:
                if minute is None:
                    minute = week_minute(at_ms, self.tz)
                if not schedule.covers(minute):
                    continue
            out.append(o)
        return out
