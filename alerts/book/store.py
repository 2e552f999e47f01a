"""The alarm book's store: one SQLite file (WAL), its schema and migrations, and what every part
of the book shares over it.

:class:`BookStore` holds the connection, the lock every read and write takes (the API reads from
worker threads), the transaction (nested ones join the outer), the consumers' cursors, and the
state the book keeps in memory beside its tables: the open alarm of each condition, the devices in
maintenance and the sensors suppressed by design. It turns rows into :class:`~alerts.model.Alarm`
and :class:`~alerts.model.AlarmEvent` values and appends events, each with an id that increases
across the whole book, which is what a live-stream client resumes from.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import fields, replace
from pathlib import Path

import orjson

from alerts.model import ACKED, CLOSED, EVENT_TYPES, NORMAL, SUPPRESSED, UNACK, Alarm, AlarmEvent, next_state
from alerts.routing import recipients_of
from alerts.scope import ScopeArg, scope_sql
from gateway.errors import AlarmError, UnknownAlarm
from gateway.registry import Registry
from gateway.sqlite import open_wal

# Steps after which an alarm is unacknowledged (again): its escalation clock starts.
RESTART_STEPS = frozenset({"raise", "rise", "unshelve", "unsuppress", "restore"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL, enterprise TEXT NOT NULL, device TEXT NOT NULL,
    point TEXT, grid TEXT NOT NULL, kind TEXT NOT NULL, level TEXT NOT NULL, value REAL, peak REAL,
    unit TEXT NOT NULL, state TEXT NOT NULL, raised_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    cleared_at INTEGER, acked_at INTEGER, acked_by TEXT, ack_note TEXT, reason TEXT
);
CREATE INDEX IF NOT EXISTS alarms_enterprise ON alarms (enterprise, raised_at);
CREATE INDEX IF NOT EXISTS alarms_state ON alarms (state);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    type TEXT NOT NULL, ts INTEGER NOT NULL, enterprise TEXT NOT NULL, actor TEXT, note TEXT,
    recipients TEXT NOT NULL, snapshot BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_alarm ON events (alarm_id);
CREATE TABLE IF NOT EXISTS maintenance (
    device_id TEXT PRIMARY KEY, since INTEGER NOT NULL, until INTEGER, actor TEXT NOT NULL, note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS suppression (
    sensor_id TEXT PRIMARY KEY, since INTEGER NOT NULL, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    alarm_id INTEGER PRIMARY KEY REFERENCES alarms (id), location TEXT, contact TEXT, client TEXT
);
CREATE TABLE IF NOT EXISTS report_additions (
    event_id INTEGER PRIMARY KEY REFERENCES events (id), alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    location TEXT, contact TEXT, client TEXT
);
CREATE INDEX IF NOT EXISTS report_additions_alarm ON report_additions (alarm_id);
CREATE TABLE IF NOT EXISTS cursors (consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""
# Columns added after the first release: added to an older book when it is opened.
ADDED_COLUMNS = {
    "alarms": [("in_alarm", "INTEGER NOT NULL DEFAULT 1"), ("case_state", "TEXT NOT NULL DEFAULT 'open'"),
               ("department", "TEXT"), ("shelved_until", "INTEGER"), ("closed_at", "INTEGER"),
               ("closed_by", "TEXT"), ("linked_to", "INTEGER"), ("chattering", "INTEGER NOT NULL DEFAULT 0"),
               ("unacked_since", "INTEGER"), ("escalations", "INTEGER NOT NULL DEFAULT 0")],
    "events": [("grid", "TEXT NOT NULL DEFAULT ''"), ("push", "INTEGER")],
}
INDEXES = """
CREATE INDEX IF NOT EXISTS alarms_case ON alarms (case_state);
CREATE INDEX IF NOT EXISTS alarms_grid ON alarms (grid, raised_at);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""
# Alarm field -> column (the dataclass says ``case``, SQL says ``case_state``: CASE is a keyword).
COLUMNS = ["case_state" if f.name == "case" else f.name for f in fields(Alarm)]
SELECT = f"SELECT {', '.join(COLUMNS)} FROM alarms"
EVENT_COLUMNS = "id, type, ts, actor, note, recipients, snapshot"


def row_to_alarm(row: sqlite3.Row | tuple) -> Alarm:
    a = Alarm(*row)
    return replace(a, in_alarm=bool(a.in_alarm), chattering=bool(a.chattering))


