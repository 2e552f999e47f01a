"""The alarm book's lifecycle and persistence, and the SQLite readings store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alerts.book import AlarmBook
from alerts.detector import Detector
from alerts.model import TRANSITIONS
from gateway.batch import Quality, ReadingBatch
from gateway.errors import AlarmError, UnknownAlarm, UnknownSensor
from gateway.registry import Registry
from gateway.storage.sqlite_store import SqliteStore
from tests.helpers import CH4, district, mqtt_device

S = 1_000_000_000


@pytest.fixture
def reg() -> Registry:
    return Registry(district([mqtt_device("e1", "d1", [CH4]), mqtt_device("e2", "d2", [CH4])]))


def run(det: Detector, book: AlarmBook, values: list[float], sensor: int = 0, t0: int = 0) -> list:
    events = []
    for i, v in enumerate(values):
        events += book.apply(det.evaluate(ReadingBatch.of([sensor], [t0 + (i + 1) * S], [v])))
    return events


def test_leak_raises_rises_clears_once_each(tmp_path: Path, reg: Registry) -> None:
    book, det = AlarmBook(tmp_path / "a.db", reg), Detector(reg)
    events = run(det, book, [5, 30, 35, 55, 60, 30, 5, 4])
    assert [e.type for e in events] == ["raised", "rose", "lowered", "cleared"]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 4
    alarm = book.get(events[0].alarm.id)
    assert (alarm.level, alarm.peak, alarm.state) == ("high", 60.0, "rtn_unacknowledged")
    assert alarm.value == 5.0  # the reading that cleared it
    assert events[0].recipients == ("o1",)
    assert events[0].alarm.grid == "43090300100201"


def test_ack_lifecycle_and_refusals(tmp_path: Path, reg: Registry) -> None:
    book, det = AlarmBook(tmp_path / "a.db", reg), Detector(reg)
    raised = run(det, book, [30])[0]
    ev = book.acknowledge(raised.alarm.id, "o1", "on my way", 5000)
    assert ev.type == "acknowledged" and ev.alarm.acked_by == "o1" and ev.alarm.ack_note == "on my way"
    with pytest.raises(AlarmError):
        book.acknowledge(raised.alarm.id, "o1", "again", 6000)
    # a rise to high-high re-alarms: back to unacknowledged
    assert [e.type for e in run(det, book, [60], t0=10 * S)] == ["rose"]
    assert book.get(raised.alarm.id).state == "unacknowledged"
    book.acknowledge(raised.alarm.id, "o1", "", 7000)
    run(det, book, [1], t0=20 * S)
    assert book.get(raised.alarm.id).state == "normal"
    with pytest.raises(UnknownAlarm):
        book.acknowledge(raised.alarm.id, "o2", "", 8000, {"e2"})
    history = [e.type for e in book.history(raised.alarm.id)]
    assert history == ["raised", "acknowledged", "rose", "acknowledged", "cleared"]


def test_rtn_unack_returns_as_same_alarm(tmp_path: Path, reg: Registry) -> None:
    book, det = AlarmBook(tmp_path / "a.db", reg), Detector(reg)
    events = run(det, book, [30, 5, 30])
    assert [e.type for e in events] == ["raised", "cleared", "raised"]
    assert len({e.alarm.id for e in events}) == 1


def test_every_state_event_pair_is_table_or_refused() -> None:
    states = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())
    for state in states:
        for event in ("raise", "rise", "lower", "clear", "ack"):
            nxt = TRANSITIONS.get((state, event))
            assert nxt is None or nxt in states


def test_book_survives_restart_and_scopes(tmp_path: Path, reg: Registry) -> None:
    book, det = AlarmBook(tmp_path / "a.db", reg), Detector(reg)
    run(det, book, [30])
    run(det, book, [30], sensor=1)
    book.close()
    book = AlarmBook(tmp_path / "a.db", reg)
    assert len(book.list_alarms(None)) == 2
    assert [a.enterprise for a in book.list_alarms({"e1"})] == ["e1"]
    assert [e.alarm.enterprise for e in book.events_since(0, {"e2"})] == ["e2"]
    # the reopened book still knows the open alarm: clearing it updates the same record
    det2 = Detector(reg)
    det2.level[0] = 1
    events = book.apply(det2.evaluate(ReadingBatch.of([0], [50 * S], [1.0])))
    assert [e.type for e in events] == ["cleared"]


def test_store_idempotent_and_aggregates(tmp_path: Path, reg: Registry) -> None:
    store = SqliteStore(tmp_path / "r.db", reg)
    ts = np.arange(10, dtype=np.int64) * S
    values = np.arange(10, dtype=np.float64)
    q = np.zeros(10, dtype=np.uint8)
    q[9] = Quality.FAULT
    batch = ReadingBatch.of(np.zeros(10), ts, values, q)
    store.write(batch)
    store.write(batch)  # a retried write stores nothing twice
    assert store.count("e1/d1/ch4") == 10
    raw = store.query("e1/d1/ch4", 0, 20 * S)
    assert [p.value for p in raw] == values.tolist() and raw[3].ts == 3000
    mean = store.query("e1/d1/ch4", 0, 20 * S, every_ns=5 * S, agg="mean")
    assert [(p.ts, p.value) for p in mean] == [(0, 2.0), (5000, 6.5)]  # the fault (9) is left out
    assert [p.value for p in store.query("e1/d1/ch4", 0, 20 * S, 5 * S, "max")] == [4.0, 8.0]
    assert [p.value for p in store.query("e1/d1/ch4", 0, 20 * S, 5 * S, "last")] == [4.0, 8.0]
    assert [p.value for p in store.query("e1/d1/ch4", 0, 20 * S, 5 * S, "min")] == [0.0, 5.0]
    with pytest.raises(UnknownSensor):
        store.query("e1/d1/nope", 0, 1)
    store.close()
    # stable keys across a restart with a changed registry order
    reg2 = Registry(district([mqtt_device("e2", "d2", [CH4]), mqtt_device("e1", "d1", [CH4])]))
    store2 = SqliteStore(tmp_path / "r.db", reg2)
    assert store2.count("e1/d1/ch4") == 10 and store2.sid[1] == store.sid[0]


def test_retention_deletes_only_older_readings(tmp_path: Path, reg: Registry) -> None:
    store = SqliteStore(tmp_path / "r.db", reg)
    store.write(ReadingBatch.of([0, 0, 0, 1], [1 * S, 2 * S, 3 * S, 1 * S], [1.0, 2.0, 3.0, 4.0]))
    assert store.delete_before(2 * S) == 2  # ts 1 s of both sensors; 2 s itself is kept
    assert [p.value for p in store.query("e1/d1/ch4", 0, 10 * S)] == [2.0, 3.0]
    assert store.count("e2/d2/ch4") == 0
    assert store.delete_before(0) == 0
