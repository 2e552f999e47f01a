"""The outbox: the durable log (SQLite, WAL) of accepted batches, between intake and every consumer.

A batch is committed here before it counts as accepted (the MQTT collector acknowledges a message
only after that). It is the log every consumer downstream reads: each sink, and the detector (a
*kept* consumer, see below). Each consumer has a cursor: it reads the batches after its cursor in order,
handles them, and moves its cursor only once it confirmed them (a sink's write, the alarm book's
commit), so delivery is at-least-once and per-sensor order is kept on replay; sinks write
idempotently, so a replay stores nothing twice. A batch is deleted once every consumer has confirmed
it. Consumers lag independently.

The spool has a byte quota. When an append takes it over, the oldest batches are dropped (whatever
sink still wanted them), and the append returns a :class:`DropReport` naming how many readings and
which time span were lost, for the ``data_loss`` system alarm. Nothing is dropped silently. Batches
that a kept consumer (the detector) has not confirmed are never dropped: the quota may cost
storage, never an evaluation.

All methods are synchronous and thread-safe; the runtime calls them from one worker thread. The
most recent batches are also kept in memory, as they were committed (a bounded tail, up to
``tail_readings``): a consumer that keeps up reads them from there with :meth:`read_tail`, on its
own thread and without SQLite, and only one that fell further behind reads the file. The tail is a
copy of what is durable, never a step before it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from gateway.batch import QUALITY_DTYPE, SENSOR_DTYPE, TS_DTYPE, VALUE_DTYPE, ReadingBatch
from gateway.errors import StoreError
from gateway.sqlite import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, t_min INTEGER NOT NULL,
    t_max INTEGER NOT NULL, at INTEGER NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS losses (
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, batches INTEGER NOT NULL, readings INTEGER NOT NULL,
    t_min INTEGER NOT NULL, t_max INTEGER NOT NULL
);
"""
BYTES_PER_READING = 4 + 8 + 8 + 1


@dataclass(frozen=True, slots=True)
class DropReport:
    """What one quota enforcement dropped: batches, readings, and their time span (epoch ns)."""

    batches: int
    readings: int
    t_min: int
    t_max: int
    lost_by_sink: dict[str, int] = field(default_factory=dict)  # readings each sink never got


@dataclass(frozen=True, slots=True)
class Pending:
    """Batches a sink has not confirmed yet, read in order; confirm up to ``last_seq``."""

    last_seq: int
    batch: ReadingBatch
    since: int  # epoch ns when the oldest of these batches was accepted (not a reading's own ts)


def encode(batch: ReadingBatch) -> bytes:
    return b"".join((
        np.ascontiguousarray(batch.sensor, dtype=SENSOR_DTYPE).tobytes(),
        np.ascontiguousarray(batch.ts, dtype=TS_DTYPE).tobytes(),
        np.ascontiguousarray(batch.value, dtype=VALUE_DTYPE).tobytes(),
        np.ascontiguousarray(batch.quality, dtype=QUALITY_DTYPE).tobytes(),
    ))


def decode(payload: bytes, n: int) -> ReadingBatch:
    buf = memoryview(payload)
    a, b, c = 4 * n, 12 * n, 20 * n
    return ReadingBatch(
        np.frombuffer(buf[:a], dtype=SENSOR_DTYPE),
        np.frombuffer(buf[a:b], dtype=TS_DTYPE),
        np.frombuffer(buf[b:c], dtype=VALUE_DTYPE),
        np.frombuffer(buf[c:c + n], dtype=QUALITY_DTYPE),
    )


