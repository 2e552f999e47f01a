"""The embedded readings store: SQLite (WAL), readings packed per sensor and window of time.

Layout (see :mod:`gateway.storage.chunk_tables` for the tables, :mod:`gateway.storage.chunks` for
the packing). A sink write appends its readings to the **head** as a few packed blocks (one per
group of 256 sensors, sorted by sensor and ts): one row per block instead of one per reading.
Once every reading of a window of ``chunk_seconds`` (60 s by default, fixed when the file is
created) can be expected to have arrived (the newest ts in the head is ``grace`` past the window's
end), a **compaction** moves the head's readings of the closed windows into **chunks**: one row per
sensor and window, keyed ``(t0, sid)``, holding that sensor's readings of the window compressed.
It runs a few groups at a time, about 0.2 s of work per sink write, so that no write waits long.
Writes therefore cost the same whatever the table's size (rows are appended at the end of the
b-trees); a sensor's range is one keyed look-up per window plus its group's head blocks;
retention deletes whole windows from the front and trims the window that holds the cut-off.

Why (30,000 sensors, a batch a second, measured on the 2-core machine): one row per reading keyed
``(sid, ts)`` touches a leaf page per sensor in every batch and fell from 115,000 to 23,000 rows/s
by 9 M rows; keyed ``(ts, sid)`` it stays at 300,000 – 430,000 rows/s but one sensor's last five
minutes take 1 s to read. This layout writes 0.8 – 1 M readings/s (compactions included) flat to
33 M readings, reads a sensor's range in 2 – 4 ms, and takes 6 – 13 bytes a reading instead of 28.
Wider windows (300 s) compact 9 M readings at once (6.5 s) and read slower (9 – 11 ms).

Idempotent: a replayed write may put a (sensor, ts) into the head twice, and a late one may
arrive after its window was compacted; compaction, queries and counts keep the first stored of
each (sensor, ts) (what ``INSERT OR IGNORE`` did before), so a replay stores nothing twice.

Upgrade: a ``readings.db`` of the previous layout (a ``readings`` table, one row per reading keyed
``(sid, ts)``) is converted in place when the store opens, before the gateway starts collecting:
in steps of 200,000 readings, each one transaction that writes their chunks and deletes their old
rows, so an interrupted upgrade resumes where it stopped and loses nothing; the old table is
dropped once empty (its pages are reused, the file does not shrink). About 4 s per million
readings on the development machine (6 M readings in 23 s); progress is logged.

Sensor ids are mapped to stable integer keys in a ``sensors`` table (the registry's dense indexes
may change when the configuration changes; the stored keys never do). Writes happen on one writer
connection (the runtime calls :meth:`SqliteStore.write` from a dedicated thread); queries use their
own connection, which WAL lets read while the writer writes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import numpy as np

from gateway.batch import ReadingBatch
from gateway.errors import StoreError, UnknownSensor
from gateway.registry import Registry
from gateway.sqlite import open_wal
from gateway.storage import chunk_tables as tables
from gateway.storage.chunks import Readings, aggregate, decode_chunk, encode_block, encode_chunk, first_of_each

log = logging.getLogger(__name__)
Agg = Literal["mean", "min", "max", "last"]
S = 1_000_000_000
UPGRADE_STEP = 200_000
T = TypeVar("T")


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

    def __init__(self, path: str | Path, registry: Registry, *, chunk_seconds: int = 60,
                 grace_seconds: float = 10.0, compact_budget: float = 0.2,
                 upgrade_step: int = UPGRADE_STEP) -> None:
        self.path = str(path)
        self.registry = registry
        self._w = open_wal(self.path, tables.SCHEMA, "the readings store")
        width = tables.layout_width(self._w)
        if width is None:
            width = chunk_seconds * S
            self._w.execute("INSERT INTO layout (key, value) VALUES ('chunk_ns', ?)", (width,))
        self.width = width
        self.grace = int(grace_seconds * S)
        self.sid = np.zeros(0, dtype=np.int32)  # registry number -> stored key
        self._sid_by_id: dict[str, int] = {}
        self._learn_sensors()
        if tables.has_legacy(self._w):
            self._upgrade(upgrade_step)
        self._head_span()
        self._compacted_to = -(2**62)
        self._pending: list[int] = []  # head groups with readings of closed windows, to compact
        self.compact_budget = compact_budget
        self._r = sqlite3.connect(self.path, check_same_thread=False)
        self._r_lock = threading.Lock()
        self.written = 0
        self.compactions = 0

    def _head_span(self) -> None:
        lo, hi = self._w.execute("SELECT MIN(t_min), MAX(t_max) FROM head").fetchone()
        self._head_min = None if lo is None else int(lo)
        self._head_max = None if hi is None else int(hi)

    def _transaction(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            self._w.execute("BEGIN")
            out = fn(*args)
            self._w.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._w.in_transaction:
                self._w.execute("ROLLBACK")
            raise StoreError(f"{what} failed: {exc}") from exc
        return out

    def _learn_sensors(self) -> None:
        """Give every sensor of the registry a stored key (a sensor keeps its key for good)."""
        sensors = self.registry.sensors
        known = dict(self._w.execute("SELECT sensor_id, sid FROM sensors").fetchall())
        missing = [s.sensor_id for s in sensors if s.sensor_id not in known]
        if missing:
            self._w.execute("BEGIN")
            self._w.executemany("INSERT INTO sensors (sensor_id) VALUES (?)", [(m,) for m in missing])
            self._w.execute("COMMIT")
            known = dict(self._w.execute("SELECT sensor_id, sid FROM sensors").fetchall())
        self._sid_by_id = known
        self.sid = np.array([known[s.sensor_id] for s in sensors], dtype=np.int32)

    def write(self, batch: ReadingBatch) -> WriteResult:
        """Append a batch to the head in one transaction; compact the windows it closed."""
        if not len(batch):
            return WriteResult(0)
        if int(batch.sensor.max()) >= len(self.sid):  # the registry grew since
            self._learn_sensors()
        sid = self.sid[batch.sensor]
        order = np.lexsort((batch.ts, sid))
        r = Readings(sid[order], batch.ts[order], batch.value[order], batch.quality[order])
        grp = r.sid // tables.GROUP
        cut = np.flatnonzero(grp[1:] != grp[:-1]) + 1
        rows = []
        for a, b in zip(np.concatenate(([0], cut)).tolist(), np.concatenate((cut, [len(r)])).tolist(), strict=True):
            part = r.take(slice(a, b))
            rows.append((int(grp[a]), b - a, int(part.ts.min()), int(part.ts.max()), encode_block(part)))
        self._transaction(f"writing {len(batch)} readings", self._w.executemany,
                          "INSERT INTO head (grp, n, t_min, t_max, payload) VALUES (?, ?, ?, ?, ?)", rows)
        t_min, t_max = int(batch.ts.min()), int(batch.ts.max())
        self._head_min = t_min if self._head_min is None else min(self._head_min, t_min)
        self._head_max = t_max if self._head_max is None else max(self._head_max, t_max)
        self.written += len(batch)
        closed = (self._head_max - self.grace) // self.width * self.width
        if closed > self._compacted_to and self._head_min < closed:
            self._compacted_to = closed
            self._pending = self._groups_before(closed)
        if self._pending:
            self._compact_some(time.monotonic() + self.compact_budget)
        return WriteResult(len(batch))

    def _groups_before(self, before: int) -> list[int]:
        return [g for (g,) in self._w.execute("SELECT DISTINCT grp FROM head WHERE t_min < ? ORDER BY grp", (before,))]

    def compact(self) -> None:
        """Compact every window closed so far now (a write compacts a few groups at a time)."""
        if self._head_max is not None:
            self._compacted_to = (self._head_max - self.grace) // self.width * self.width
            self._pending = self._groups_before(self._compacted_to)
            self._compact_some(None)

    def _compact_some(self, deadline: float | None) -> None:
        """Compact pending groups, one transaction, until ``deadline`` (monotonic) passes: a big
        head is moved over a few writes, so that no single write of the sink waits long."""

        def run() -> int:
            done = 0
            for grp in self._pending:
                self._compact_group(grp, self._compacted_to)
                done += 1
                if deadline is not None and time.monotonic() > deadline:
                    break
            return done

        done = self._transaction("compacting the head", run)
        del self._pending[:done]
        if not self._pending:
            self.compactions += 1
        self._head_span()

    def _compact_group(self, grp: int, before: int) -> None:
        blocks = tables.head_blocks(self._w, grp)
        if not blocks:
            return
        r = Readings.concat([b for _, b in blocks])
        old = r.ts < before
        if not old.any():
            return
        tables.store_chunks(self._w, r.take(old), self.width)
        self._w.execute("DELETE FROM head WHERE grp = ? AND id <= ?", (grp, blocks[-1][0]))
        rest = first_of_each(r.take(~old))
        if len(rest):
            self._w.execute("INSERT INTO head (grp, n, t_min, t_max, payload) VALUES (?, ?, ?, ?, ?)",
                            (grp, len(rest), int(rest.ts.min()), int(rest.ts.max()), encode_block(rest)))

    def _upgrade(self, step_size: int) -> None:
        """Convert the one-row-per-reading table into chunks, a step (one transaction) at a time."""
        log.warning("readings.db has the old layout (one row per reading): converting it to chunks")
        t, moved = time.monotonic(), 0
        while True:
            rows = self._w.execute("SELECT sid, ts, value, quality FROM readings ORDER BY sid, ts LIMIT ?",
                                   (step_size,)).fetchall()
            if not rows:
                break
            sid, ts, value, quality = zip(*rows, strict=True)
            r = Readings(np.array(sid, np.int32), np.array(ts, np.int64), np.array(value, np.float64),
                         np.array(quality, np.uint8))
            last_sid, last_ts = rows[-1][0], rows[-1][1]

            def step(r: Readings = r, last_sid: int = last_sid, last_ts: int = last_ts) -> None:
                tables.store_chunks(self._w, r, self.width)
                self._w.execute("DELETE FROM readings WHERE sid < ? OR (sid = ? AND ts <= ?)",
                                (last_sid, last_sid, last_ts))

            self._transaction("converting readings.db", step)
            moved += len(rows)
            log.info("readings.db: %d readings converted (%.0f s)", moved, time.monotonic() - t)
        self._w.execute("DROP TABLE readings")
        log.warning("readings.db converted: %d readings in %.1f s", moved, time.monotonic() - t)

    def series(self, sensor_id: str, start_ns: int, end_ns: int) -> Readings:
        """One sensor's readings in [start_ns, end_ns], sorted by ts."""
        sid = self._sid_by_id.get(sensor_id)
        if sid is None:
            if sensor_id in self.registry.layout.sensors:  # registered since the last write: nothing yet
                return Readings(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8))
            raise UnknownSensor(f"unknown sensor {sensor_id!r}")
        with self._r_lock:
            try:
                return tables.load_series(self._r, sid, start_ns, end_ns, self.width)
            except sqlite3.Error as exc:
                raise StoreError(f"query of {sensor_id} failed: {exc}") from exc

    def query(self, sensor_id: str, start_ns: int, end_ns: int, every_ns: int | None = None,
              agg: Agg = "mean", limit: int = 100_000) -> list[SeriesPoint]:
        """A series between ``start_ns`` and ``end_ns`` (inclusive), raw or aggregated per bucket.

        Aggregates use good and uncertain readings only; a fault reading is never averaged in.
        Buckets start at multiples of ``every_ns`` since the epoch; a bucket's ts is its start.
        """
        r = self.series(sensor_id, start_ns, end_ns)
        if every_ns is None:
            ts, value, quality = r.ts[:limit], r.value[:limit], r.quality[:limit]
        else:
            ts, value, quality = aggregate(r.ts, r.value, r.quality, every_ns, agg, limit)
        return [SeriesPoint(t // 1_000_000, v, q)
                for t, v, q in zip(ts.tolist(), value.tolist(), quality.tolist(), strict=True)]

    def retention_steps(self, cutoff_ns: int) -> list[int]:
        """Cut-offs for :meth:`delete_before`, one window apart, ending at ``cutoff_ns``: deleting a
        long span a window per call lets the sink's writes run in between."""
        oldest = self._w.execute("SELECT MIN(t0) FROM chunks").fetchone()[0]
        last = cutoff_ns // self.width * self.width
        steps = [] if oldest is None else list(range(int(oldest) + self.width, last, self.width))
        return [*steps, cutoff_ns]

    def delete_before(self, cutoff_ns: int) -> int:
        """Retention: delete every reading older than ``cutoff_ns``; the number deleted."""
        n = self._transaction("retention delete", self._delete_before, cutoff_ns)
        self._head_span()
        return n

    def _delete_before(self, cutoff: int) -> int:
        db, deleted = self._w, 0
        for (grp,) in db.execute("SELECT DISTINCT grp FROM head WHERE t_min < ?", (cutoff,)).fetchall():
            gone = []
            for i, n, payload in db.execute("SELECT id, n, payload FROM head WHERE grp = ? AND t_min < ?",
                                            (grp, cutoff)).fetchall():
                block = tables.decode_block(payload, n)
                old = block.ts < cutoff
                gone.append(block.take(old))
                keep = block.take(~old)
                if len(keep):
                    db.execute("UPDATE head SET n = ?, t_min = ?, t_max = ?, payload = ? WHERE id = ?",
                               (len(keep), int(keep.ts.min()), int(keep.ts.max()), encode_block(keep), i))
                else:
                    db.execute("DELETE FROM head WHERE id = ?", (i,))
            head = first_of_each(Readings.concat(gone))
            stored = tables.existing_chunks(db, head, self.width)
            deleted += len(first_of_each(Readings.concat([*stored, head]))) - sum(len(c) for c in stored)
        first = cutoff // self.width * self.width
        deleted += int(db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks WHERE t0 < ?", (first,)).fetchone()[0])
        db.execute("DELETE FROM chunks WHERE t0 < ?", (first,))
        if cutoff > first:  # the window holding the cut-off keeps its newer readings
            for sid, n, payload in db.execute("SELECT sid, n, payload FROM chunks WHERE t0 = ?", (first,)).fetchall():
                ts, value, quality = decode_chunk(first, n, payload)
                keep = ts >= cutoff
                deleted += n - int(keep.sum())
                if keep.all():
                    continue
                if keep.any():
                    db.execute("UPDATE chunks SET n = ?, payload = ? WHERE t0 = ? AND sid = ?",
                               (int(keep.sum()), encode_chunk(first, ts[keep], value[keep], quality[keep]), first, sid))
                else:
                    db.execute("DELETE FROM chunks WHERE t0 = ? AND sid = ?", (first, sid))
        return deleted

    def count(self, sensor_id: str | None = None) -> int:
        """Readings stored (of one sensor, or all), each (sensor, ts) once."""
        sid = None if sensor_id is None else self._sid_by_id.get(sensor_id)
        if sensor_id is not None and sid is None:
            return 0
        with self._r_lock:
            return tables.count_readings(self._r, self.width, sid)

    def close(self) -> None:
        self._w.close()
        self._r.close()
