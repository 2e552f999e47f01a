"""The alarm lifecycle is what the tables of :mod:`alerts.model` say, walked through a real AlarmBook.

Every state of ``STATES`` times every event of ``EVENTS`` (with the condition active and not, where
a state allows both) is reached by a legal path through the book's public methods and then hit
with the event: a pair in ``TRANSITIONS`` moves to ``next_state``; any other pair is refused (an
operator's action with an AlarmError naming the state, a device or sensor order by leaving the
alarm alone) or cannot happen at all (a condition event the detector cannot produce in that
state). The case table is walked the same way, then the re-raise, shelving, maintenance and
public-report rules. Time is explicit everywhere: nothing sleeps.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import pytest

from alerts.book import AlarmBook
from alerts.detector import PROCESS, RATE, Detector, Transitions
from alerts.model import (
    ACKED,
    BY_CONDITION,
    CASE_ACTIONS,
    CASE_OPEN,
    CASE_STATES,
    CASES,
    CLOSED,
    CONDITION_EVENTS,
    DISPATCHED,
    EVENT_TYPES,
    EVENTS,
    HIDDEN_STATES,
    NORMAL,
    OUT_OF_SERVICE,
    RESOLVED,
    RTN_UNACK,
    SHELVED,
    STATES,
    SUPPRESSED,
    TRANSITIONS,
    UNACK,
    Alarm,
    AlarmEvent,
    next_state,
)
from alerts.scope import EVERYTHING, Within
from gateway.batch import ReadingBatch
from gateway.errors import AlarmError, UnknownAlarm
from gateway.registry import DeviceInfo, Registry
from tests.helpers import CH4, district, mqtt_device

T0 = 1_767_225_600_000  # epoch ms
G1, G2 = "43090300100201", "43090300100301"
LOW, HIGH, HH = 5.0, 30.0, 55.0  # combustible gas: high at 25 %LEL, high-high at 50 %LEL
SHELF_MS = 600_000

# The condition a visible state implies; a hidden state can hold either.
CONDITION_OF = {NORMAL: False, UNACK: True, ACKED: True, RTN_UNACK: False}
# Refused operator and maintenance actions raise; refused device or sensor orders leave the alarm alone.
RAISES = {"ack", "shelve", "unshelve", "restore"}
LEAVES_ALONE = {"suppress", "unsuppress", "remove"}


@pytest.fixture
def reg() -> Registry:
    return Registry(district([
        mqtt_device("e1", "d1", [CH4]),
        mqtt_device("e1", "d3", [CH4, {**CH4, "key": "ch4b"}, {**CH4, "key": "ch4c"}]),
        mqtt_device("e2", "d2", [CH4]),
        mqtt_device("e1", "r1", [{**CH4, "rate_of_change": 10.0, "rate_window": 60.0}]),
    ]))


@dataclass
class Rig:
    """A book on a tmp_path file, a detector, and one clock (epoch ms) that every step moves on."""

    path: Path
    reg: Registry
    book: AlarmBook = field(init=False)
    det: Detector = field(init=False)
    now: int = T0

    def __post_init__(self) -> None:
        self.book = AlarmBook(self.path, self.reg)
        self.det = Detector(self.reg)

    def tick(self, ms: int = 1000) -> int:
        self.now += ms
        return self.now

    def feed(self, value: float, sensor: int = 0) -> tuple[Transitions, list[AlarmEvent]]:
        tr = self.det.evaluate(ReadingBatch.of([sensor], [self.tick() * 1_000_000], [value]))
        return tr, self.book.apply(tr)

    def device(self, enterprise: str = "e1", device: str = "d1") -> DeviceInfo:
        return self.reg.device(enterprise, device)

    def count(self) -> int:
        """How many events the sensors' alarms have (nothing is ever deleted: it only grows)."""
        return len(self.events())

    def events(self) -> list[AlarmEvent]:
        """Every event of the sensors' alarms (not the devices' maintenance records)."""
        return sensors_only(self.book.events_since(0, None, limit=100_000))

    def restart(self) -> None:
        self.book.close()
        self.book = AlarmBook(self.path, self.reg)


@pytest.fixture
def rig(tmp_path: Path, reg: Registry) -> Rig:
    return Rig(tmp_path / "alarms.db", reg)


def sensors_only(events: list[AlarmEvent]) -> list[AlarmEvent]:
    """Without the device maintenance records (tested on their own below)."""
    return [e for e in events if e.alarm.level != "maintenance"]


def hide(rig: Rig, alarm_id: int, state: str) -> list[AlarmEvent]:
    alarm = rig.book.get(alarm_id)
    if state == SHELVED:
        now = rig.tick()
        return [rig.book.shelve(alarm_id, "o1", "gas detector being recalibrated", now + SHELF_MS, now)]
    if state == SUPPRESSED:
        return rig.book.suppress([alarm.sensor_id], True, rig.tick(), "the unit is stopped")
    assert state == OUT_OF_SERVICE
    return sensors_only(rig.book.set_maintenance(rig.device(alarm.enterprise, alarm.device), "m1", "sensor swap",
                                                 rig.tick()))


