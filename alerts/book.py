"""The alarm book: every alarm and every step of its life, persisted in SQLite, nothing deleted.

The book turns the detector's transitions and the collectors' device status into alarms and
events, applying the lifecycle table of :mod:`alerts.model`. Each event gets an id that increases
across the whole book, which is what a live-stream client resumes from. The book also answers the
API's queries (alarms by filter, events since an id, an alarm's history) within a set of
enterprises, the caller's scope.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterable
from pathlib import Path

import orjson

from alerts.detector import FAULT, LEVEL_NAMES, Transitions
from alerts.model import ACKED, ACTIVE_STATES, EVENT_TYPES, NORMAL, TRANSITIONS, UNACK, Alarm, AlarmEvent
from alerts.routing import recipients_of
from gateway.errors import AlarmError, UnknownAlarm
from gateway.registry import DeviceInfo, Registry
from gateway.store import open_wal

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
"""
COLUMNS = [f for f in Alarm.__slots__]  # type: ignore[attr-defined]


def _row_to_alarm(row: sqlite3.Row | tuple) -> Alarm:
    return Alarm(*row)


class AlarmBook:
    """Alarms and their events in one SQLite file (WAL)."""

    def __init__(self, path: str | Path, registry: Registry) -> None:
        self.registry = registry
        self._db = open_wal(path, SCHEMA, "the alarm book")
        self._lock = threading.Lock()  # the API may read from worker threads
        self._open: dict[tuple[str, str], int] = {}  # (sensor_id, kind) -> alarm id not yet normal
        cols = ", ".join(COLUMNS)
        for row in self._db.execute(f"SELECT {cols} FROM alarms WHERE state != ?", (NORMAL,)):
            a = _row_to_alarm(row)
            self._open[(a.sensor_id, a.kind)] = a.id
        self.raised = 0

    def close(self) -> None:
        self._db.close()

    # -- writing -------------------------------------------------------------------------------

    def apply(self, tr: Transitions) -> list[AlarmEvent]:
        """Record the detector's transitions; return the events they made, in order."""
        events: list[AlarmEvent] = []
        if not len(tr):
            return events
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for i in range(len(tr)):
                    events.extend(self._apply_one(tr, i))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return events

    def _apply_one(self, tr: Transitions, i: int) -> list[AlarmEvent]:
        info = self.registry.sensors[int(tr.sensor[i])]
        ts_ms = int(tr.ts[i]) // 1_000_000
        value, peak = float(tr.value[i]), float(tr.peak[i])
        old, new = int(tr.old[i]), int(tr.new[i])
        if int(tr.condition[i]) == FAULT:
            if new:
                return [self._raise(info.sensor_id, "fault", "fault", value, value, ts_ms,
                                    info.enterprise, info.device, info.key, info.unit,
                                    "fault quality or outside the measuring range")]
            return self._clear(info.sensor_id, "fault", value, ts_ms)
        out: list[AlarmEvent] = []
        if old != 0 and (new == 0 or (old > 0) != (new > 0)):
            out += self._clear(info.sensor_id, "process", value, ts_ms)
            old = 0
        if new == 0:
            return out
        if old == 0:
            out.append(self._raise(info.sensor_id, "process", LEVEL_NAMES[new], value, peak, ts_ms,
                                   info.enterprise, info.device, info.key, info.unit, None))
        else:
            step = "rise" if abs(new) > abs(old) else "lower"
            out += self._step(info.sensor_id, "process", step, LEVEL_NAMES[new], value, peak, ts_ms)
        return out

    def communication(self, device: DeviceInfo, online: bool, ts_ns: int, level: str,
                      reason: str) -> list[AlarmEvent]:
        """A device went offline or stale (``online=False``), or came back."""
        ts_ms = ts_ns // 1_000_000
        with self._lock:
            self._db.execute("BEGIN")
            try:
                if online:
                    out = self._clear(device.device_id, "communication", None, ts_ms)
                elif (device.device_id, "communication") in self._open and self._get_open(
                    device.device_id, "communication"
                ).active:
                    out = []
                else:
                    out = [self._raise(device.device_id, "communication", level, None, None, ts_ms,
                                       device.enterprise, device.id, None, "", reason)]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return out

    def system(self, key: str, active: bool, ts_ns: int, level: str, value: float | None,
               reason: str) -> list[AlarmEvent]:
        """A condition of the gateway itself (``data_loss``, a store failing), not of an enterprise.

        Raised once when it starts (later reports while it lasts update its value and reason, and
        make no new event), cleared when it ends. It belongs to no enterprise, so only an admin sees it.
        """
        sensor_id = f"gateway/{key}"
        ts_ms = ts_ns // 1_000_000
        with self._lock:
            self._db.execute("BEGIN")
            try:
                open_id = self._open.get((sensor_id, "system"))
                if not active:
                    out = self._clear(sensor_id, "system", None, ts_ms)
                elif open_id is not None and self._state(open_id) in (UNACK, ACKED):
                    self._db.execute("UPDATE alarms SET value = ?, reason = ?, updated_at = ? WHERE id = ?",
                                     (value, reason, ts_ms, open_id))
                    out = []
                else:
                    out = [self._raise(sensor_id, "system", level, value, value, ts_ms, "", key, None, "", reason)]
                    self._db.execute("UPDATE alarms SET reason = ? WHERE id = ?", (reason, out[0].alarm.id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return out

    def acknowledge(self, alarm_id: int, actor: str, note: str, now_ms: int,
                    enterprises: Collection[str] | None = None) -> AlarmEvent:
        """An officer acknowledges an alarm; refused when the lifecycle does not allow it."""
        with self._lock:
            alarm = self._get(alarm_id, enterprises)
            nxt = TRANSITIONS.get((alarm.state, "ack"))
            if nxt is None:
                raise AlarmError(f"alarm {alarm_id} is {alarm.state}: nothing to acknowledge")
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "UPDATE alarms SET state = ?, acked_at = ?, acked_by = ?, ack_note = ?, updated_at = ?"
                    " WHERE id = ?", (nxt, now_ms, actor, note, now_ms, alarm_id))
                if nxt == NORMAL:
                    self._open.pop((alarm.sensor_id, alarm.kind), None)
                ev = self._event(alarm_id, "ack", now_ms, actor, note)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ev

    def _raise(self, sensor_id: str, kind: str, level: str, value: float | None, peak: float | None,
               ts_ms: int, enterprise: str, device: str, point: str | None, unit: str,
               reason: str | None) -> AlarmEvent:
        key = (sensor_id, kind)
        existing = self._open.get(key)
        if existing is not None:  # returned-to-normal, never acknowledged: the same alarm comes back
            self._db.execute(
                "UPDATE alarms SET state = ?, level = ?, value = ?, peak = ?, cleared_at = NULL,"
                " updated_at = ?, reason = COALESCE(?, reason) WHERE id = ?",
                (TRANSITIONS[(self._state(existing), "raise")], level, value, peak, ts_ms, reason, existing))
            return self._event(existing, "raise", ts_ms, None, None)
        grid = self.registry.enterprises[enterprise].grid if enterprise else ""
        cur = self._db.execute(
            "INSERT INTO alarms (sensor_id, enterprise, device, point, grid, kind, level, value, peak,"
            " unit, state, raised_at, updated_at, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (sensor_id, enterprise, device, point, grid, kind, level, value, peak, unit,
             TRANSITIONS[(NORMAL, "raise")], ts_ms, ts_ms, reason))
        alarm_id = int(cur.lastrowid or 0)
        self._open[key] = alarm_id
        self.raised += 1
        return self._event(alarm_id, "raise", ts_ms, None, None)

    def _step(self, sensor_id: str, kind: str, step: str, level: str, value: float, peak: float,
              ts_ms: int) -> list[AlarmEvent]:
        alarm_id = self._open.get((sensor_id, kind))
        if alarm_id is None:
            return []
        state = self._state(alarm_id)
        nxt = TRANSITIONS.get((state, step))
        if nxt is None:  # e.g. a rise while returned-to-normal: treat as a new raise of that alarm
            nxt = TRANSITIONS[(state, "raise")] if (state, "raise") in TRANSITIONS else state
        self._db.execute("UPDATE alarms SET state = ?, level = ?, value = ?, peak = ?, updated_at = ?"
                         " WHERE id = ?", (nxt, level, value, peak, ts_ms, alarm_id))
        return [self._event(alarm_id, step, ts_ms, None, None)]

    def _clear(self, sensor_id: str, kind: str, value: float | None, ts_ms: int) -> list[AlarmEvent]:
        key = (sensor_id, kind)
        alarm_id = self._open.get(key)
        if alarm_id is None:
            return []
        state = self._state(alarm_id)
        nxt = TRANSITIONS.get((state, "clear"))
        if nxt is None:  # already returned to normal
            return []
        # The value that cleared it is recorded; a communication alarm has none and keeps NULL.
        self._db.execute("UPDATE alarms SET state = ?, cleared_at = ?, updated_at = ?, value = COALESCE(?, value)"
                         " WHERE id = ?", (nxt, ts_ms, ts_ms, value, alarm_id))
        if nxt == NORMAL:
            del self._open[key]
        return [self._event(alarm_id, "clear", ts_ms, None, None)]

    def _event(self, alarm_id: int, step: str, ts_ms: int, actor: str | None, note: str | None,
               recipients: tuple[str, ...] | None = None) -> AlarmEvent:
        alarm = self._get(alarm_id, None)
        if recipients is None:
            recipients = recipients_of(self.registry, alarm.enterprise)
        kind = EVENT_TYPES.get(step, step)
        snapshot = orjson.dumps(alarm.to_dict())
        cur = self._db.execute(
            "INSERT INTO events (alarm_id, type, ts, enterprise, actor, note, recipients, snapshot)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (alarm_id, kind, ts_ms, alarm.enterprise, actor, note, orjson.dumps(list(recipients)).decode(), snapshot))
        return AlarmEvent(int(cur.lastrowid or 0), kind, ts_ms, alarm, actor, note, recipients)

    def record(self, alarm_id: int, kind: str, ts_ms: int, note: str, recipients: tuple[str, ...]) -> AlarmEvent:
        """An event that changes no state (``escalated``): audited like every other step."""
        with self._lock:
            return self._event(alarm_id, kind, ts_ms, "gateway", note, recipients)

    def _state(self, alarm_id: int) -> str:
        return self._db.execute("SELECT state FROM alarms WHERE id = ?", (alarm_id,)).fetchone()[0]

    def _get_open(self, sensor_id: str, kind: str) -> Alarm:
        return self._get(self._open[(sensor_id, kind)], None)

    def _get(self, alarm_id: int, enterprises: Collection[str] | None) -> Alarm:
        row = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
        if row is None or (enterprises is not None and row[2] not in enterprises):
            raise UnknownAlarm(f"alarm {alarm_id} not found")
        return _row_to_alarm(row)

    # -- reading -------------------------------------------------------------------------------

    def get(self, alarm_id: int, enterprises: Collection[str] | None = None) -> Alarm:
        with self._lock:
            return self._get(alarm_id, enterprises)

    def list_alarms(self, enterprises: Collection[str] | None, *, state: str | None = None,
                    grid: str | None = None, enterprise: str | None = None, since_ms: int | None = None,
                    limit: int = 100, offset: int = 0) -> list[Alarm]:
        """Alarms newest first within ``enterprises`` (None: all), filtered and paged."""
        where, args = self._scope(enterprises)
        if state == "active":
            where.append(f"state IN ({', '.join('?' * len(ACTIVE_STATES))})")
            args.extend(ACTIVE_STATES)
        elif state is not None:
            where.append("state = ?")
            args.append(state)
        for col, val in (("grid", grid), ("enterprise", enterprise)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if since_ms is not None:
            where.append("updated_at >= ?")
            args.append(since_ms)
        sql = f"SELECT {', '.join(COLUMNS)} FROM alarms"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY raised_at DESC, id DESC LIMIT ? OFFSET ?"
        with self._lock:
            return [_row_to_alarm(r) for r in self._db.execute(sql, (*args, limit, offset))]

    def events_since(self, last_id: int, enterprises: Collection[str] | None,
                     limit: int = 1000) -> list[AlarmEvent]:
        """Events after ``last_id`` within ``enterprises``, oldest first: what a resuming client missed."""
        where, args = self._scope(enterprises)
        where.append("id > ?")
        sql = ("SELECT id, type, ts, actor, note, recipients, snapshot FROM events WHERE "
               + " AND ".join(where) + " ORDER BY id LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, (*args, last_id, limit)).fetchall()
        return [self._row_to_event(r) for r in rows]

    def history(self, alarm_id: int, enterprises: Collection[str] | None = None) -> list[AlarmEvent]:
        self.get(alarm_id, enterprises)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, type, ts, actor, note, recipients, snapshot FROM events WHERE alarm_id = ?"
                " ORDER BY id", (alarm_id,)).fetchall()
        return [self._row_to_event(r) for r in rows]

    def last_event_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def open_alarms(self) -> list[Alarm]:
        return self.list_alarms(None, state="active", limit=100000)

    @staticmethod
    def _row_to_event(r: tuple) -> AlarmEvent:
        alarm = Alarm(**orjson.loads(r[6]))
        return AlarmEvent(r[0], r[1], r[2], alarm, r[3], r[4], tuple(orjson.loads(r[5])))

    @staticmethod
    def _scope(enterprises: Iterable[str] | None) -> tuple[list[str], list[object]]:
        if enterprises is None:
            return [], []
        ents = sorted(enterprises)
        if not ents:
            return ["0"], []
        return [f"enterprise IN ({', '.join('?' * len(ents))})"], list(ents)



