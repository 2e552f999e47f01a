"""The tables of ``readings.db`` and the SQL over them: head blocks, per-sensor chunks, the old layout.

``head`` holds what the sink wrote lately, one row per sink write and group of sensors (a packed
block, see :mod:`gateway.storage.chunks`); ``chunks`` holds one row per sensor and window of
``width`` ns, keyed ``(t0, sid)``: a compaction appends a whole window's rows at the end of the
b-tree, whatever the table's size, and retention deletes a range at its start. A sensor's range
is one keyed look-up per window. Every function takes a connection, so that the store's writer,
its reader and ``gridgate export`` (read-only, no registry) read the same way.

Duplicates of a (sensor, ts) may sit in the head (the sinks are at-least-once); every reader
keeps the first stored of them: chunks before the head, older head rows before newer.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from gateway.storage.chunks import (
    Readings,
    block_slice,
    chunk_bounds,
    decode_block,
    decode_chunk,
    encode_chunks,
    first_of_each,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sensors (sid INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS layout (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS head (
    id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, n INTEGER NOT NULL,
    t_min INTEGER NOT NULL, t_max INTEGER NOT NULL, payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS head_by_group ON head (grp, id);
CREATE TABLE IF NOT EXISTS chunks (
    t0 INTEGER NOT NULL, sid INTEGER NOT NULL, n INTEGER NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (t0, sid)
) WITHOUT ROWID;
"""
# The layout before chunks (one row per reading), kept for the upgrade and the raw benchmark.
LEGACY_SCHEMA = """
CREATE TABLE IF NOT EXISTS sensors (sid INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS readings (
    sid INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, quality INTEGER NOT NULL,
    PRIMARY KEY (sid, ts)
) WITHOUT ROWID;
"""
GROUP = 256  # sensors per head block: a query or a compaction reads one group's blocks only
WINDOWS_SQL = """
WITH RECURSIVE w(t0) AS (SELECT ? UNION ALL SELECT t0 + ? FROM w WHERE t0 + ? <= ?)
SELECT c.t0, c.n, c.payload FROM w JOIN chunks c ON c.t0 = w.t0 AND c.sid = ? ORDER BY c.t0
"""


def layout_width(db: sqlite3.Connection) -> int | None:
    row = db.execute("SELECT value FROM layout WHERE key = 'chunk_ns'").fetchone()
    return None if row is None else int(row[0])


