"""Duty schedules with explicit times: days, nights past midnight, the time zone, routing to whoever is on duty."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.routing import recipients_of
from gateway.config import Config, Officer
from gateway.duty import DutySchedule, on_duty, parse_entry, week_minute
from gateway.errors import ConfigError
from gateway.registry import Registry
from tests.helpers import district

SH = ZoneInfo("Asia/Shanghai")
MON_0000_UTC = 1_767_571_200_000  # 2026-01-05, a Monday, 00:00 UTC = 08:00 Asia/Shanghai
G1 = "43090300100201"


def at(day: int, hh: int, mm: int = 0, tz: ZoneInfo = SH) -> int:
    """Epoch ms of ``hh:mm`` on a day of the week of 2026-01-05 (0 = Monday ... 6 = Sunday, 7 = next Monday)."""
    return int(datetime(2026, 1, 5 + day, hh, mm, tzinfo=tz).timestamp() * 1000)


MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def covers(entries: list[str], day: int, hh: int, mm: int = 0) -> bool:
    return DutySchedule.parse(entries).on_duty(at(day, hh, mm), SH)


def test_the_test_clock() -> None:
    assert at(MON, 8) == MON_0000_UTC
    assert week_minute(MON_0000_UTC, SH) == 8 * 60
    assert week_minute(MON_0000_UTC, UTC) == 0
    assert week_minute(at(SUN, 23, 59), SH) == 7 * 24 * 60 - 1


def test_weekdays_and_weekends() -> None:
    office = ["mon-fri 08:00-18:00"]
    assert covers(office, MON, 8) and covers(office, FRI, 17, 59) and covers(office, WED, 12)
    assert not covers(office, MON, 7, 59) and not covers(office, FRI, 18)  # the end is excluded
    assert not covers(office, SAT, 10) and not covers(office, SUN, 10)
    weekend = ["sat,sun 09:00-17:00"]
    assert covers(weekend, SAT, 9) and covers(weekend, SUN, 16, 59)
    assert not covers(weekend, FRI, 10) and not covers(weekend, MON, 10) and not covers(weekend, SUN, 17)
    both = office + weekend
    assert covers(both, TUE, 9) and covers(both, SAT, 9) and not covers(both, SAT, 8)


def test_night_shift_belongs_to_the_day_it_starts() -> None:
    monday_night = ["mon 20:00-08:00"]
    assert covers(monday_night, MON, 20) and covers(monday_night, TUE, 3) and covers(monday_night, TUE, 7, 59)
    assert not covers(monday_night, MON, 3)  # Sunday's night, not Monday's
    assert not covers(monday_night, TUE, 8) and not covers(monday_night, TUE, 20)
    nightly = ["daily 20:00-08:00"]
    assert all(covers(nightly, d, 3) and covers(nightly, d, 22) for d in range(7))
    assert not any(covers(nightly, d, 12) for d in range(7))
    sunday_night = ["sun 22:00-06:00"]  # runs past the end of the week into Monday
    assert covers(sunday_night, SUN, 23) and covers(sunday_night, MON, 5, 59) and covers(sunday_night, 7, 1)
    assert not covers(sunday_night, MON, 6) and not covers(sunday_night, SAT, 23)


def test_day_ranges_lists_and_forms() -> None:
    wrap = ["fri-mon 10:00-11:00"]  # fri, sat, sun, mon
    assert [covers(wrap, d, 10) for d in range(7)] == [True, False, False, False, True, True, True]
    mixed = ["Mon, WED-thu 10:00-11:00"]  # case and spaces after commas do not matter
    assert [covers(mixed, d, 10) for d in range(7)] == [True, False, True, True, False, False, False]
    assert all(covers(["00:00-24:00"], d, h) for d in range(7) for h in (0, 12, 23))
    assert covers(["daily 8:00-9:00"], TUE, 8)
    assert covers([], SUN, 3) and DutySchedule.parse([]).always  # no schedule: always on duty
    merged = DutySchedule.parse(["mon 08:00-12:00", "mon 11:00-14:00", "mon 14:00-15:00"])
    assert list(zip(merged.starts, merged.ends, strict=True)) == [(8 * 60, 15 * 60)]
    assert parse_entry("sun 23:00-01:00") == [(6 * 1440 + 23 * 60, 7 * 1440), (0, 60)]


def test_time_zone() -> None:
    morning = Officer(id="o", name="O", duty=["daily 08:00-09:00"])
    assert on_duty(morning, MON_0000_UTC, SH)  # 08:00 in Shanghai
    assert not on_duty(morning, MON_0000_UTC, ZoneInfo("UTC"))  # 00:00 in UTC
    assert on_duty(morning, MON_0000_UTC + 8 * 3_600_000, UTC)
    assert on_duty(Officer(id="x", name="X"), MON_0000_UTC, SH)


def staffed(*duties: list[str], **gateway: Any) -> Config:
    """The district with grid g1 served by officers a, b, c (in that order) with the given duties."""
    ids = ["a", "b", "c"][: len(duties)]
    officers = [{"id": i, "name": i.upper(), "duty": d} for i, d in zip(ids, duties, strict=True)]
    officers += [{"id": "o2", "name": "Officer Two"}, {"id": "resp", "name": "Responsible"}]
    grids = [
        {"id": G1, "name": "g1", "area": "430903001002", "officers": ids, "responsible": "resp"},
        {"id": "43090300100301", "name": "g2", "area": "430903001003", "officers": ["o2"]},
    ]
    return district([], officers=officers, grids=grids, gateway=gateway)


def test_alarm_goes_to_whoever_is_on_duty() -> None:
    reg = Registry(staffed(["mon-fri 08:00-18:00"], ["daily 18:00-08:00"], ["sat,sun 08:00-18:00"]))
    assert recipients_of(reg, "e1", at(TUE, 10)) == ("a",)
    assert recipients_of(reg, "e1", at(TUE, 3)) == ("b",)  # Monday's night shift
    assert recipients_of(reg, "e1", at(SAT, 10)) == ("c",)
    assert recipients_of(reg, "e1", at(MON, 8)) == ("a",)
    assert recipients_of(reg, "e1", at(MON, 7, 59)) == ("b",)


def test_several_on_duty_keep_the_grid_order_and_no_schedule_is_always_on() -> None:
    reg = Registry(staffed(["mon-fri 08:00-18:00"], [], ["daily 00:00-24:00"]))
    assert recipients_of(reg, "e1", at(WED, 9)) == ("a", "b", "c")
    assert recipients_of(reg, "e1", at(SUN, 9)) == ("b", "c")


def test_nobody_on_duty_goes_to_all_and_no_time_goes_to_all() -> None:
    reg = Registry(staffed(["mon-fri 08:00-18:00"], ["mon-fri 18:00-22:00"]))
    assert recipients_of(reg, "e1", at(SAT, 3)) == ("a", "b")
    assert recipients_of(reg, "e1", at(TUE, 23)) == ("a", "b")
    assert recipients_of(reg, "e1", at(TUE, 19)) == ("b",)
    assert recipients_of(reg, "e1") == ("a", "b")  # the old call: every officer of the grid
    assert recipients_of(reg, "e1", None) == ("a", "b")
    assert recipients_of(reg, "e2", at(TUE, 19)) == ("o2",)
    assert recipients_of(reg, "", at(TUE, 19)) == ()  # a system alarm goes to no officer


def test_the_gateway_time_zone_is_used() -> None:
    duties = (["daily 08:00-09:00"], ["daily 00:00-01:00"])
    assert recipients_of(Registry(staffed(*duties)), "e1", MON_0000_UTC) == ("a",)  # Asia/Shanghai by default
    assert recipients_of(Registry(staffed(*duties, timezone="UTC")), "e1", MON_0000_UTC) == ("b",)
    assert staffed(*duties).gateway.timezone == "Asia/Shanghai"


def problems_of(cfg: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as exc:
        cfg()
    return exc.value.problems


BAD = [
    ("mon-fry 08:00-18:00", "unknown day 'fry'"),
    ("monday 08:00-18:00", "unknown day 'monday'"),
    ("mon- 08:00-18:00", "bad day list"),
    ("mon-fri", "is not [DAYS] HH:MM-HH:MM"),
    ("08:00", "is not [DAYS] HH:MM-HH:MM"),
    ("mon-fri 8-18", "is not [DAYS] HH:MM-HH:MM"),
    ("mon-fri 08:00-25:00", "25:00 is not a time of day"),
    ("mon-fri 08:60-18:00", "08:60 is not a time of day"),
    ("mon-fri 24:00-08:00", "24:00 can only end an interval"),
    ("daily 08:00-08:00", "start and end are equal"),
    ("", "is not [DAYS] HH:MM-HH:MM"),
]


@pytest.mark.parametrize("entry,msg", BAD, ids=[b[0] or "empty" for b in BAD])
def test_a_bad_duty_entry_is_a_config_error_at_its_path(entry: str, msg: str) -> None:
    problems = problems_of(lambda: staffed(["mon-fri 08:00-18:00", entry]))
    assert [p for p, _ in problems] == ["officers[0] (a).duty[1]"], problems
    assert msg in problems[0][1] and repr(entry) in problems[0][1]


def test_a_non_string_duty_entry_and_a_bad_time_zone_are_config_errors() -> None:
    assert [p for p, _ in problems_of(lambda: staffed([8]))] == ["officers[0] (a).duty[0]"]
    problems = problems_of(lambda: staffed([], timezone="Asia/Shangai"))
    assert problems == [("gateway.timezone",
                         "unknown time zone 'Asia/Shangai'; use an IANA name such as 'Asia/Shanghai' or 'UTC'")]
    for bad in ("", "Asia", "../etc/passwd", "/etc/localtime"):
        assert [p for p, _ in problems_of(lambda b=bad: staffed([], timezone=b))] == ["gateway.timezone"]