def reach(rig: Rig, state: str, active: bool, value: float = HIGH) -> int:
    """An alarm of sensor 0 (e1/d1/ch4) in ``state`` with its condition ``active``, by a legal path."""
    tr, events = rig.feed(value)
    assert [e.type for e in events] == ["raised"]
    alarm_id = events[0].alarm.id
    if state == NORMAL:
        rig.book.acknowledge(alarm_id, "o1", "seen", rig.tick())
        rig.feed(LOW)
    elif state == ACKED:
        rig.book.acknowledge(alarm_id, "o1", "seen", rig.tick())
    elif state == RTN_UNACK:
        rig.feed(LOW)
    elif state in HIDDEN_STATES:
        if not active:
            rig.feed(LOW)
        assert len(hide(rig, alarm_id, state)) == 1
    alarm = rig.book.get(alarm_id)
    assert (alarm.state, alarm.in_alarm) == (state, active)
    return alarm_id


def cases() -> list:
    out = []
    for state, event in product(STATES, EVENTS):
        for active in ((CONDITION_OF[state],) if state in CONDITION_OF else (True, False)):
            out.append(pytest.param(state, event, active, id=f"{state}-{event}-cond_{'on' if active else 'off'}"))
    return out


ALL_CASES = cases()


def producible(event: str, active: bool) -> bool:
    """Whether the detector can produce ``event`` while the condition is ``active``."""
    return (event == "raise") != active


def test_the_table_covers_every_pair_once() -> None:
    pairs = list(product(STATES, EVENTS))
    allowed = [p for p in pairs if p in TRANSITIONS]
    refused = [p for p in pairs if p not in TRANSITIONS]
    print(f"{len(pairs)} pairs: {len(allowed)} in TRANSITIONS, {len(refused)} refused")
    assert (len(pairs), len(allowed), len(refused)) == (77, 40, 37)
    assert set(TRANSITIONS) <= set(pairs)  # nothing in the table outside STATES x EVENTS
    assert set(TRANSITIONS.values()) <= {*STATES, BY_CONDITION}
    # exactly the ends of hiding are decided by the condition
    assert {p for p, nxt in TRANSITIONS.items() if nxt == BY_CONDITION} == {
        (SHELVED, "unshelve"), (SUPPRESSED, "unsuppress"), (OUT_OF_SERVICE, "restore")}
    # every refused condition event is one the detector cannot produce in that state
    for state, event in refused:
        if event in CONDITION_EVENTS:
            assert state in CONDITION_OF and not producible(event, CONDITION_OF[state]), (state, event)
        else:
            assert event in RAISES | LEAVES_ALONE
    # the parametrized walk below lists every pair, both conditions for a hidden state
    ids = [p.id for p in ALL_CASES]
    assert len(ids) == len(set(ids)) == 4 * len(EVENTS) + 3 * 2 * len(EVENTS) == 110
    assert {tuple(p.values[:2]) for p in ALL_CASES} == set(pairs)


def test_the_table_says_what_isa_18_2_says() -> None:
    assert next_state(NORMAL, "raise", True) == UNACK
    assert next_state(UNACK, "ack", True) == ACKED
    assert next_state(ACKED, "clear", False) == NORMAL
    assert next_state(UNACK, "clear", False) == RTN_UNACK
    assert next_state(RTN_UNACK, "ack", False) == NORMAL
    assert next_state(ACKED, "rise", True) == UNACK  # re-alarm
    for hidden, end in ((SHELVED, "unshelve"), (SUPPRESSED, "unsuppress"), (OUT_OF_SERVICE, "restore")):
        assert (next_state(hidden, end, True), next_state(hidden, end, False)) == (UNACK, NORMAL)
    for state in (NORMAL, UNACK, ACKED, RTN_UNACK):
        assert next_state(state, "shelve", True) == SHELVED
    assert next_state(NORMAL, "ack", False) is None and next_state(ACKED, "ack", True) is None
    assert "latched" not in STATES and len(STATES) == 7


@pytest.mark.parametrize(("state", "event", "active"), ALL_CASES)
def test_state_event(rig: Rig, state: str, event: str, active: bool) -> None:
    start = HH if (event == "lower" and active) else HIGH  # lowering needs high-high to come down from
    alarm_id = reach(rig, state, active, start)
    before, count = rig.book.get(alarm_id), rig.count()
    allowed = (state, event) in TRANSITIONS
    book = rig.book

    if event in CONDITION_EVENTS:
        if not producible(event, active):
            # raise needs the condition gone, rise/lower/clear need it there: feed what holds it
            tr, events = rig.feed(HIGH if active else LOW)
            assert len(tr) == 0 and events == []
            assert book.get(alarm_id) == before and rig.count() == count
            return
        assert allowed, "every condition event the detector can produce is in the table"
        reading = {"raise": HIGH, "rise": HH, "lower": HIGH, "clear": LOW}[event]
        tr, events = rig.feed(reading)
        assert len(tr) == 1 and int(tr.condition[0]) == PROCESS
        after = book.get(alarm_id)
        assert [(e.type, e.alarm.id) for e in events] == [(EVENT_TYPES[event], alarm_id)]
        assert after.in_alarm == (event != "clear")
        assert after.state == next_state(state, event, after.in_alarm)
        assert events[0].pushed == (state not in HIDDEN_STATES)
        assert events[0].alarm == after and rig.count() == count + 1
        return

    def act() -> list[AlarmEvent]:
        now = rig.tick()
        alarm = book.get(alarm_id)
        device = rig.device(alarm.enterprise, alarm.device)
        if event == "ack":
            return [book.acknowledge(alarm_id, "o1", "seen", now)]
        if event == "shelve":
            return [book.shelve(alarm_id, "o1", "nuisance during the test", now + SHELF_MS, now)]
        if event == "unshelve":
            return [book.unshelve(alarm_id, "o1", "back", now)]
        if event in ("suppress", "unsuppress"):
            return book.suppress([alarm.sensor_id], event == "suppress", now, "unit status")
        if event == "remove":
            return sensors_only(book.set_maintenance(device, "m1", "calibration", now))
        assert event == "restore"
        return sensors_only(book.end_maintenance(device, "m1", "calibrated", now))

    if allowed:
        events = act()
        after = book.get(alarm_id)
        assert [(e.type, e.alarm.id) for e in events] == [(EVENT_TYPES[event], alarm_id)]
        assert after.state == next_state(state, event, before.in_alarm)
        assert after.in_alarm == before.in_alarm  # actions do not change the condition
        assert events[0].pushed and events[0].actor is not None and events[0].ts == rig.now
        assert rig.count() == count + 1
        if after.state == UNACK and state in HIDDEN_STATES:
            assert after.acked_at is None  # it comes back to be seen afresh
    elif event in RAISES:
        with pytest.raises(AlarmError) as refused:
            act()
        message = str(refused.value)
        assert ("not in maintenance" in message) if event == "restore" else (f"is {state}:" in message)
        assert book.get(alarm_id) == before and rig.count() == count
    else:
        assert event in LEAVES_ALONE
        assert act() == []
        assert book.get(alarm_id) == before and rig.count() == count