def row_to_event(r: tuple) -> AlarmEvent:
    """An event from the columns of :data:`EVENT_COLUMNS`: the alarm as it was after the step."""
    alarm = Alarm(**orjson.loads(r[6]))
    return AlarmEvent(r[0], r[1], r[2], alarm, r[3], r[4], tuple(orjson.loads(r[5])))


def slot(kind: str, level: str) -> str:
    """Which condition of a sensor an alarm is: a rate alarm lives beside a level alarm, a read
    error beside a fault, and a device's maintenance record beside its communication alarm."""
    if level == "rate_of_change":
        return "rate"
    if level == "read_error":  # the collector cannot read the point: beside the fault its readings show
        return "read"
    return "maintenance" if level == "maintenance" else kind


def next_or_refuse(alarm: Alarm, event: str, condition: bool) -> str:
    """The state the table gives ``alarm`` after ``event``; AlarmError naming the state if none."""
    nxt = next_state(alarm.state, event, condition)
    if nxt is None:
        raise AlarmError(f"alarm {alarm.id} is {alarm.state}: {EVENT_TYPES.get(event, event)} is not allowed")
    return nxt


class BookStore:
    """The book's SQLite file and the in-memory state kept with it; shared by every part of the book."""

    def __init__(self, path: str | Path, registry: Registry) -> None:
        self.registry = registry
        self.db = open_wal(path, SCHEMA, "the alarm book")
        self._migrate()
        self.lock = threading.RLock()  # the API may read from worker threads
        self.open: dict[tuple[str, str], int] = {}  # (sensor_id, slot) -> alarm id not closed
        for row in self.db.execute(f"{SELECT} WHERE case_state != ?", (CLOSED,)):
            a = row_to_alarm(row)
            self.open[(a.sensor_id, slot(a.kind, a.level))] = a.id
        # device id -> out of service (maintenance); sensor id -> suppressed by design. Suppression
        # is kept in its own table (a book older than that table: the sensors of suppressed alarms).
        self.maintenance: dict[str, tuple[int | None, str]] = {
            r[0]: (r[1], r[2]) for r in self.db.execute("SELECT device_id, until, note FROM maintenance")}
        self.suppressed: set[str] = {r[0] for r in self.db.execute("SELECT sensor_id FROM suppression")} | {
            r[0] for r in self.db.execute("SELECT DISTINCT sensor_id FROM alarms WHERE state = ? AND case_state != ?",
                                          (SUPPRESSED, CLOSED))}
        self.raised = 0
        self.refused = 0  # detector transitions the tables refused (should stay 0)

    def _migrate(self) -> None:
        added = set()
        for table, cols in ADDED_COLUMNS.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for name, decl in cols:
                if name not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                    added.add(name)
        if "case_state" in added:
            # A book of the first release had no cases: a normal alarm was finished (closed now), and
            # the condition was active exactly in the two active states.
            self.db.execute("UPDATE alarms SET in_alarm = state IN (?, ?)", (UNACK, ACKED))
            self.db.execute("UPDATE alarms SET case_state = ?, closed_at = updated_at, closed_by = 'migration'"
                            " WHERE state = ?", (CLOSED, NORMAL))
        if "unacked_since" in added:
            # Before the book kept the escalation clock it was read from the history: the last raise
            # or rise, and the steps escalated since then.
            self.db.execute(
                "UPDATE alarms SET unacked_since = COALESCE((SELECT MAX(ts) FROM events e WHERE e.alarm_id = alarms.id"
                " AND e.type IN ('raised', 'rose')), raised_at) WHERE state = ?", (UNACK,))
            self.db.execute(
                "UPDATE alarms SET escalations = (SELECT COUNT(*) FROM events e WHERE e.alarm_id = alarms.id"
                " AND e.type = 'escalated' AND e.ts >= alarms.unacked_since) WHERE state = ?", (UNACK,))
        self.db.executescript(INDEXES)

    def close(self) -> None:
        self.db.close()

    def tx(self) -> Transaction:
        """``with store.tx():`` one transaction under the lock (nested: joins the outer)."""
        return Transaction(self)

    # -- consumers' cursors ------------------------------------------------------------------------

    def cursor(self, consumer: str) -> int | None:
        """The last outbox batch ``consumer`` (the detector) evaluated into this book, None if never."""
        with self.lock:
            row = self.db.execute("SELECT seq FROM cursors WHERE consumer = ?", (consumer,)).fetchone()
        return None if row is None else int(row[0])

    def set_cursor(self, consumer: str, seq: int) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO cursors (consumer, seq) VALUES (?, ?)", (consumer, seq))

    @contextlib.contextmanager
    def evaluating(self, consumer: str, seq: int) -> Iterator[None]:
        """One transaction for everything a batch of the outbox changes in the book, ending with the
        consumer's cursor at ``seq``: the batch counts as evaluated exactly when its changes are
        committed, so a crash replays it whole or not at all."""
        with self.tx():
            yield
            self.db.execute("INSERT OR REPLACE INTO cursors (consumer, seq) VALUES (?, ?)", (consumer, seq))

    def mark_pushed(self, pushed: Iterable[int], held: Iterable[int]) -> None:
        """Which events the notifiers push (1) and which the noise monitor or a hidden state held (0);
        an event never marked (the gateway died first) counts as pushed."""
        with self.tx():
            for flag, ids in ((1, list(pushed)), (0, list(held))):
                if ids:
                    self.db.execute(f"UPDATE events SET push = ? WHERE id IN ({', '.join('?' * len(ids))})",
                                    (flag, *ids))

    # -- alarms and events, inside the caller's lock or transaction --------------------------------

    def get(self, alarm_id: int, scope: ScopeArg = None) -> Alarm:
        """The alarm, if it exists and is in ``scope``; UnknownAlarm for either miss alike."""
        where, args = scope_sql(scope)
        row = self.db.execute(f"{SELECT} WHERE id = ? AND {where}", (alarm_id, *args)).fetchone()
        if row is None:
            raise UnknownAlarm(f"alarm {alarm_id} not found")
        return row_to_alarm(row)

    def open_of_device(self, enterprise: str, device: str) -> list[Alarm]:
        rows = self.db.execute(f"{SELECT} WHERE enterprise = ? AND device = ? AND case_state != ?",
                               (enterprise, device, CLOSED)).fetchall()
        return [row_to_alarm(r) for r in rows]

    def open_of_sensor(self, sensor_id: str) -> list[Alarm]:
        rows = self.db.execute(f"{SELECT} WHERE sensor_id = ? AND case_state != ?", (sensor_id, CLOSED)).fetchall()
        return [row_to_alarm(r) for r in rows]

    def recipients(self, alarm: Alarm, ts_ms: int) -> tuple[str, ...]:
        """Who a step of ``alarm`` goes to: its enterprise's officers on duty, or its grid's officers."""
        if alarm.enterprise:
            return recipients_of(self.registry, alarm.enterprise, ts_ms)
        grid = self.registry.grids.get(alarm.grid)
        return tuple(grid.officers) if grid is not None else ()

    def event(self, alarm_id: int, step: str, ts_ms: int, actor: str | None, note: str | None,
              recipients: tuple[str, ...] | None = None) -> AlarmEvent:
        """Append the event of ``step`` with the alarm as it is now (its snapshot), and return it."""
        if step in RESTART_STEPS:  # became unacknowledged (again)? the escalation clock starts
            self.db.execute("UPDATE alarms SET unacked_since = ?, escalations = 0 WHERE id = ? AND state = ?",
                            (ts_ms, alarm_id, UNACK))
        elif step == "escalated":
            self.db.execute("UPDATE alarms SET escalations = escalations + 1 WHERE id = ?", (alarm_id,))
        alarm = self.get(alarm_id)
        if recipients is None:
            recipients = self.recipients(alarm, ts_ms)
        kind = EVENT_TYPES.get(step, step)
        snapshot = orjson.dumps(alarm.to_dict())
        cur = self.db.execute(
            "INSERT INTO events (alarm_id, type, ts, enterprise, grid, actor, note, recipients, snapshot)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (alarm_id, kind, ts_ms, alarm.enterprise, alarm.grid, actor, note,
             orjson.dumps(list(recipients)).decode(), snapshot))
        return AlarmEvent(int(cur.lastrowid or 0), kind, ts_ms, alarm, actor, note, recipients)


class Transaction:
    """``with store.tx():`` one SQLite transaction under the store's lock (nested: joins the outer)."""

    def __init__(self, store: BookStore) -> None:
        self.store = store
        self.outer = False

    def __enter__(self) -> None:
        self.store.lock.acquire()
        self.outer = not self.store.db.in_transaction
        if self.outer:
            self.store.db.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if self.outer:
                self.store.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.store.lock.release()
