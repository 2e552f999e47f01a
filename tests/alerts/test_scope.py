"""The caller's scope has one rule: ``Within.covers`` (the live stream, in memory) and ``scope_sql``
(the book's queries and actions, the statistics) select exactly the same alarms and events.

A book holds alarms of both enterprises, public reports and a flood without an enterprise, a
gateway alarm of nobody's, and cases dispatched to departments (one of them a report of a grid the
department otherwise cannot see). Every scope a login can have (admin, officers, supervisors of an
area, departments, enterprises), and a few made by hand, is asked through every path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.book import AlarmBook
from alerts.model import Alarm
from alerts.scope import EVERYTHING, Within, as_within, scope_sql
from api.scope import scope_of
from gateway.config import User
from gateway.errors import UnknownAlarm
from gateway.registry import Registry
from tests.helpers import CH4, district, mqtt_device
from tests.server import HASHES

T0 = 1_767_225_600_000
G1, G2 = "43090300100201", "43090300100301"
LOGINS = [
    {"role": "admin"},
    {"role": "officer", "officer": "o1"},
    {"role": "officer", "officer": "o2"},
    {"role": "officer", "officer": "resp"},  # responsible for g1, a member of no grid
    {"role": "supervisor", "area": "430903001002"},  # g1's area
    {"role": "supervisor", "area": "4309030010"},  # both grids
    {"role": "supervisor", "area": "4400"},  # nothing
    {"role": "department", "department": "yjj"},  # lead of e1
    {"role": "department", "department": "fire"},  # lead of e2, cooperating for e1
    {"role": "enterprise", "enterprise": "e1"},
    {"role": "enterprise", "enterprise": "e2"},
]
BY_HAND = [
    EVERYTHING,
    Within(frozenset()),
    Within(frozenset({"e1"})),
    Within(frozenset({"e2"}), frozenset({G1})),  # a grid shows its enterprise-less alarms only
    Within(frozenset(), department="fire"),
    Within(frozenset({""}), frozenset({G2})),  # an empty enterprise id never matches enterprise-less alarms
]


@pytest.fixture
def book(tmp_path: Path) -> AlarmBook:
    reg = Registry(district([mqtt_device("e1", "d1", [CH4]), mqtt_device("e1", "d3", [CH4]),
                             mqtt_device("e2", "d2", [CH4])]))
    book = AlarmBook(tmp_path / "alarms.db", reg)
    now = T0
    for ent, dev in (("e1", "d1"), ("e1", "d3"), ("e2", "d2")):
        now += 1000
        book.communication(reg.device(ent, dev), False, now * 1_000_000, "offline", "no answer")
    r1 = book.report(G1, "", "smell of gas", "gate 2", None, "10.0.0.9", now + 1).alarm
    r2 = book.report(G2, "", "smoke", "bridge", None, "10.0.0.9", now + 2).alarm
    book.flood(G2, True, now + 3, 11, "11 alarms in 10 min")
    book.system("data_loss", True, (now + 4) * 1_000_000, "data_loss", 1.0, "outbox full")
    e1_d3 = book.list_alarms(None, enterprise="e1", sensor="e1/d3")[0]
    book.dispatch(e1_d3.id, "o1", "fire", "check the cabinet", now + 5)  # e1's, to its cooperating department
    book.dispatch(r2.id, "o2", "yjj", "send someone", now + 6)  # g2's report, to e1's lead department
    book.dispatch(r1.id, "o1", "fire", "send someone", now + 7)
    book.set_maintenance(reg.device("e2", "d2"), "o2", "replacing the sensor", now + 8)
    return book


def scopes(book: AlarmBook) -> list[Within]:
    users = [User(username=f"u{i}", password_hash=HASHES["admin"], **login)
             for i, login in enumerate(LOGINS)]
    return [scope_of(book.registry, u).within for u in users] + BY_HAND


def test_covers_and_the_sql_filter_select_the_same_alarms(book: AlarmBook) -> None:
    alarms = book.list_alarms(None, limit=1000)
    assert {(a.enterprise, a.kind) for a in alarms} >= {("e1", "communication"), ("", "report"), ("", "system")}
    seen = set()
    for within in scopes(book):
        covered = {a.id for a in alarms if within.covers(a)}
        assert {a.id for a in book.list_alarms(within, limit=1000)} == covered, within
        where, args = scope_sql(within, alias="a")
        assert {r[0] for r in book.read(f"SELECT a.id FROM alarms a WHERE {where}", args)} == covered, within
        for a in alarms:
            assert _found(book, a, within) == (a.id in covered), (within, a)
        seen.add(frozenset(covered))
    assert len(seen) >= 8  # the scopes do differ


def test_an_event_is_in_scope_when_its_alarm_is(book: AlarmBook) -> None:
    events = book.events_since(0, None, limit=10_000)
    current = {a.id: a for a in book.list_alarms(None, limit=1000)}
    for within in scopes(book):
        covered = {e.id for e in events if within.covers(current[e.alarm.id])}
        assert {e.id for e in book.events_since(0, within, limit=10_000)} == covered, within
        where, args = scope_sql(within, "events", alias="e")
        assert {r[0] for r in book.read(f"SELECT e.id FROM events e WHERE {where}", args)} == covered, within


def test_what_the_departments_see(book: AlarmBook) -> None:
    """Spelt out for three scopes, so that the comparison above is not of two equal mistakes."""
    [fire, yjj] = [scope_of(book.registry, User(username="d", password_hash=HASHES["admin"], role="department",
                                                department=d)).within for d in ("fire", "yjj")]
    alarms = book.list_alarms(None, limit=1000)

    def seen(w: Within) -> set[tuple[str, str]]:
        return {(a.grid, "report") if a.kind == "report" else (a.sensor_id, a.level) for a in alarms if w.covers(a)}

    # fire: e2's (its lead) and e1's (cooperating) alarms, and g1's report dispatched to it
    assert seen(fire) == {("e1/d1", "offline"), ("e1/d3", "offline"), ("e2/d2", "offline"),
                          ("e2/d2", "maintenance"), (G1, "report")}
    # yjj: e1's alarms, and g2's report dispatched to it although g2 holds none of its enterprises
    assert seen(yjj) == {("e1/d1", "offline"), ("e1/d3", "offline"), (G2, "report")}
    assert seen(Within(frozenset(), department="fire")) == {("e1/d3", "offline"), (G1, "report")}


def test_a_scope_may_be_given_as_enterprise_ids() -> None:
    assert as_within(None) is EVERYTHING
    assert as_within({"e1"}) == Within(frozenset({"e1"}))
    assert scope_sql(None) == ("1", [])


def _found(book: AlarmBook, alarm: Alarm, within: Within) -> bool:
    try:
        return book.get(alarm.id, within) == alarm
    except UnknownAlarm:
        return False