def test_condition_events_the_book_ignores_when_already_so(rig: Rig) -> None:
    """A second ``offline`` of an offline device, an ``online`` of an online one: no event."""
    dev = rig.device()
    assert rig.book.communication(dev, True, rig.tick() * 1_000_000, "offline", "") == []
    raised = rig.book.communication(dev, False, rig.tick() * 1_000_000, "offline", "device offline")
    assert [e.type for e in raised] == ["raised"] and raised[0].alarm.kind == "communication"
    before, count = rig.book.get(raised[0].alarm.id), rig.count()
    assert rig.book.communication(dev, False, rig.tick() * 1_000_000, "offline", "still offline") == []
    assert rig.book.get(before.id) == before and rig.count() == count
    cleared = rig.book.communication(dev, True, rig.tick() * 1_000_000, "offline", "back online")
    assert [e.type for e in cleared] == ["cleared"] and rig.book.get(before.id).state == RTN_UNACK
    assert rig.book.communication(dev, True, rig.tick() * 1_000_000, "offline", "") == []
    assert rig.count() == count + 1


# -- the case table ------------------------------------------------------------------------------

def normal_alarm(rig: Rig) -> int:
    alarm_id = reach(rig, NORMAL, False)
    assert rig.book.get(alarm_id).case == CASE_OPEN
    return alarm_id


def to_case(rig: Rig, alarm_id: int, case: str) -> None:
    book = rig.book
    if case in (DISPATCHED, RESOLVED):
        book.dispatch(alarm_id, "o1", "yjj", "check the valve", rig.tick())
    if case == RESOLVED:
        book.resolve(alarm_id, "yjj-1", "valve replaced", rig.tick(), department="yjj")
    if case == CLOSED:
        book.close_case(alarm_id, "o1", "verified on site", rig.tick())
    assert book.get(alarm_id).case == case


@pytest.mark.parametrize(("case", "action"), list(product(CASE_STATES, CASE_ACTIONS)),
                         ids=[f"{c}-{a}" for c, a in product(CASE_STATES, CASE_ACTIONS)])
def test_case_action(rig: Rig, case: str, action: str) -> None:
    alarm_id = normal_alarm(rig)
    to_case(rig, alarm_id, case)
    before, count, book = rig.book.get(alarm_id), rig.count(), rig.book
    note = f"{action} note"

    def act() -> list[AlarmEvent]:
        now = rig.tick()
        if action == "dispatch":
            return book.dispatch(alarm_id, "o1", "fire", note, now)
        if action == "resolve":
            return book.resolve(alarm_id, "o1", note, now)
        return [book.close_case(alarm_id, "o1", note, now)]

    if (case, action) in CASES:
        events = act()
        after = book.get(alarm_id)
        assert after.case == CASES[(case, action)]
        assert [(e.type, e.actor, e.ts, e.note) for e in events] == [(EVENT_TYPES[action], "o1", rig.now, note)]
        assert book.history(alarm_id)[-1].id == events[0].id and rig.count() == count + 1
        assert after.state == NORMAL  # the case moves beside the alarm state, not through it
        if action == "dispatch":
            assert after.department == "fire" and "department:fire" in events[0].recipients
        if action == "close":
            assert (after.closed_at, after.closed_by) == (rig.now, "o1")
    else:
        with pytest.raises(AlarmError, match=f"is {case}"):
            act()
        assert book.get(alarm_id) == before and rig.count() == count


def test_case_table_counts() -> None:
    pairs = list(product(CASE_STATES, CASE_ACTIONS))
    legal = [p for p in pairs if p in CASES]
    print(f"{len(pairs)} case pairs: {len(legal)} legal, {len(pairs) - len(legal)} refused")
    assert (len(pairs), len(legal)) == (12, 7)
    assert set(CASES) <= set(pairs) and set(CASES.values()) <= set(CASE_STATES)
    assert not any(c == CLOSED for c, _ in legal)  # closed is final


@pytest.mark.parametrize(("state", "active"), [pytest.param(s, a, id=f"{s}-cond_{'on' if a else 'off'}")
                                               for s in STATES if s != NORMAL
                                               for a in ((CONDITION_OF[s],) if s in CONDITION_OF else (True, False))])
