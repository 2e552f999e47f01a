"""The embedded readings store's layout: head blocks and per-sensor chunks, retention, the upgrade.

Real SQLite files throughout. Chunks are 10 s wide and the grace 2 s, so that a few readings
cross windows and compactions happen.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gateway.batch import Quality, ReadingBatch
from gateway.registry import Registry
from gateway.storage.chunk_tables import LEGACY_SCHEMA
from gateway.storage.export import rows as export_rows
from gateway.storage.sqlite_store import SqliteStore
from tests.helpers import CH4, district, mqtt_device

S = 1_000_000_000
A, B = "e1/d1/ch4", "e2/d2/ch4"


@pytest.fixture
def reg() -> Registry:
    return Registry(district([mqtt_device("e1", "d1", [CH4]), mqtt_device("e2", "d2", [CH4])]))


def open_store(path: Path, reg: Registry, **kw: int) -> SqliteStore:
    return SqliteStore(path, reg, chunk_seconds=10, grace_seconds=2, **kw)


def seconds(lo: int, hi: int, sensor: int = 0, fault_every: int = 0) -> ReadingBatch:
    """One reading a second of ``sensor`` for ts lo..hi-1 s, value = ts in s (faults are 1000 + ts)."""
    t = np.arange(lo, hi)
    q = np.zeros(len(t), np.uint8)
    v = t.astype(float)
    if fault_every:
        q[t % fault_every == fault_every - 1] = Quality.FAULT
        v[q == Quality.FAULT] += 1000
    return ReadingBatch.of(np.full(len(t), sensor), t * S, v, q)


def values(store: SqliteStore, sensor_id: str, lo: int, hi: int) -> list[float]:
    return [p.value for p in store.query(sensor_id, lo * S, hi * S)]


def test_replays_store_nothing_twice_across_windows_head_and_chunks(tmp_path: Path, reg: Registry) -> None:
    store = open_store(tmp_path / "r.db", reg)
    first = seconds(5, 25)  # windows 0, 10 and 20
    store.write(first)
    store.write(first)  # a replay while everything is in the head
    assert store.count(A) == 20 and store.compactions == 1  # 25 - 2 s of grace closed windows 0 and 10
    store.write(seconds(25, 45))  # closes 20 and 30: the replayed readings are compacted by now
    store.write(first)  # a replay after its windows were compacted
    store.write(seconds(30, 35))  # one of what is still in the head
    assert store.count(A) == 40 and store.count(B) == 0 and store.count() == 40
    assert values(store, A, 0, 100) == [float(t) for t in range(5, 45)]
    store.write(seconds(45, 70))  # another compaction merges the late replay into existing chunks
    assert store.count(A) == 65 and values(store, A, 0, 100) == [float(t) for t in range(5, 70)]
    store.close()
    with sqlite3.connect(tmp_path / "r.db") as db:  # every closed window is one chunk row
        assert db.execute("SELECT t0 / 1000000000, n FROM chunks ORDER BY t0").fetchall() == [
            (0, 5), (10, 10), (20, 10), (30, 10), (40, 10), (50, 10)]


def test_queries_span_chunks_and_head_raw_and_aggregated(tmp_path: Path, reg: Registry) -> None:
    store = open_store(tmp_path / "r.db", reg)
    for lo in range(0, 60, 7):  # writes that do not line up with the windows
        store.write(ReadingBatch.concat([seconds(lo, min(lo + 7, 60), 0, fault_every=4), seconds(lo, lo + 1, 1)]))
    assert store.compactions > 0
    raw = store.query(A, 8 * S, 51 * S)
    assert [p.ts for p in raw] == [t * 1000 for t in range(8, 52)]
    assert [p.quality for p in raw[:4]] == [0, 0, 0, 2] and raw[3].value == 1011.0  # raw keeps faults
    assert len(store.query(A, 0, 59 * S, limit=5)) == 5
    good = [t for t in range(60) if t % 4 != 3]
    for agg, fn in (("mean", np.mean), ("min", min), ("max", max), ("last", lambda v: v[-1])):
        got = store.query(A, 0, 59 * S, every_ns=15 * S, agg=agg)
        assert [p.ts for p in got] == [0, 15_000, 30_000, 45_000]
        want = [float(fn([t for t in good if b <= t < b + 15])) for b in (0, 15, 30, 45)]
        assert [p.value for p in got] == pytest.approx(want), agg  # the faults (1000 + ts) are left out
        assert all(p.quality == 0 for p in got)
    assert [p.ts for p in store.query(A, 0, 59 * S, 15 * S, "mean", limit=2)] == [0, 15_000]
    assert values(store, B, 0, 100) == [float(t) for t in range(0, 60, 7)]
    assert [(ts, v) for ts, v, _ in export_rows(tmp_path / "r.db", B, 0, 100 * S)] == [
        (t * S, float(t)) for t in range(0, 60, 7)]
    store.close()


def test_retention_trims_chunks_and_head_exactly(tmp_path: Path, reg: Registry) -> None:
    store = open_store(tmp_path / "r.db", reg)
    store.write(ReadingBatch.concat([seconds(0, 40, 0), seconds(0, 40, 1)]))
    store.write(seconds(3, 8, 0))  # late duplicates in the head of an already compacted window
    assert store.count() == 80
    assert store.delete_before(15 * S) == 30  # windows 0 and half of 10, both sensors
    assert values(store, A, 0, 100) == [float(t) for t in range(15, 40)] and store.count() == 50
    assert store.delete_before(35 * S) == 40  # in the head now (38 and 39 still open)
    assert values(store, B, 0, 100) == [35.0, 36.0, 37.0, 38.0, 39.0]
    assert store.delete_before(0) == 0
    store.close()
    reopened = open_store(tmp_path / "r.db", reg)
    assert reopened.count() == 10
    reopened.close()


def legacy_db(path: Path, reg: Registry, readings: dict[str, range]) -> None:
    """A readings.db as the previous layout wrote it: a row per reading keyed (sid, ts)."""
    with sqlite3.connect(path) as db:
        db.executescript(LEGACY_SCHEMA)
        for sensor_id, ts in readings.items():
            sid = db.execute("INSERT OR IGNORE INTO sensors (sensor_id) VALUES (?)", (sensor_id,)).lastrowid
            sid = db.execute("SELECT sid FROM sensors WHERE sensor_id = ?", (sensor_id,)).fetchone()[0]
            db.executemany("INSERT INTO readings VALUES (?, ?, ?, ?)",
                           [(sid, t * S, float(t), 2 if t % 10 == 9 else 0) for t in ts])


def test_an_old_layout_readings_db_is_converted_in_place(tmp_path: Path, reg: Registry) -> None:
    path = tmp_path / "r.db"
    legacy_db(path, reg, {B: range(100, 400), A: range(0, 250)})
    assert [ts for ts, _, _ in export_rows(path, A, 0, 10 * S)][-1] == 10 * S  # export reads the old layout
    store = open_store(path, reg, upgrade_step=70)  # several steps, windows cut across them
    with sqlite3.connect(path) as db:
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "readings" not in tables and store.count(A) == 250 and store.count(B) == 300
    assert values(store, B, 100, 109) == [float(t) for t in range(100, 110)]
    assert store.query(A, 0, 19 * S, 10 * S, "max")[0].value == 8.0  # the fault at 9 s is left out
    store.write(seconds(240, 260))  # new readings overlapping converted ones
    assert store.count(A) == 260
    store.close()


def test_an_interrupted_upgrade_resumes_without_loss_or_duplicates(tmp_path: Path, reg: Registry) -> None:
    path = tmp_path / "r.db"
    store = open_store(path, reg)  # the steps done before the interruption: chunks of 0..99 s
    store.write(seconds(0, 100))
    store.close()
    legacy_db(path, reg, {A: range(95, 200)})  # what was left (95..99 were converted already)
    store = open_store(path, reg)
    assert store.count(A) == 200 and values(store, A, 90, 105) == [float(t) for t in range(90, 106)]
    store.close()