class Outbox:
    """Batches waiting for their sinks, in one SQLite file."""

    def __init__(self, path: str | Path, sinks: Sequence[str], max_bytes: int, keep: Sequence[str] = (),
                 tail_readings: int = 100_000) -> None:
        self.path = str(path)
        self.sinks = list(sinks)
        self.keep = list(keep)  # consumers whose unconfirmed batches the quota never drops
        self.consumers = self.sinks + self.keep
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = open_wal(self.path, SCHEMA, "the outbox")
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM batches").fetchone()
        first_seq = int(self._db.execute("SELECT COALESCE(MIN(seq), 1) FROM batches").fetchone()[0])
        for sink in self.consumers:
            # A new consumer starts at what is spooled now; a known one where it left off.
            self._db.execute("INSERT OR IGNORE INTO cursors (sink, seq) VALUES (?, ?)", (sink, first_seq - 1))
        # AUTOINCREMENT never reuses a seq, even after every batch was confirmed and deleted: the
        # last one ever given out is in sqlite_sequence.
        given = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").fetchone()
        self.last_seq = max(int(row[0]), int(given[0]) if given else 0)
        self.size = int(self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM batches").fetchone()[0])
        self.readings = int(self._db.execute("SELECT COALESCE(SUM(n), 0) FROM batches").fetchone()[0])
        totals = self._db.execute("SELECT COALESCE(SUM(batches), 0), COALESCE(SUM(readings), 0) FROM losses")
        self.dropped_batches, self.dropped_readings = (int(x) for x in totals.fetchone())
        self.appended = 0
        # the newest committed batches, in seq order: (seq, accepted at, batch); bounded by readings
        self.tail_readings = tail_readings
        self._tail: deque[tuple[int, int, ReadingBatch]] = deque()
        self._tail_n = 0
        self._tail_lock = threading.Lock()

    def append(self, batch: ReadingBatch) -> DropReport | None:
        """Commit a batch; if that passes the quota, drop the oldest batches and say what went."""
        if not len(batch):
            return None
        payload = encode(batch)
        t_min, t_max = int(batch.ts.min()), int(batch.ts.max())
        at = time.time_ns()
        with self._lock:
            try:
                cur = self._db.execute("INSERT INTO batches (n, t_min, t_max, at, payload) VALUES (?, ?, ?, ?, ?)",
                                       (len(batch), t_min, t_max, at, payload))
            except sqlite3.Error as exc:
                raise StoreError(f"outbox append of {len(batch)} readings failed: {exc}") from exc
            self.last_seq = int(cur.lastrowid or self.last_seq + 1)
            # the tail keeps the committed bytes themselves (read-only arrays over them): never the
            # caller's arrays, which the caller could change after the commit
            self._remember(self.last_seq, at, decode(payload, len(batch)))
            self.size += len(payload)
            self.readings += len(batch)
            self.appended += len(batch)
            if self.size <= self.max_bytes:
                return None
            return self._enforce_quota()

    def _remember(self, seq: int, at: int, batch: ReadingBatch) -> None:
        with self._tail_lock:
            tail = self._tail
            if tail and tail[-1][0] != seq - 1:  # a gap (cannot happen with AUTOINCREMENT): start afresh
                tail.clear()
                self._tail_n = 0
            tail.append((seq, at, batch))
            self._tail_n += len(batch)
            while self._tail_n > self.tail_readings and len(tail) > 1:
                self._tail_n -= len(tail.popleft()[2])

    def _forget_upto(self, seq: int) -> None:
        with self._tail_lock:
            while self._tail and self._tail[0][0] <= seq:
                self._tail_n -= len(self._tail.popleft()[2])

    def read_tail(self, after: int, max_readings: int) -> Pending | None | Literal[False]:
        """The batches after ``after`` from the in-memory tail, like :meth:`read`; None if there are
        none yet, False if the tail does not reach back to ``after`` (then :meth:`read` the file).
        Cheap and never waits for SQLite: callable from the event loop."""
        with self._tail_lock:
            tail = self._tail
            if not tail or tail[0][0] > after + 1:
                return None if after >= self.last_seq else False
            if tail[-1][0] <= after:
                return None
            start = after + 1 - tail[0][0]
            parts: list[ReadingBatch] = []
            total, last, since = 0, after, 0
            for i in range(start, len(tail)):
                seq, at, batch = tail[i]
                if parts and total + len(batch) > max_readings:
                    break
                parts.append(batch)
                total += len(batch)
                last = seq
                since = since or at
        return Pending(last, parts[0] if len(parts) == 1 else ReadingBatch.concat(parts), since)

    def _enforce_quota(self) -> DropReport | None:
        dropped: list[tuple[int, int, int, int, int]] = []
        size = self.size
        cursors = dict(self._db.execute("SELECT sink, seq FROM cursors").fetchall())
        kept = min((int(cursors.get(k, 0)) for k in self.keep), default=self.last_seq)
        rows = self._db.execute("SELECT seq, n, t_min, t_max, LENGTH(payload) FROM batches WHERE seq <= ? ORDER BY seq",
                                (kept,)).fetchall()
        for seq, n, t0, t1, nbytes in rows:
            if size <= self.max_bytes or seq == self.last_seq:
                break  # never drop the batch just accepted
            dropped.append((seq, n, t0, t1, nbytes))
            size -= nbytes
        if not dropped:  # one batch alone is over the quota: it stays (it was accepted)
            return None
        upto = dropped[-1][0]
        readings = sum(d[1] for d in dropped)
        lost = {sink: sum(d[1] for d in dropped if d[0] > cursors.get(sink, 0)) for sink in self.sinks}
        report = DropReport(len(dropped), readings, min(d[2] for d in dropped), max(d[3] for d in dropped),
                            {k: v for k, v in lost.items() if v})
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM batches WHERE seq <= ?", (upto,))
        self._db.execute("INSERT INTO losses (at, batches, readings, t_min, t_max) VALUES "
                         "(CAST(strftime('%s','now') AS INTEGER) * 1000, ?, ?, ?, ?)",
                         (report.batches, report.readings, report.t_min, report.t_max))
        self._db.execute("UPDATE cursors SET seq = ? WHERE seq < ?", (upto, upto))
        self._db.execute("COMMIT")
        self._forget_upto(upto)
        self.size = size
        self.readings -= readings
        self.dropped_batches += report.batches
        self.dropped_readings += readings
        return report

    def cursor(self, sink: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT seq FROM cursors WHERE sink = ?", (sink,)).fetchone()[0])

    def read(self, sink: str, max_readings: int, after: int | None = None) -> Pending | None:
        """The oldest batches ``sink`` has not confirmed (or those after ``after``), up to about
        ``max_readings`` readings: from the in-memory tail when it reaches back that far."""
        with self._lock:
            if after is None:
                after = int(self._db.execute("SELECT seq FROM cursors WHERE sink = ?", (sink,)).fetchone()[0])
            cached = self.read_tail(after, max_readings)
            if cached is not False:
                return cached
            rows = self._db.execute("SELECT seq, n, at, payload FROM batches WHERE seq > ? ORDER BY seq",
                                    (after,))
            parts, total, last, since = [], 0, after, 0
            for seq, n, at, payload in rows:
                if parts and total + n > max_readings:
                    break
                parts.append(decode(payload, n))
                total += n
                last = seq
                since = since or at
            rows.close()
        if not parts:
            return None
        return Pending(last, ReadingBatch.concat(parts), since)

    def confirm(self, sink: str, upto_seq: int) -> None:
        """``sink`` has stored everything up to ``upto_seq``; delete what every sink has."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE cursors SET seq = MAX(seq, ?) WHERE sink = ?", (upto_seq, sink))
            marks = ",".join("?" * len(self.consumers))
            low = int(self._db.execute(f"SELECT MIN(seq) FROM cursors WHERE sink IN ({marks})",
                                       self.consumers).fetchone()[0])
            freed = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0), COALESCE(SUM(n), 0) FROM batches"
                                     " WHERE seq <= ?", (low,)).fetchone()
            self._db.execute("DELETE FROM batches WHERE seq <= ?", (low,))
            self._db.execute("COMMIT")
            self.size -= int(freed[0])
            self.readings -= int(freed[1])

    def backlog(self, sink: str, after: int | None = None) -> tuple[int, int | None]:
        """Readings ``sink`` has not confirmed (or those after ``after``), and when (epoch ns) the
        oldest of them was accepted."""
        with self._lock:
            if after is None:
                after = int(self._db.execute("SELECT seq FROM cursors WHERE sink = ?", (sink,)).fetchone()[0])
            n, oldest = self._db.execute("SELECT COALESCE(SUM(n), 0), MIN(at) FROM batches WHERE seq > ?",
                                         (after,)).fetchone()
        return int(n), (None if oldest is None else int(oldest))

    def close(self) -> None:
        with self._lock:
            self._db.close()