def test_close_needs_a_normal_alarm(rig: Rig, state: str, active: bool) -> None:
    alarm_id = reach(rig, state, active)
    before, count = rig.book.get(alarm_id), rig.count()
    with pytest.raises(AlarmError) as refused:
        rig.book.close_case(alarm_id, "o1", "done?", rig.tick())
    assert refused.type is AlarmError  # a 409, not a 404 (UnknownAlarm)
    assert f"is {state}:" in str(refused.value) and "normal" in str(refused.value)
    assert rig.book.get(alarm_id) == before and rig.count() == count


def test_dispatch_only_to_lead_or_cooperating_departments(rig: Rig) -> None:
    a1 = rig.feed(HIGH, sensor=0)[1][0].alarm.id  # e1: lead yjj, cooperating fire
    a2 = rig.feed(HIGH, sensor=4)[1][0].alarm.id  # e2: lead fire only
    assert rig.book.get(a2).enterprise == "e2"
    count = rig.count()
    for alarm_id, department in ((a2, "yjj"), (a1, "police"), (a2, "police")):
        before = rig.book.get(alarm_id)
        with pytest.raises(AlarmError, match="cannot take"):
            rig.book.dispatch(alarm_id, "o1", department, "please", rig.tick())
        assert rig.book.get(alarm_id) == before
    assert rig.count() == count  # a refused dispatch does not acknowledge either
    with pytest.raises(AlarmError, match="needs a note"):
        rig.book.dispatch(a1, "o1", "yjj", "  ", rig.tick())
    assert rig.book.get(a1).state == UNACK and rig.count() == count
    assert [e.type for e in rig.book.dispatch(a1, "o1", "fire", "water curtain", rig.tick())] == [
        "acknowledged", "dispatched"]
    assert [e.type for e in rig.book.dispatch(a1, "o1", "yjj", "handed on", rig.tick())] == ["dispatched"]
    assert rig.book.get(a1).department == "yjj"
    assert [e.type for e in rig.book.dispatch(a2, "o2", "fire", "lead", rig.tick())][-1] == "dispatched"
    with pytest.raises(AlarmError, match="not dispatched to department"):
        rig.book.resolve(a1, "f-1", "done", rig.tick(), department="fire")  # handed on to yjj


@pytest.mark.parametrize("state", [UNACK, RTN_UNACK])
def test_dispatch_of_an_unacknowledged_alarm_acknowledges_it_first(rig: Rig, state: str) -> None:
    alarm_id = reach(rig, state, state == UNACK)
    count = rig.count()
    now = rig.tick()
    ack, dispatched = rig.book.dispatch(alarm_id, "o1", "yjj", "isolate the line", now)
    assert (ack.type, ack.actor, ack.ts) == ("acknowledged", "o1", now)
    assert ack.note == "acknowledged on dispatch: isolate the line"
    assert ack.alarm.state == next_state(state, "ack", state == UNACK) and ack.alarm.case == CASE_OPEN
    assert (dispatched.type, dispatched.actor, dispatched.ts, dispatched.note) == (
        "dispatched", "o1", now, "isolate the line")
    alarm = rig.book.get(alarm_id)
    assert (alarm.state, alarm.case, alarm.acked_by, alarm.department) == (
        ack.alarm.state, DISPATCHED, "o1", "yjj")
    assert dispatched.id == ack.id + 1 and rig.count() == count + 2


def test_every_action_is_in_the_history_and_nothing_is_deleted(rig: Rig) -> None:
    book = rig.book
    seen: list[AlarmEvent] = []

    def grew() -> None:
        nonlocal seen
        now = rig.events()
        assert len(now) > len(seen) and now[:len(seen)] == seen  # only appended, never changed
        seen = now

    alarm_id = rig.feed(HIGH)[1][0].alarm.id
    grew()
    steps = [
        lambda t: book.dispatch(alarm_id, "o1", "yjj", "send a crew", t),
        lambda t: rig.feed(LOW),
        lambda t: book.resolve(alarm_id, "yjj-1", "leak sealed", t, department="yjj"),
        lambda t: book.dispatch(alarm_id, "o1", "fire", "not accepted: check again", t),
        lambda t: book.resolve(alarm_id, "fire-1", "checked again", t, department="fire"),
        lambda t: book.close_case(alarm_id, "o1", "verified", t),
    ]
    for step in steps:
        step(rig.tick())
        grew()
    actions = [e for e in book.history(alarm_id) if e.type not in ("raised", "cleared")]
    assert [e.type for e in actions] == ["acknowledged", "dispatched", "resolved", "dispatched", "resolved",
                                         "closed"]
    assert all(e.actor and e.note and e.ts > T0 for e in actions)
    assert [e.actor for e in actions] == ["o1", "o1", "yjj-1", "o1", "fire-1", "o1"]
    assert [e.ts for e in book.history(alarm_id)] == sorted(e.ts for e in book.history(alarm_id))
    # the closed alarm stays, with its whole history, and refuses every further action
    closed = book.get(alarm_id)
    assert closed.case == CLOSED and len(book.history(alarm_id)) == 8
    for refused in (lambda t: book.shelve(alarm_id, "o1", "why", t + 1000, t),
                    lambda t: book.acknowledge(alarm_id, "o1", "", t),
                    lambda t: book.dispatch(alarm_id, "o1", "yjj", "again", t),
                    lambda t: book.resolve(alarm_id, "o1", "again", t),
                    lambda t: book.close_case(alarm_id, "o1", "again", t)):
        with pytest.raises(AlarmError):
            refused(rig.tick())
    assert book.suppress([closed.sensor_id], True, rig.tick(), "unit stopped") == []
    assert [e.alarm.level for e in book.set_maintenance(rig.device(), "m1", "work", rig.tick())] == ["maintenance"]
    assert book.get(alarm_id) == closed and rig.events() == seen


