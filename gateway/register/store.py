"""The registry database (``registry.db`` in ``data_dir``): the registry's items, its version, the
numbers of sensors and devices, and the audit trail of every change.

- ``items``: one row per item (section, key) with its TOML-shaped body; a retired item keeps its row
  with ``retired_at`` set, so its id is never given to another thing and its history stays named.
  Rows keep their first position: the lists come back in the order items were added.
- ``sensors`` / ``devices``: the number each sensor and device has (:class:`gateway.registry.Layout`),
  with the point or device as it last was, so a retired one keeps its number and its meaning.
- ``audit``: who changed what when, the old and the new body, and the version the change made.
- ``meta``: ``version`` (one more per change, an import being one change) and ``file_digest``, the
  digest of the configuration file's registry when it was last taken.

A change is one SQLite transaction: items, numbers, audit and version together or not at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from gateway.config import Device, Point
from gateway.errors import GridgateError
from gateway.register.document import SECTIONS, Items
from gateway.registry import Layout
from gateway.sqlite import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    pos INTEGER PRIMARY KEY AUTOINCREMENT, section TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
    retired_at INTEGER, changed_at INTEGER NOT NULL, version INTEGER NOT NULL, UNIQUE (section, key)
);
CREATE TABLE IF NOT EXISTS sensors (idx INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL UNIQUE, point TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (idx INTEGER PRIMARY KEY, device_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, version INTEGER NOT NULL,
    section TEXT NOT NULL, key TEXT NOT NULL, action TEXT NOT NULL, old TEXT, new TEXT, note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_item ON audit (section, key, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_DEVICE = TypeAdapter(Device)


@dataclass(frozen=True, slots=True)
class Edit:
    """One item's change: ``create``, ``replace`` or ``retire``, with its body before and after."""

    section: str
    key: str
    action: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None


class VersionConflict(GridgateError):
    """The registry database moved on since a change was planned."""


def _point_json(point: Point, dumped: dict[int, str]) -> str:
    key = id(point)
    if key not in dumped:
        dumped[key] = point.model_dump_json(by_alias=True, exclude_unset=True)
    return dumped[key]


