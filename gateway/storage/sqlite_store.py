"""The embedded readings store: SQLite (WAL), batched writes, ``(sensor, ts)`` unique.

Sensor ids are mapped to stable integer keys in a ``sensors`` table (the registry's dense indexes
may change when the configuration changes; the stored keys never do). A batch is written in one
transaction with ``INSERT OR IGNORE`` sorted by key, so a retried write stores nothing twice.
Writes happen on one writer connection (the runtime calls :meth:`SqliteStore.write` from a
dedicated thread); queries use their own connection, which WAL lets read while the writer writes.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from gateway.batch import Quality, ReadingBatch
from gateway.errors import StoreError, UnknownSensor
from gateway.registry import Registry
from gateway.sqlite import open_wal

Agg = Literal["mean", "min", "max", "last"]
AGG_SQL = {"mean": "AVG(value)", "min": "MIN(value)", "max": "MAX(value)", "last": "value"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS sensors (sid INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS readings (
    sid INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, quality INTEGER NOT NULL,
    PRIMARY KEY (sid, ts)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a sink did with a batch: readings stored, and readings refused with the reason."""

    accepted: int
    rejected: int = 0
    reason: str = ""


class Sink(Protocol):
    """A store that takes batches."""

    def write(self, batch: ReadingBatch) -> WriteResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    ts: int  # epoch ms
    value: float
    quality: int


class SqliteStore:
    """Readings in one SQLite file."""

    def __init__(self, path: str | Path, registry: Registry) -> None:
        self.path = str(path)
        self.registry = registry
        self._w = open_wal(self.path, SCHEMA, "the readings store")
        known = dict(self._w.execute("SELECT sensor_id, sid FROM sensors").fetchall())
        missing = [s.sensor_id for s in registry.sensors if s.sensor_id not in known]
        if missing:
            self._w.execute("BEGIN")
            self._w.executemany("INSERT INTO sensors (sensor_id) VALUES (?)", [(m,) for m in missing])
            self._w.execute("COMMIT")
            known = dict(self._w.execute("SELECT sensor_id, sid FROM sensors").fetchall())
        # registry index -> stored key
        self.sid = np.array([known[s.sensor_id] for s in registry.sensors], dtype=np.int64)
        self._sid_by_id = known
        self._r = sqlite3.connect(self.path, check_same_thread=False)
        self._r_lock = threading.Lock()
        self.written = 0

    def write(self, batch: ReadingBatch) -> WriteResult:
        """Store a batch in one transaction; duplicates of (sensor, ts) are ignored."""
        if not len(batch):
            return WriteResult(0)
        sid = self.sid[batch.sensor]
        order = np.lexsort((batch.ts, sid))
        rows = zip(sid[order].tolist(), batch.ts[order].tolist(), batch.value[order].tolist(),
                   batch.quality[order].tolist(), strict=True)
        try:
            self._w.execute("BEGIN")
            self._w.executemany("INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?)", rows)
            self._w.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._w.in_transaction:
                self._w.execute("ROLLBACK")
            raise StoreError(f"writing {len(batch)} readings failed: {exc}") from exc
        self.written += len(batch)
        return WriteResult(len(batch))

    def query(self, sensor_id: str, start_ns: int, end_ns: int, every_ns: int | None = None,
              agg: Agg = "mean", limit: int = 100_000) -> list[SeriesPoint]:
        """A series between ``start_ns`` and ``end_ns`` (inclusive), raw or aggregated per bucket.

        Aggregates use good and uncertain readings only; a fault reading is never averaged in.
        Buckets start at multiples of ``every_ns`` since the epoch; a bucket's ts is its start.
        """
        sid = self._sid_by_id.get(sensor_id)
        if sid is None:
            raise UnknownSensor(f"unknown sensor {sensor_id!r}")
        if every_ns is None:
            sql = ("SELECT ts, value, quality FROM readings WHERE sid = ? AND ts BETWEEN ? AND ?"
                   " ORDER BY ts LIMIT ?")
            args: tuple = (sid, start_ns, end_ns, limit)
        else:
            # For "last", value and quality are bare columns taken from the row of MAX(ts).
            cols = "value, quality, MAX(ts)" if agg == "last" else f"{AGG_SQL[agg]}, MAX(quality)"
            sql = (f"SELECT (ts / ?) * ? AS bucket, {cols}"
                   " FROM readings WHERE sid = ? AND ts BETWEEN ? AND ? AND quality < ?"
                   " GROUP BY bucket ORDER BY bucket LIMIT ?")
            args = (every_ns, every_ns, sid, start_ns, end_ns, int(Quality.FAULT), limit)
        with self._r_lock:
            try:
                rows = self._r.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"query of {sensor_id} failed: {exc}") from exc
        return [SeriesPoint(int(r[0]) // 1_000_000, float(r[1]), int(r[2])) for r in rows]

    def delete_before(self, cutoff_ns: int) -> int:
        """Retention: delete every reading older than ``cutoff_ns``; the number deleted."""
        try:
            self._w.execute("BEGIN")
            n = self._w.execute("DELETE FROM readings WHERE ts < ?", (cutoff_ns,)).rowcount
            self._w.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._w.in_transaction:
                self._w.execute("ROLLBACK")
            raise StoreError(f"retention delete failed: {exc}") from exc
        return int(n)

    def count(self, sensor_id: str | None = None) -> int:
        with self._r_lock:
            if sensor_id is None:
                return int(self._r.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
            sid = self._sid_by_id.get(sensor_id)
            return int(self._r.execute("SELECT COUNT(*) FROM readings WHERE sid = ?", (sid,)).fetchone()[0])

    def close(self) -> None:
        self._w.close()
        self._r.close()