# -- re-raise rules ------------------------------------------------------------------------------

def test_a_return_while_the_case_is_open_re_raises_the_same_alarm(rig: Rig) -> None:
    book = rig.book
    alarm_id = rig.feed(HIGH)[1][0].alarm.id
    book.dispatch(alarm_id, "o1", "yjj", "look", rig.tick())
    rig.feed(LOW)
    assert book.get(alarm_id).state == NORMAL  # acknowledged on dispatch, then cleared
    ev = rig.feed(HIGH)[1]
    assert [(e.type, e.alarm.id) for e in ev] == [("raised", alarm_id)]
    alarm = book.get(alarm_id)
    assert (alarm.state, alarm.case, alarm.in_alarm, alarm.cleared_at) == (UNACK, DISPATCHED, True, None)
    book.resolve(alarm_id, "yjj-1", "done", rig.tick())
    rig.feed(LOW)
    assert [(e.type, e.alarm.id) for e in rig.feed(HH)[1]] == [("raised", alarm_id)]
    assert (book.get(alarm_id).case, book.get(alarm_id).level) == (RESOLVED, "high_high")
    assert len(book.list_alarms(None)) == 1 and book.get(alarm_id).linked_to is None


def test_a_return_after_close_opens_a_new_linked_alarm(rig: Rig) -> None:
    book = rig.book
    first = reach(rig, NORMAL, False)
    book.close_case(first, "o1", "verified", rig.tick())
    closed = book.get(first)
    ev = rig.feed(HIGH)[1]
    assert len(ev) == 1 and ev[0].type == "raised"
    second = ev[0].alarm
    assert second.id != first and second.linked_to == first
    assert (second.state, second.case) == (UNACK, CASE_OPEN) and ev[0].note == f"follows closed alarm {first}"
    assert book.get(first) == closed  # the closed one is left as it was
    rig.feed(LOW)
    assert book.get(second.id).state == RTN_UNACK and book.get(first) == closed
    rig.restart()  # the new alarm is the open one of its condition after a restart too
    rig.feed(HIGH)
    assert [a.id for a in rig.book.list_alarms(None)] == [second.id, first]


def test_a_rate_alarm_lives_beside_the_level_alarm_of_its_sensor(rig: Rig) -> None:
    book, rate_sensor = rig.book, rig.reg.sensor_index("e1/r1/ch4")
    assert rig.feed(0.0, rate_sensor)[1] == []
    tr, events = rig.feed(HIGH, rate_sensor)  # 30 %LEL in a second: high, and 30 %LEL/min over 60 s
    assert sorted(int(c) for c in tr.condition) == [PROCESS, RATE]
    assert sorted(e.alarm.level for e in events) == ["high", "rate_of_change"]
    level = next(e.alarm for e in events if e.alarm.level == "high")
    rate = next(e.alarm for e in events if e.alarm.level == "rate_of_change")
    assert level.id != rate.id and level.sensor_id == rate.sensor_id == "e1/r1/ch4"
    assert (level.kind, rate.kind) == ("process", "process")
    # the rise leaves the window: the rate alarm clears, the level alarm stays
    rig.tick(70_000)
    tr, events = rig.feed(HIGH, rate_sensor)
    assert [(int(tr.condition[0]), e.type, e.alarm.id) for e in events] == [(RATE, "cleared", rate.id)]
    assert book.get(level.id).state == UNACK and book.get(rate.id).state == RTN_UNACK
    book.acknowledge(rate.id, "o1", "seen", rig.tick())
    book.close_case(rate.id, "o1", "a filling, not a leak", rig.tick())
    # a new fast rise: a new rate alarm linked to the closed rate alarm, the level alarm untouched
    rig.feed(LOW, rate_sensor)  # the level clears too
    rig.tick(70_000)
    rig.feed(0.0, rate_sensor)
    events = rig.feed(HIGH, rate_sensor)[1]
    again = {e.alarm.level: e.alarm for e in events}
    assert set(again) == {"high", "rate_of_change"}
    assert again["high"].id == level.id and again["high"].linked_to is None  # same open level alarm
    assert again["rate_of_change"].id not in (level.id, rate.id)
    assert again["rate_of_change"].linked_to == rate.id


# -- shelving ------------------------------------------------------------------------------------

@pytest.mark.parametrize("active", [True, False], ids=["cond_on", "cond_off"])
def test_a_shelf_expires_at_its_end_by_condition(rig: Rig, active: bool) -> None:
    book = rig.book
    alarm_id = rig.feed(HIGH)[1][0].alarm.id
    now = rig.tick()
    until = now + SHELF_MS
    shelf = book.shelve(alarm_id, "o1", "known nuisance", until, now)
    assert (shelf.type, shelf.actor, shelf.note, shelf.pushed) == ("shelved", "o1", f"known nuisance (until {until})",
                                                                  True)
    assert book.get(alarm_id).shelved_until == until
    if not active:
        cleared = rig.feed(LOW)[1]
        assert [(e.type, e.pushed) for e in cleared] == [("cleared", False)]
    count = rig.count()
    assert book.expire(until - 1) == [] and book.get(alarm_id).state == SHELVED and rig.count() == count
    expired = book.expire(until)
    assert [(e.type, e.actor, e.ts, e.alarm.id) for e in expired] == [("unshelved", "gateway", until, alarm_id)]
    alarm = book.get(alarm_id)
    assert (alarm.state, alarm.shelved_until) == (UNACK if active else NORMAL, None)
    assert book.expire(until + 1) == [] and rig.count() == count + 1