def has_legacy(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'readings'").fetchone() is not None


def head_blocks(db: sqlite3.Connection, grp: int, t_lo: int | None = None, t_hi: int | None = None
                ) -> list[tuple[int, Readings]]:
    """(row id, block) of one group's head rows, oldest first, optionally only those meeting [t_lo, t_hi]."""
    sql = "SELECT id, n, payload FROM head WHERE grp = ?"
    args: tuple[int, ...] = (grp,)
    if t_lo is not None and t_hi is not None:
        sql += " AND t_max >= ? AND t_min <= ?"
        args = (grp, t_lo, t_hi)
    return [(i, decode_block(p, n)) for i, n, p in db.execute(sql + " ORDER BY id", args)]


def chunk_series(db: sqlite3.Connection, sid: int, start: int, end: int, width: int) -> list[Readings]:
    """One sensor's chunks meeting [start, end], oldest first, trimmed to the range."""
    lo, hi = db.execute("SELECT MIN(t0), MAX(t0) FROM chunks").fetchone()
    if lo is None:
        return []
    first, last = max(start // width * width, int(lo)), min(end, int(hi))  # walk only windows that exist
    parts = []
    for t0, n, payload in db.execute(WINDOWS_SQL, (first, width, width, last, sid)):
        ts, value, quality = decode_chunk(t0, n, payload)
        lo, hi = int(np.searchsorted(ts, start, side="left")), int(np.searchsorted(ts, end, side="right"))
        if hi > lo:
            parts.append(Readings(np.full(hi - lo, sid, np.int32), ts[lo:hi], value[lo:hi], quality[lo:hi]))
    return parts


def load_series(db: sqlite3.Connection, sid: int, start: int, end: int, width: int | None) -> Readings:
    """One sensor's readings in [start, end] (ns, inclusive), sorted by ts, one per ts."""
    parts = [] if width is None else chunk_series(db, sid, start, end, width)
    for _, block in head_blocks(db, sid // GROUP, start, end):
        mine = block_slice(block, sid)
        if len(mine):
            mine = mine.take((mine.ts >= start) & (mine.ts <= end))
            parts.append(mine)
    return first_of_each(Readings.concat(parts))


def legacy_series(db: sqlite3.Connection, sid: int, start: int, end: int) -> Readings:
    """One sensor's readings in [start, end] from the previous layout's ``readings`` table."""
    rows = db.execute("SELECT ts, value, quality FROM readings WHERE sid = ? AND ts BETWEEN ? AND ? ORDER BY ts",
                      (sid, start, end)).fetchall()
    ts, value, quality = zip(*rows, strict=True) if rows else ((), (), ())
    return Readings(np.full(len(rows), sid, np.int32), np.array(ts, np.int64), np.array(value, np.float64),
                    np.array(quality, np.uint8))


def existing_chunks(db: sqlite3.Connection, r: Readings, width: int) -> list[Readings]:
    """The stored chunks of the (window, sensor) pairs that ``r`` (sorted by sid, ts) has readings in."""
    t0 = r.ts // width * width
    parts = []
    for w in np.unique(t0).tolist():
        sids = np.unique(r.sid[t0 == w])
        lo, hi = int(sids[0]), int(sids[-1])
        for sid, n, payload in db.execute("SELECT sid, n, payload FROM chunks WHERE t0 = ? AND sid BETWEEN ? AND ?",
                                          (w, lo, hi)):
            if sid in sids:
                ts, value, quality = decode_chunk(w, n, payload)
                parts.append(Readings(np.full(n, sid, np.int32), ts, value, quality))
    return parts


def store_chunks(db: sqlite3.Connection, r: Readings, width: int) -> None:
    """Merge ``r`` into the chunks (a reading already stored wins); inside the caller's transaction."""
    if not len(r):
        return
    r = first_of_each(r)
    old = existing_chunks(db, r, width)
    if old:
        r = first_of_each(Readings.concat([*old, r]))
    starts, ends, t0 = chunk_bounds(r, width)
    payloads = encode_chunks(r, starts, ends, t0)
    rows = zip(t0.tolist(), r.sid[starts].tolist(), (ends - starts).tolist(), payloads, strict=True)
    db.executemany("INSERT OR REPLACE INTO chunks (t0, sid, n, payload) VALUES (?, ?, ?, ?)", rows)


def head_groups(db: sqlite3.Connection, sid: int | None = None) -> list[int]:
    if sid is not None:
        return [sid // GROUP]
    return [g for (g,) in db.execute("SELECT DISTINCT grp FROM head")]


def every_series(db: sqlite3.Connection) -> dict[str, Readings]:
    """Every sensor's readings (for tests and tools that read a store on the side, read-only)."""
    width = layout_width(db)
    return {sensor_id: load_series(db, sid, -(2**62), 2**62, width)
            for sid, sensor_id in db.execute("SELECT sid, sensor_id FROM sensors ORDER BY sid").fetchall()}


def count_readings(db: sqlite3.Connection, width: int | None, sid: int | None = None) -> int:
    """Readings stored, each (sensor, ts) once: the chunks' counts plus what the head adds to them."""
    where, args = ("", ()) if sid is None else (" WHERE sid = ?", (sid,))
    total = int(db.execute(f"SELECT COALESCE(SUM(n), 0) FROM chunks{where}", args).fetchone()[0])
    for grp in head_groups(db, sid):
        blocks = [b for _, b in head_blocks(db, grp)]
        if sid is not None:
            blocks = [block_slice(b, sid) for b in blocks]
        head = first_of_each(Readings.concat(blocks))
        if not len(head):
            continue
        old = [] if width is None else existing_chunks(db, head, width)
        n_old = sum(len(c) for c in old)
        total += len(first_of_each(Readings.concat([*old, head]))) - n_old
    return total