def _json(value: object) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class RegisterStore:
    """Reads and writes ``registry.db``; thread-safe (one lock), used from a worker thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = open_wal(self.path, SCHEMA, "the registry database")
        # read at start and on a change, seldom: a small page cache (SQLite's default keeps up to
        # 2 MB of a seed's pages for the life of the gateway)
        self._db.execute("PRAGMA cache_size = -256")

    def close(self) -> None:
        self._db.close()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def version(self) -> int:
        with self._lock:
            return int(self._meta("version") or 0)

    @property
    def file_digest(self) -> str | None:
        with self._lock:
            return self._meta("file_digest")

    @property
    def items_digest(self) -> str | None:
        """The digest of the items in service (:func:`gateway.register.document.digest`)."""
        with self._lock:
            return self._meta("items_digest")

    @property
    def edited_since_file(self) -> bool:
        """Whether a change other than taking the file was made since the file was last taken."""
        with self._lock:
            return self._meta("edited") == "1"

    def items(self) -> Items:
        """The items in service, per section, in the order they were added."""
        out: Items = {s: [] for s in SECTIONS}
        with self._lock:
            rows = self._db.execute("SELECT section, body FROM items WHERE retired_at IS NULL ORDER BY pos")
            for section, body in rows:
                out[section].append(orjson.loads(body))
        return out

    def item(self, section: str, key: str) -> tuple[dict[str, Any], int | None] | None:
        """An item (retired or not) and when it was retired (epoch ms), or None."""
        with self._lock:
            row = self._db.execute("SELECT body, retired_at FROM items WHERE section = ? AND key = ?",
                                   (section, key)).fetchone()
        return None if row is None else (orjson.loads(row[0]), row[1])

    def retired(self, section: str) -> list[tuple[dict[str, Any], int]]:
        with self._lock:
            rows = self._db.execute("SELECT body, retired_at FROM items WHERE section = ? AND retired_at IS NOT NULL"
                                    " ORDER BY pos", (section,)).fetchall()
        return [(orjson.loads(b), int(at)) for b, at in rows]

    def layout(self, live: tuple[set[str], set[str]] = (set(), set())) -> Layout:
        """The numbers of every sensor and device ever registered, with what they last were; for the
        ``live`` devices and sensors (ids) only the numbers: :meth:`Layout.assign` of the
        configuration in service fills in what they are (and no second copy of them is made)."""
        layout = Layout()
        skip, skip_sensors = live
        memo: dict = {}  # equal points of retired devices share one object, as in a configuration
        with self._lock:
            for idx, did, body in self._db.execute("SELECT idx, device_id, body FROM devices ORDER BY idx"):
                layout.devices[did] = int(idx)
                if did not in skip:
                    layout.device_configs[did] = _DEVICE.validate_python(orjson.loads(body), context={"points": memo})
            for idx, sid, point in self._db.execute("SELECT idx, sensor_id, point FROM sensors ORDER BY idx"):
                layout.sensors[sid] = int(idx)
                if sid not in skip_sensors:
                    layout.points[sid] = Point.model_validate(orjson.loads(point), context={"points": memo})
        return layout

    def commit(self, edits: Iterable[Edit], layout: Layout, devices: Iterable[str], actor: str, now_ms: int,
               note: str = "", *, from_file: str | None = None, expect: int | None = None,
               items_digest: str | None = None) -> int:
        """Write ``edits`` with the numbers of ``devices`` (and their sensors) from ``layout``, audited,
        as one transaction; return the new version. ``from_file``: the change takes the configuration
        file's registry, whose digest this is. ``expect``: the version the change was planned on;
        :class:`VersionConflict` if another process changed the registry since."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                version = int(self._meta("version") or 0) + 1
                if expect is not None and version != expect + 1:
                    raise VersionConflict(f"the registry is at version {version - 1} now, not {expect}: "
                                          "it was changed meanwhile (another gateway command?); try again")
                wrote = 0
                for e in edits:
                    wrote += 1
                    if e.action == "retire":
                        db.execute("UPDATE items SET retired_at = ?, changed_at = ?, version = ? WHERE section = ?"
                                   " AND key = ?", (now_ms, now_ms, version, e.section, e.key))
                    else:
                        db.execute("INSERT INTO items (section, key, body, retired_at, changed_at, version)"
                                   " VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT (section, key) DO UPDATE SET"
                                   " body = excluded.body, retired_at = NULL, changed_at = excluded.changed_at,"
                                   " version = excluded.version",
                                   (e.section, e.key, _json(e.new), now_ms, version))
                    db.execute("INSERT INTO audit (at, actor, version, section, key, action, old, new, note)"
                               " VALUES (?,?,?,?,?,?,?,?,?)",
                               (now_ms, actor, version, e.section, e.key, e.action, _json(e.old), _json(e.new), note))
                touched = set(devices)
                # rows made as they are written (a seed of 30,000 sensors never holds them all at once)
                db.executemany("INSERT OR REPLACE INTO devices (idx, device_id, body) VALUES (?, ?, ?)",
                               ((layout.devices[did], did,
                                 layout.device_configs[did].model_dump_json(by_alias=True, exclude_unset=True))
                                for did in touched))
                dumped: dict[int, str] = {}  # equal points share one object, and one dump
                db.executemany("INSERT OR REPLACE INTO sensors (idx, sensor_id, point) VALUES (?, ?, ?)",
                               ((idx, sid, _point_json(layout.points[sid], dumped))
                                for sid, idx in layout.sensors.items() if sid.rpartition("/")[0] in touched))
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('version', ?)", (str(version),))
                if items_digest is not None:
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('items_digest', ?)", (items_digest,))
                else:  # not known: the next start compares the items themselves
                    db.execute("DELETE FROM meta WHERE key = 'items_digest'")
                if from_file is not None:
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('file_digest', ?)", (from_file,))
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('edited', '0')")
                elif wrote:
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('edited', '1')")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return version

    def audit(self, section: str | None = None, key: str | None = None, limit: int = 100,
              before: int | None = None) -> list[dict[str, Any]]:
        """The newest audit entries first, optionally of one section or one item."""
        where, args = ["1"], []
        if section is not None:
            where.append("section = ?")
            args.append(section)
        if key is not None:
            where.append("key = ?")
            args.append(key)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        sql = (f"SELECT id, at, actor, version, section, key, action, old, new, note FROM audit"
               f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [{"id": r[0], "at": r[1], "actor": r[2], "version": r[3], "section": r[4], "key": r[5],
                 "action": r[6], "old": None if r[7] is None else orjson.loads(r[7]),
                 "new": None if r[8] is None else orjson.loads(r[8]), "note": r[9]} for r in rows]