def test_condition_events_while_shelved_are_recorded_not_pushed(rig: Rig) -> None:
    book = rig.book
    alarm_id = rig.feed(HIGH)[1][0].alarm.id
    now = rig.tick()
    book.shelve(alarm_id, "o1", "known nuisance", now + SHELF_MS, now)
    changes = [e for v in (HH, HIGH, LOW, HIGH) for e in rig.feed(v)[1]]
    assert [(e.type, e.alarm.state, e.pushed) for e in changes] == [
        ("rose", SHELVED, False), ("lowered", SHELVED, False), ("cleared", SHELVED, False),
        ("raised", SHELVED, False)]
    # the history and the event stream have them, with the same flag
    tail = book.events_since(changes[0].id - 1, None)
    assert [(e.id, e.type, e.pushed) for e in tail] == [(e.id, e.type, e.pushed) for e in changes]
    assert [e.type for e in book.history(alarm_id)] == ["raised", "shelved", "rose", "lowered", "cleared", "raised"]
    unshelved = book.unshelve(alarm_id, "o1", "back", rig.tick())
    assert unshelved.pushed and unshelved.alarm.state == UNACK
    assert [(e.type, e.pushed) for e in rig.feed(LOW)[1]] == [("cleared", True)]


def test_shelving_needs_a_reason_and_a_future_end(rig: Rig) -> None:
    book = rig.book
    alarm_id = rig.feed(HIGH)[1][0].alarm.id
    before, count, now = book.get(alarm_id), rig.count(), rig.tick()
    for reason, until, message in (("", now + 1000, "reason"), ("   ", now + 1000, "reason"),
                                   ("nuisance", now, "future"), ("nuisance", now - 1, "future")):
        with pytest.raises(AlarmError, match=message):
            book.shelve(alarm_id, "o1", reason, until, now)
    assert book.get(alarm_id) == before and rig.count() == count
    assert book.shelve(alarm_id, "o1", "nuisance", now + 1, now).alarm.state == SHELVED


# -- maintenance ---------------------------------------------------------------------------------

def test_maintenance_takes_the_device_out_of_service_and_returns_it_by_condition(rig: Rig) -> None:
    book, reg = rig.book, rig.reg
    ch4, ch4b, ch4c = (reg.sensor_index(f"e1/d3/{k}") for k in ("ch4", "ch4b", "ch4c"))
    other = reg.sensor_index("e2/d2/ch4")
    d3 = rig.device("e1", "d3")
    a = rig.feed(HIGH, ch4)[1][0].alarm.id  # stays active, unacknowledged
    b = rig.feed(HIGH, ch4b)[1][0].alarm.id
    book.acknowledge(b, "o1", "seen", rig.tick())
    rig.feed(LOW, ch4b)  # normal, case still open
    offline = book.communication(d3, False, rig.tick() * 1_000_000, "offline", "no answer")[0].alarm.id
    elsewhere = rig.feed(HIGH, other)[1][0].alarm
    now = rig.tick()
    removed = sensors_only(book.set_maintenance(d3, "m1", "replacing sensors", now))
    assert sorted((e.alarm.id, e.type, e.actor, e.note, e.ts) for e in removed) == sorted(
        (i, "out_of_service", "m1", "replacing sensors", now) for i in (a, b, offline))
    assert {book.get(i).state for i in (a, b, offline)} == {OUT_OF_SERVICE}
    assert book.get(elsewhere.id) == elsewhere  # another device's alarm is untouched
    # raised during maintenance: born out of service, recorded, not pushed
    born = rig.feed(HIGH, ch4c)[1]
    assert [(e.type, e.alarm.state, e.pushed) for e in born] == [("raised", OUT_OF_SERVICE, False)]
    c = born[0].alarm.id
    assert [(e.type, e.pushed) for e in rig.feed(LOW, ch4)[1]] == [("cleared", False)]
    assert book.communication(d3, True, rig.tick() * 1_000_000, "offline", "back")[0].pushed is False
    # the book keeps maintenance and open alarms over a restart
    rig.restart()
    book = rig.book
    assert book.maintenance == {"e1/d3": (None, "replacing sensors")}
    again = rig.feed(HH, ch4)[1]  # the same alarm, still out of service
    assert [(e.type, e.alarm.id, e.alarm.state) for e in again] == [("raised", a, OUT_OF_SERVICE)]
    restored = sensors_only(book.end_maintenance(d3, "m1", "done", rig.tick()))
    assert {e.alarm.id: (e.type, e.actor, e.alarm.state) for e in restored} == {
        a: ("returned_to_service", "m1", UNACK),  # condition active again
        b: ("returned_to_service", "m1", NORMAL),
        c: ("returned_to_service", "m1", UNACK),
        offline: ("returned_to_service", "m1", NORMAL),  # back online during maintenance
    }
    assert book.maintenance == {}
    with pytest.raises(AlarmError, match="not in maintenance"):
        book.end_maintenance(d3, "m1", "again", rig.tick())
    rig.restart()
    assert rig.book.maintenance == {}


