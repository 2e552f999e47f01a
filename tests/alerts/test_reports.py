"""Public reports' own limits in the book: one open report alarm per place, counting the reports
about it with every text kept, and a budget of new report alarms per grid, past which the grid's
own report alarm takes the rest. Driven with explicit times over a real book, reopened from disk."""

from __future__ import annotations

from pathlib import Path

from alerts.book import AlarmBook
from gateway.config import ReportsSection
from gateway.registry import Registry
from tests.helpers import district

G1, G2 = "43090300100201", "43090300100301"
T0 = 1_767_225_600_000
HOUR = 3_600_000


def registry() -> Registry:
    """The two-grid district, with three more enterprises in grid 1."""
    ents = [{"id": e, "name": e, "grid": G1, "lead_department": "yjj"} for e in ("e1", "e3", "e4", "e5")]
    return Registry(district([], enterprises=[*ents, {"id": "e2", "name": "E2", "grid": G2,
                                                      "lead_department": "fire"}]))


def test_a_burst_about_one_enterprise_is_one_alarm_with_every_report(tmp_path: Path) -> None:
    book = AlarmBook(tmp_path / "a.db", registry())
    events = [book.report(G1, "e1", f"smell of gas {i}", f"gate {i}" if i % 2 else None, f"139{i:08d}",
                          f"10.0.0.{i}", T0 + i) for i in range(20)]
    first = events[0].alarm
    assert [e.type for e in events] == ["raised"] + ["reported"] * 19
    assert {e.alarm.id for e in events} == {first.id} and {e.actor for e in events} == {"public"}
    assert all(e.recipients == ("o1",) for e in events)
    alarm = book.get(first.id)
    assert (alarm.value, alarm.reason, alarm.state, alarm.in_alarm) == (20, "smell of gas 0", "unacknowledged", True)
    history = book.history(first.id)
    texts = [alarm.reason] + [(e.note or "").split("\n")[0] for e in history if e.type == "reported"]
    assert texts == [f"smell of gas {i}" for i in range(20)]  # nothing a reporter said is lost
    assert history[1].note == "smell of gas 1\nlocation: gate 1" and history[1].alarm.value == 2
    details = book.report_details(first.id)
    assert details is not None and details["contact"] == "13900000000"
    assert [(m["location"], m["contact"]) for m in details["more"]] == [
        (f"gate {i}" if i % 2 else None, f"139{i:08d}") for i in range(1, 20)]
    assert [m["event"] for m in details["more"]] == [e.id for e in history[1:]]
    book.close()
    again = AlarmBook(tmp_path / "a.db", registry())  # after a restart the place's alarm still counts
    assert again.report(G1, "e1", "still smells", None, None, "x", T0 + HOUR).alarm.id == first.id
    assert again.get(first.id).value == 21


def test_a_resolved_report_alarm_takes_no_more_reports(tmp_path: Path) -> None:
    book = AlarmBook(tmp_path / "a.db", registry())
    first = book.report(G1, "", "drums leaking", "bridge", None, "x", T0).alarm
    assert book.report(G1, "", "drums still leaking", "by the bridge", None, "y", T0 + 1).alarm.id == first.id
    other = book.report(G1, "e1", "smoke", None, None, "y", T0 + 2).alarm  # another place
    book.resolve(first.id, "o1", "drums removed", T0 + 3)
    new = book.report(G1, "", "drums again", "bridge", None, "z", T0 + 4)
    assert new.type == "raised" and new.alarm.id not in (first.id, other.id) and new.alarm.value == 1
    assert book.get(first.id).value == 2


def test_past_its_budget_a_grid_collects_reports_in_its_own_alarm(tmp_path: Path) -> None:
    book = AlarmBook(tmp_path / "a.db", registry())
    limits = ReportsSection(per_grid=2, window=3600)

    def report(enterprise: str, at: int, grid: str = G1) -> tuple[str, int, str, str | None]:
        ev = book.report(grid, enterprise, f"about {enterprise}", None, None, "x", at, limits)
        return ev.type, ev.alarm.id, ev.alarm.enterprise, ev.note

    e1, e3 = report("e1", T0), report("e3", T0 + 1)
    assert (e1[0], e1[2], e3[0], e3[2]) == ("raised", "e1", "raised", "e3")
    assert report("e1", T0 + 2)[:3] == ("reported", e1[1], "e1")  # its own open alarm: no budget needed
    e4 = report("e4", T0 + 3)  # the budget of grid 1 is spent: the grid's report alarm takes it
    assert (e4[0], e4[2], e4[3]) == ("raised", "", "about enterprise: e4")
    e5 = report("e5", T0 + 4)
    assert (e5[0], e5[1], e5[3]) == ("reported", e4[1], "about e5\nabout enterprise: e5")
    e2 = report("e2", T0 + 5, G2)
    assert (e2[0], e2[2]) == ("raised", "e2")  # another grid has its own budget
    assert len(book.list_alarms(None, kind="report", grid=G1)) == 3
    later = report("e4", T0 + HOUR + 10)  # the window moved on: e4 gets an alarm of its own
    assert (later[0], later[2]) == ("raised", "e4")