def test_maintenance_expires_at_its_end_also_after_a_restart(rig: Rig) -> None:
    alarm_id = rig.feed(HIGH)[1][0].alarm.id
    now = rig.tick()
    until = now + 3_600_000
    with pytest.raises(AlarmError, match="note"):
        rig.book.set_maintenance(rig.device(), "m1", " ", now, until)
    with pytest.raises(AlarmError, match="future"):
        rig.book.set_maintenance(rig.device(), "m1", "work", now, now)
    assert rig.book.maintenance == {} and rig.book.get(alarm_id).state == UNACK
    rig.book.set_maintenance(rig.device(), "m1", "work", now, until)
    rig.restart()
    assert rig.book.maintenance == {"e1/d1": (until, "work")}
    assert rig.book.expire(until - 1) == [] and rig.book.get(alarm_id).state == OUT_OF_SERVICE
    back = sensors_only(rig.book.expire(until))
    assert [(e.type, e.actor, e.ts, e.alarm.state) for e in back] == [
        ("returned_to_service", "gateway", until, UNACK)]
    assert rig.book.maintenance == {} and rig.book.expire(until + 1) == []


def test_suppression_outlasts_maintenance_and_a_restart(rig: Rig) -> None:
    book = rig.book
    sid = "e1/d1/ch4"
    assert book.suppress([sid], True, rig.tick(), "unit stopped") == []  # no alarm yet
    rig.restart()
    assert sid in rig.book.suppressed
    born = rig.feed(HIGH)[1]
    assert [(e.type, e.alarm.state, e.pushed) for e in born] == [("raised", SUPPRESSED, False)]
    alarm_id = born[0].alarm.id
    rig.book.set_maintenance(rig.device(), "m1", "work", rig.tick())
    assert rig.book.get(alarm_id).state == OUT_OF_SERVICE
    rig.restart()
    assert sid in rig.book.suppressed  # no alarm of it is suppressed now: only the book remembers
    events = sensors_only(rig.book.end_maintenance(rig.device(), "m1", "done", rig.tick()))
    assert [(e.type, e.alarm.state) for e in events] == [("returned_to_service", UNACK), ("suppressed", SUPPRESSED)]
    assert rig.book.get(alarm_id).state == SUPPRESSED  # the unit is still stopped
    back = rig.book.suppress([sid], False, rig.tick(), "unit runs")
    assert [(e.type, e.actor, e.alarm.state) for e in back] == [("unsuppressed", "gateway", UNACK)]
    rig.restart()
    assert sid not in rig.book.suppressed


# -- public reports and scope --------------------------------------------------------------------

def test_a_public_report_is_a_grid_alarm_for_the_grids_officers(rig: Rig) -> None:
    book = rig.book
    now = rig.tick()
    ev = book.report(G1, "", "smell of gas near the gate", "gate 2", "138...", "10.0.0.9", now)
    a = ev.alarm
    assert (ev.type, ev.actor, ev.ts, ev.note) == ("raised", "public", now, "location: gate 2")
    assert (a.kind, a.level, a.grid, a.enterprise, a.state, a.in_alarm, a.reason) == (
        "report", "report", G1, "", UNACK, True, "smell of gas near the gate")
    assert ev.recipients == ("o1",) and ev.pushed
    assert book.report_details(a.id) == {"location": "gate 2", "contact": "138...", "more": []}
    mine, theirs = Within(frozenset({"e1"}), frozenset({G1})), Within(frozenset({"e2"}), frozenset({G2}))
    assert book.get(a.id, mine) == a and [x.id for x in book.list_alarms(mine)] == [a.id]
    assert [e.id for e in book.events_since(0, mine)] == [ev.id]
    for blind in (theirs, Within(frozenset({"e1"})), Within(frozenset())):
        with pytest.raises(UnknownAlarm):
            book.get(a.id, blind)
        with pytest.raises(UnknownAlarm):
            book.acknowledge(a.id, "o2", "", rig.tick(), blind)
        assert book.list_alarms(blind) == [] and book.events_since(0, blind) == []
    assert book.get(a.id, EVERYTHING) == a
    # a grid in the scope shows its enterprise-less alarms only, not other enterprises' alarms there
    plant = rig.feed(HIGH)[1][0].alarm  # e1's, in grid 1
    assert plant.grid == G1 and book.get(plant.id, mine) == plant
    outsider = Within(frozenset({"e2"}), frozenset({G1}))
    assert [x.id for x in book.list_alarms(outsider)] == [a.id]
    assert {e.alarm.id for e in book.events_since(0, outsider)} == {a.id}
    with pytest.raises(UnknownAlarm):
        book.get(plant.id, outsider)
    # a grid's flood alarm is scoped the same way
    flood = book.flood(G2, True, rig.tick(), 11, "11 alarms in 10 min")[0].alarm
    assert [x.id for x in book.list_alarms(theirs)] == [flood.id] and flood.id not in {
        x.id for x in book.list_alarms(mine)}
    # dispatched, the department sees it too; resolving ends the report's condition; then it closes
    book.dispatch(a.id, "o1", "fire", "send someone", rig.tick(), mine)
    assert book.get(a.id, Within(frozenset(), department="fire")).case == DISPATCHED
    resolved = book.resolve(a.id, "fire-1", "a leaking cylinder, removed", rig.tick(), department="fire")
    assert [(e.type, e.alarm.in_alarm) for e in resolved] == [("resolved", True), ("cleared", False)]
    assert book.get(a.id).state == NORMAL  # acknowledged on dispatch, then cleared
    closed = book.close_case(a.id, "o1", "checked", rig.tick(), mine)
    assert (closed.type, closed.alarm.case) == ("closed", CLOSED)
    rig.restart()
    assert rig.book.get(a.id).case == CLOSED


def test_a_report_resolved_unacknowledged_waits_for_the_ack_to_close(rig: Rig) -> None:
    book = rig.book
    ev = book.report(G2, "", "smoke", None, None, "c", rig.tick())
    a = ev.alarm
    assert (ev.note, ev.recipients) == (None, ("o2",))
    resolved = book.resolve(a.id, "o2", "handled on the spot", rig.tick())
    assert [e.type for e in resolved] == ["resolved", "cleared"] and book.get(a.id).state == RTN_UNACK
    with pytest.raises(AlarmError, match="rtn_unacknowledged"):
        book.close_case(a.id, "o2", "done", rig.tick())
    book.acknowledge(a.id, "o2", "seen", rig.tick())
    assert book.close_case(a.id, "o2", "done", rig.tick()).alarm.case == CLOSED
    assert isinstance(book.get(a.id), Alarm) and book.get(a.id).closed_by == "o2"


def test_maintenance_is_never_silent_even_without_alarms(rig: Rig) -> None:
    book = rig.book
    now = rig.tick()
    started = book.set_maintenance(rig.device(), "m1", "replacing the CH4 head", now)
    assert [(e.type, e.alarm.level, e.alarm.state, e.actor, e.pushed) for e in started] == [
        ("out_of_service", "maintenance", OUT_OF_SERVICE, "m1", True)]
    record = started[0].alarm
    assert record.sensor_id == "e1/d1" and record.grid == "43090300100201" and started[0].recipients == ("o1",)
    ended = book.end_maintenance(rig.device(), "m1", "done", rig.tick())
    assert [(e.type, e.alarm.id, e.alarm.state) for e in ended] == [("returned_to_service", record.id, NORMAL)]
    # the officer verifies the device and closes the record; the next maintenance reuses it until then
    again = book.set_maintenance(rig.device(), "m2", "again", rig.tick())
    assert [e.alarm.id for e in again] == [record.id]
    book.end_maintenance(rig.device(), "m2", "done", rig.tick())
    book.close_case(record.id, "o1", "detector tested with span gas", rig.tick())
    third = book.set_maintenance(rig.device(), "m3", "third", rig.tick())
    assert third[0].alarm.id != record.id and third[0].alarm.linked_to is None


OLD_SCHEMA = """
CREATE TABLE alarms (
    id INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL, enterprise TEXT NOT NULL, device TEXT NOT NULL,
    point TEXT, grid TEXT NOT NULL, kind TEXT NOT NULL, level TEXT NOT NULL, value REAL, peak REAL,
    unit TEXT NOT NULL, state TEXT NOT NULL, raised_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    cleared_at INTEGER, acked_at INTEGER, acked_by TEXT, ack_note TEXT, reason TEXT
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    type TEXT NOT NULL, ts INTEGER NOT NULL, enterprise TEXT NOT NULL, actor TEXT, note TEXT,
    recipients TEXT NOT NULL, snapshot BLOB NOT NULL
);
"""


def test_a_book_of_the_first_release_is_migrated(tmp_path: Path) -> None:
    """Old rows: a normal alarm was finished (now closed), an active one stays the open alarm."""
    reg = Registry(district([mqtt_device("e1", "d1", [CH4, {**CH4, "key": "ch4b"}])]))
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    cols = ("sensor_id, enterprise, device, point, grid, kind, level, value, peak, unit, state, raised_at,"
            " updated_at")
    db.execute(f"INSERT INTO alarms ({cols}) VALUES ('e1/d1/ch4', 'e1', 'd1', 'ch4', '43090300100201',"
               " 'process', 'high', 5, 30, '%LEL', 'normal', 1000, 2000)")
    db.execute(f"INSERT INTO alarms ({cols}) VALUES ('e1/d1/ch4b', 'e1', 'd1', 'ch4b', '43090300100201',"
               " 'process', 'high', 30, 30, '%LEL', 'unacknowledged', 1000, 1000)")
    for ts, kind in ((1000, "raised"), (4000, "rose"), (5000, "escalated")):
        db.execute("INSERT INTO events (alarm_id, type, ts, enterprise, recipients, snapshot)"
                   " VALUES (2, ?, ?, 'e1', '[]', x'7b7d')", (kind, ts))
    db.commit()
    db.close()
    book, det = AlarmBook(path, reg), Detector(reg)
    old, active = book.get(1), book.get(2)
    assert (old.case, old.in_alarm, old.closed_by) == ("closed", False, "migration")
    assert (active.case, active.in_alarm, active.state) == ("open", True, "unacknowledged")
    # the escalation clock, read once from the old history: since the rise, one step done since
    assert (active.unacked_since, active.escalations) == (4000, 1)
    t = 10_000 * 1_000_000_000
    new = book.apply(det.evaluate(ReadingBatch.of([0], [t], [30.0])))
    assert [(e.type, e.alarm.id, e.alarm.linked_to) for e in new] == [("raised", 3, 1)]
