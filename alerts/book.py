"""The alarm book: every alarm and every step of its life, persisted in SQLite, nothing deleted.

The book turns the detector's transitions, the collectors' device status, operators' actions and
public reports into alarms and events, applying the tables of :mod:`alerts.model` and nothing
else: a pair the tables do not have raises :class:`~gateway.errors.AlarmError`. Each event gets an
id that increases across the whole book, which is what a live-stream client resumes from.

An alarm is the current alarm of its condition (a sensor's process level, its rate of change, its
fault; a device's communication; a gateway or grid condition) until its case is closed: the
condition coming back before that re-raises the same alarm, after that it opens a new alarm linked
(``linked_to``) to the closed one. Devices in maintenance (out of service) and sensors suppressed
by design keep that state on every alarm of theirs, new ones included, until it ends.

The book also answers the API's queries (alarms by filter, events since an id, an alarm's
history) within a :class:`~alerts.model.Within`, the caller's scope.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator
from dataclasses import fields, replace
from pathlib import Path

import orjson

from alerts.detector import FAULT, LEVEL_NAMES, RATE, Transitions
from alerts.model import (
    ACKED,
    ACTIVE_STATES,
    CASES,
    CLOSED,
    EVENT_TYPES,
    EVERYTHING,
    HIDDEN_STATES,
    NORMAL,
    OUT_OF_SERVICE,
    PRIORITY,
    PRIORITY_NAMES,
    RESOLVED,
    SHELVED,
    SUPPRESSED,
    TRANSITIONS,
    UNACK,
    Alarm,
    AlarmEvent,
    Within,
    next_state,
)
from alerts.routing import recipients_of
from gateway.errors import AlarmError, UnknownAlarm
from gateway.registry import DeviceInfo, Registry
from gateway.sqlite import open_wal

log = logging.getLogger(__name__)
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


def _row_to_alarm(row: sqlite3.Row | tuple) -> Alarm:
    a = Alarm(*row)
    return replace(a, in_alarm=bool(a.in_alarm), chattering=bool(a.chattering))


def _slot(kind: str, level: str) -> str:
    """Which condition of a sensor an alarm is: a rate alarm lives beside a level alarm, and a
    device's maintenance record beside its communication alarm."""
    if level == "rate_of_change":
        return "rate"
    return "maintenance" if level == "maintenance" else kind


def _within(scope: Within | Collection[str] | None) -> Within:
    if scope is None:
        return EVERYTHING
    if isinstance(scope, Within):
        return scope
    return Within(frozenset(scope))


class AlarmBook:
    """Alarms and their events in one SQLite file (WAL)."""

    def __init__(self, path: str | Path, registry: Registry) -> None:
        self.registry = registry
        self._db = open_wal(path, SCHEMA, "the alarm book")
        self._migrate()
        self._lock = threading.RLock()  # the API may read from worker threads
        self._open: dict[tuple[str, str], int] = {}  # (sensor_id, slot) -> alarm id not closed
        for row in self._db.execute(f"{SELECT} WHERE case_state != ?", (CLOSED,)):
            a = _row_to_alarm(row)
            self._open[(a.sensor_id, _slot(a.kind, a.level))] = a.id
        # device id -> out of service (maintenance); sensor id -> suppressed by design. Suppression
        # is kept in its own table (a book older than that table: the sensors of suppressed alarms).
        self.maintenance: dict[str, tuple[int | None, str]] = {
            r[0]: (r[1], r[2]) for r in self._db.execute("SELECT device_id, until, note FROM maintenance")}
        self.suppressed: set[str] = {r[0] for r in self._db.execute("SELECT sensor_id FROM suppression")} | {
            r[0] for r in self._db.execute("SELECT DISTINCT sensor_id FROM alarms WHERE state = ? AND case_state != ?",
                                           (SUPPRESSED, CLOSED))}
        self.raised = 0
        self.refused = 0  # detector transitions the tables refused (should stay 0)

    def _migrate(self) -> None:
        added = set()
        for table, cols in ADDED_COLUMNS.items():
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            for name, decl in cols:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                    added.add(name)
        if "case_state" in added:
            # A book of the first release had no cases: a normal alarm was finished (closed now), and
            # the condition was active exactly in the two active states.
            self._db.execute("UPDATE alarms SET in_alarm = state IN (?, ?)", (UNACK, ACKED))
            self._db.execute("UPDATE alarms SET case_state = ?, closed_at = updated_at, closed_by = 'migration'"
                             " WHERE state = ?", (CLOSED, NORMAL))
        if "unacked_since" in added:
            # Before the book kept the escalation clock it was read from the history: the last raise
            # or rise, and the steps escalated since then.
            self._db.execute(
                "UPDATE alarms SET unacked_since = COALESCE((SELECT MAX(ts) FROM events e WHERE e.alarm_id = alarms.id"
                " AND e.type IN ('raised', 'rose')), raised_at) WHERE state = ?", (UNACK,))
            self._db.execute(
                "UPDATE alarms SET escalations = (SELECT COUNT(*) FROM events e WHERE e.alarm_id = alarms.id"
                " AND e.type = 'escalated' AND e.ts >= alarms.unacked_since) WHERE state = ?", (UNACK,))
        self._db.executescript(INDEXES)

    def close(self) -> None:
        self._db.close()

    # -- the evaluation cursor --------------------------------------------------------------------

    def cursor(self, consumer: str) -> int | None:
        """The last outbox batch ``consumer`` (the detector) evaluated into this book, None if never."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM cursors WHERE consumer = ?", (consumer,)).fetchone()
        return None if row is None else int(row[0])

    def set_cursor(self, consumer: str, seq: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO cursors (consumer, seq) VALUES (?, ?)", (consumer, seq))

    def mark_pushed(self, pushed: Iterable[int], held: Iterable[int]) -> None:
        """Which events the notifiers push (1) and which the noise monitor or a hidden state held (0);
        an event never marked (the gateway died first) counts as pushed."""
        with self._tx():
            for flag, ids in ((1, list(pushed)), (0, list(held))):
                if ids:
                    self._db.execute(f"UPDATE events SET push = ? WHERE id IN ({', '.join('?' * len(ids))})",
                                     (flag, *ids))

    def events_to_push(self, after: int, limit: int) -> list[tuple[int, AlarmEvent | None]]:
        """The events after ``after``, oldest first, each with None in place of one held from the pushes."""
        with self._lock:
            rows = self._db.execute("SELECT id, type, ts, actor, note, recipients, snapshot, push FROM events"
                                    " WHERE id > ? ORDER BY id LIMIT ?", (after, limit)).fetchall()
        return [(r[0], None if r[7] == 0 else self._row_to_event(r)) for r in rows]

    @contextlib.contextmanager
    def evaluating(self, consumer: str, seq: int) -> Iterator[None]:
        """One transaction for everything a batch of the outbox changes in the book, ending with the
        consumer's cursor at ``seq``: the batch counts as evaluated exactly when its changes are
        committed, so a crash replays it whole or not at all."""
        with self._tx():
            yield
            self._db.execute("INSERT OR REPLACE INTO cursors (consumer, seq) VALUES (?, ?)", (consumer, seq))

    # -- the detector and the collectors --------------------------------------------------------

    def apply(self, tr: Transitions) -> list[AlarmEvent]:
        """Record the detector's transitions; return the events they made, in order."""
        if not len(tr):
            return []
        with self._tx():
            events: list[AlarmEvent] = []
            for i in range(len(tr)):
                try:
                    events.extend(self._apply_one(tr, i))
                except AlarmError as exc:  # a bug, not bad input: logged and counted, the pipeline goes on
                    self.refused += 1
                    log.error("alarm book refused a detector transition: %s", exc)
        return events

    def _apply_one(self, tr: Transitions, i: int) -> list[AlarmEvent]:
        info = self.registry.sensors[int(tr.sensor[i])]
        ts_ms = int(tr.ts[i]) // 1_000_000
        value, peak = float(tr.value[i]), float(tr.peak[i])
        old, new = int(tr.old[i]), int(tr.new[i])
        where = (info.enterprise, info.device, info.key, info.unit)
        condition = int(tr.condition[i])
        if condition == FAULT:
            if new:
                return self._raise(info.sensor_id, "fault", "fault", value, value, ts_ms, *where,
                                   "fault quality, a failed 4-20 mA loop, or outside the measuring range")
            return self._clear(info.sensor_id, "fault", "fault", value, ts_ms)
        if condition == RATE:
            if new:
                return self._raise(info.sensor_id, "process", "rate_of_change", value, peak, ts_ms, *where,
                                   f"changing at {peak:.4g} {info.unit}/min")
            return self._clear(info.sensor_id, "process", "rate_of_change", value, ts_ms)
        out: list[AlarmEvent] = []
        if old != 0 and (new == 0 or (old > 0) != (new > 0)):
            out += self._clear(info.sensor_id, "process", LEVEL_NAMES[old], value, ts_ms)
            old = 0
        if new == 0:
            return out
        if old == 0:
            out += self._raise(info.sensor_id, "process", LEVEL_NAMES[new], value, peak, ts_ms, *where, None)
        else:
            step = "rise" if abs(new) > abs(old) else "lower"
            out += self._step(info.sensor_id, step, LEVEL_NAMES[new], value, peak, ts_ms)
        return out

    def communication(self, device: DeviceInfo, online: bool, ts_ns: int, level: str,
                      reason: str) -> list[AlarmEvent]:
        """A device went offline or stale (``online=False``), or came back."""
        ts_ms = ts_ns // 1_000_000
        with self._tx():
            if online:
                return self._clear(device.device_id, "communication", level, None, ts_ms)
            return self._raise(device.device_id, "communication", level, None, None, ts_ms,
                               device.enterprise, device.id, None, "", reason)

    def system(self, key: str, active: bool, ts_ns: int, level: str, value: float | None,
               reason: str) -> list[AlarmEvent]:
        """A condition of the gateway itself (``data_loss``, a store failing), not of an enterprise.

        Raised once when it starts (later reports while it lasts update its value and reason, and
        make no new event), cleared when it ends. It belongs to no enterprise, so only an admin sees it.
        """
        return self._standing(f"gateway/{key}", "", "", key, active, ts_ns // 1_000_000, level, value, reason)

    def flood(self, grid: str, active: bool, ts_ms: int, count: int, reason: str) -> list[AlarmEvent]:
        """A grid in an alarm flood: one alarm for the whole flood, to the grid's officers."""
        return self._standing(f"grid/{grid}/flood", grid, "", "flood", active, ts_ms, "flood", float(count), reason)

    def _standing(self, sensor_id: str, grid: str, enterprise: str, device: str, active: bool, ts_ms: int,
                  level: str, value: float | None, reason: str) -> list[AlarmEvent]:
        with self._tx():
            open_id = self._open.get((sensor_id, "system"))
            if not active:
                if open_id is not None:
                    self._db.execute("UPDATE alarms SET value = COALESCE(?, value), reason = COALESCE(?, reason)"
                                     " WHERE id = ?",
                                     (value, reason or None, open_id))
                return self._clear(sensor_id, "system", level, None, ts_ms)
            if open_id is not None and self._get(open_id).in_alarm:
                self._db.execute("UPDATE alarms SET value = ?, peak = MAX(COALESCE(peak, ?), ?), reason = ?,"
                                 " updated_at = ? WHERE id = ?", (value, value, value, reason, ts_ms, open_id))
                return []
            out = self._raise(sensor_id, "system", level, value, value, ts_ms, enterprise, device, None, "",
                              reason, grid=grid)
            self._db.execute("UPDATE alarms SET reason = ? WHERE id = ?", (reason, out[0].alarm.id))
            return out

    # -- condition changes ----------------------------------------------------------------------

    def _raise(self, sensor_id: str, kind: str, level: str, value: float | None, peak: float | None,
               ts_ms: int, enterprise: str, device: str, point: str | None, unit: str,
               reason: str | None, grid: str | None = None) -> list[AlarmEvent]:
        key = (sensor_id, _slot(kind, level))
        existing = self._open.get(key)
        if existing is not None:  # the case is still open: the same alarm comes back
            alarm = self._get(existing)
            if alarm.in_alarm:
                return []  # already active (a second "offline" of the same device)
            nxt = self._next(alarm, "raise", True)
            self._db.execute(
                "UPDATE alarms SET state = ?, in_alarm = 1, level = ?, value = ?, peak = ?, cleared_at = NULL,"
                " updated_at = ?, reason = COALESCE(?, reason) WHERE id = ?",
                (nxt, level, value, peak, ts_ms, reason, existing))
            return [self._event(existing, "raise", ts_ms, None, None)]
        if grid is None:
            grid = self.registry.enterprises[enterprise].grid if enterprise else ""
        linked = self._db.execute(
            "SELECT MAX(id) FROM alarms WHERE sensor_id = ? AND kind = ? AND case_state = ?"
            " AND (level = 'rate_of_change') = ?", (sensor_id, kind, CLOSED, level == "rate_of_change")).fetchone()[0]
        hidden = self._hidden_state(enterprise, device, sensor_id)
        cur = self._db.execute(
            "INSERT INTO alarms (sensor_id, enterprise, device, point, grid, kind, level, value, peak,"
            " unit, state, raised_at, updated_at, reason, in_alarm, linked_to)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?)",
            (sensor_id, enterprise, device, point, grid, kind, level, value, peak, unit,
             hidden or TRANSITIONS[(NORMAL, "raise")], ts_ms, ts_ms, reason, linked))
        alarm_id = int(cur.lastrowid or 0)
        self._open[key] = alarm_id
        self.raised += 1
        note = f"follows closed alarm {linked}" if linked else None
        return [self._event(alarm_id, "raise", ts_ms, None, note)]

    def _hidden_state(self, enterprise: str, device: str, sensor_id: str) -> str | None:
        if enterprise and f"{enterprise}/{device}" in self.maintenance:
            return OUT_OF_SERVICE
        if sensor_id in self.suppressed:
            return SUPPRESSED
        return None

    def _step(self, sensor_id: str, step: str, level: str, value: float, peak: float,
              ts_ms: int) -> list[AlarmEvent]:
        alarm_id = self._open.get((sensor_id, "process"))
        if alarm_id is None:
            return []
        alarm = self._get(alarm_id)
        if not alarm.in_alarm:  # the detector never steps a cleared alarm; if it does, it is a raise
            return self._raise(sensor_id, "process", level, value, peak, ts_ms, alarm.enterprise, alarm.device,
                               alarm.point, alarm.unit, None)
        nxt = self._next(alarm, step, True)
        self._db.execute("UPDATE alarms SET state = ?, level = ?, value = ?, peak = ?, updated_at = ?"
                         " WHERE id = ?", (nxt, level, value, peak, ts_ms, alarm_id))
        return [self._event(alarm_id, step, ts_ms, None, None)]

    def _clear(self, sensor_id: str, kind: str, level: str, value: float | None, ts_ms: int) -> list[AlarmEvent]:
        alarm_id = self._open.get((sensor_id, _slot(kind, level)))
        if alarm_id is None:
            return []
        alarm = self._get(alarm_id)
        if not alarm.in_alarm:
            return []
        nxt = self._next(alarm, "clear", False)
        # The value that cleared it is recorded; a communication alarm has none and keeps NULL.
        self._db.execute("UPDATE alarms SET state = ?, in_alarm = 0, cleared_at = ?, updated_at = ?,"
                         " value = COALESCE(?, value) WHERE id = ?", (nxt, ts_ms, ts_ms, value, alarm_id))
        return [self._event(alarm_id, "clear", ts_ms, None, None)]

    @staticmethod
    def _next(alarm: Alarm, event: str, condition: bool) -> str:
        nxt = next_state(alarm.state, event, condition)
        if nxt is None:
            raise AlarmError(f"alarm {alarm.id} is {alarm.state}: {EVENT_TYPES.get(event, event)} is not allowed")
        return nxt

    # -- operators' actions ----------------------------------------------------------------------

    def acknowledge(self, alarm_id: int, actor: str, note: str, now_ms: int,
                    scope: Within | Collection[str] | None = None) -> AlarmEvent:
        """An officer acknowledges an alarm; refused when the lifecycle does not allow it."""
        with self._tx():
            alarm = self._get(alarm_id, scope)
            if (alarm.state, "ack") not in TRANSITIONS:
                raise AlarmError(f"alarm {alarm_id} is {alarm.state}: nothing to acknowledge")
            return self._ack(alarm, actor, note, now_ms)

    def _ack(self, alarm: Alarm, actor: str, note: str, now_ms: int) -> AlarmEvent:
        nxt = self._next(alarm, "ack", alarm.in_alarm)
        self._db.execute("UPDATE alarms SET state = ?, acked_at = ?, acked_by = ?, ack_note = ?, updated_at = ?"
                         " WHERE id = ?", (nxt, now_ms, actor, note, now_ms, alarm.id))
        return self._event(alarm.id, "ack", now_ms, actor, note)

    def shelve(self, alarm_id: int, actor: str, reason: str, until_ms: int, now_ms: int,
               scope: Within | Collection[str] | None = None) -> AlarmEvent:
        """Shelve an alarm until ``until_ms`` (it comes back by itself then), with a reason."""
        if not reason.strip():
            raise AlarmError("shelving needs a reason")
        if until_ms <= now_ms:
            raise AlarmError("a shelf must end in the future")
        with self._tx():
            alarm = self._get(alarm_id, scope)
            self._refuse_closed(alarm, "shelve")
            nxt = self._next(alarm, "shelve", alarm.in_alarm)
            self._db.execute("UPDATE alarms SET state = ?, shelved_until = ?, updated_at = ? WHERE id = ?",
                             (nxt, until_ms, now_ms, alarm_id))
            return self._event(alarm_id, "shelve", now_ms, actor, f"{reason} (until {until_ms})")

    def unshelve(self, alarm_id: int, actor: str, note: str, now_ms: int,
                 scope: Within | Collection[str] | None = None) -> AlarmEvent:
        with self._tx():
            alarm = self._get(alarm_id, scope)
            return self._unhide(alarm, "unshelve", actor, note, now_ms)

    def _unhide(self, alarm: Alarm, event: str, actor: str, note: str, now_ms: int) -> AlarmEvent:
        nxt = self._next(alarm, event, alarm.in_alarm)
        # coming back to unacknowledged restarts the escalation clock: the officer sees it afresh
        self._db.execute("UPDATE alarms SET state = ?, shelved_until = NULL, updated_at = ?,"
                         " acked_at = CASE WHEN ? = 'unacknowledged' THEN NULL ELSE acked_at END WHERE id = ?",
                         (nxt, now_ms, nxt, alarm.id))
        return self._event(alarm.id, event, now_ms, actor, note)

    def _hide(self, alarm: Alarm, event: str, actor: str, note: str, now_ms: int) -> AlarmEvent:
        self._db.execute("UPDATE alarms SET state = ?, updated_at = ? WHERE id = ?",
                         (self._next(alarm, event, alarm.in_alarm), now_ms, alarm.id))
        return self._event(alarm.id, event, now_ms, actor, note)

    def expire(self, now_ms: int) -> list[AlarmEvent]:
        """Shelves and maintenance periods that ended by ``now_ms``: their alarms come back."""
        out: list[AlarmEvent] = []
        with self._tx():
            rows = self._db.execute(f"{SELECT} WHERE state = ? AND shelved_until <= ?", (SHELVED, now_ms)).fetchall()
            for row in rows:
                out.append(self._unhide(_row_to_alarm(row), "unshelve", "gateway", "the shelf expired", now_ms))
            for device_id, (until, _) in list(self.maintenance.items()):
                if until is not None and until <= now_ms:
                    out += self._end_maintenance(device_id, "gateway", "the maintenance period ended", now_ms)
        return out

    def set_maintenance(self, device: DeviceInfo, actor: str, note: str, now_ms: int,
                        until_ms: int | None = None) -> list[AlarmEvent]:
        """Take a device out of service: its alarms, and any it raises meanwhile, say so and are not pushed."""
        if not note.strip():
            raise AlarmError("maintenance needs a note: what is being done")
        if until_ms is not None and until_ms <= now_ms:
            raise AlarmError("maintenance must end in the future")
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO maintenance (device_id, since, until, actor, note)"
                             " VALUES (?,?,?,?,?)", (device.device_id, now_ms, until_ms, actor, note))
            self.maintenance[device.device_id] = (until_ms, note)
            out = []
            for alarm in self._open_of_device(device.enterprise, device.id):
                if alarm.state != OUT_OF_SERVICE and alarm.level != "maintenance":
                    out.append(self._hide(alarm, "remove", actor, note, now_ms))
            out.append(self._maintenance_record(device, actor, note, now_ms, until_ms))
            return out

    def _maintenance_record(self, device: DeviceInfo, actor: str, note: str, now_ms: int,
                            until_ms: int | None) -> AlarmEvent:
        """The device's own entry, so that taking it out of service is never silent: an alarm of
        level ``maintenance``, out of service while it lasts, normal after it (the officer verifies
        the device and closes it); its ``out_of_service`` step is pushed to the grid's officers."""
        key = (device.device_id, "maintenance")
        reason = f"in maintenance: {note}" + (f" (until {until_ms})" if until_ms else "")
        existing = self._open.get(key)
        if existing is not None:
            self._db.execute("UPDATE alarms SET state = ?, in_alarm = 1, cleared_at = NULL, reason = ?,"
                             " updated_at = ? WHERE id = ?", (OUT_OF_SERVICE, reason, now_ms, existing))
            return self._event(existing, "remove", now_ms, actor, note)
        grid = self.registry.enterprises[device.enterprise].grid
        cur = self._db.execute(
            "INSERT INTO alarms (sensor_id, enterprise, device, point, grid, kind, level, value, peak, unit, state,"
            " raised_at, updated_at, reason, in_alarm) VALUES (?, ?, ?, NULL, ?, 'communication', 'maintenance',"
            " NULL, NULL, '', ?, ?, ?, ?, 1)",
            (device.device_id, device.enterprise, device.id, grid, OUT_OF_SERVICE, now_ms, now_ms, reason))
        alarm_id = int(cur.lastrowid or 0)
        self._open[key] = alarm_id
        return self._event(alarm_id, "remove", now_ms, actor, note)

    def end_maintenance(self, device: DeviceInfo, actor: str, note: str, now_ms: int) -> list[AlarmEvent]:
        with self._tx():
            if device.device_id not in self.maintenance:
                raise AlarmError(f"device {device.device_id} is not in maintenance")
            return self._end_maintenance(device.device_id, actor, note, now_ms)

    def _end_maintenance(self, device_id: str, actor: str, note: str, now_ms: int) -> list[AlarmEvent]:
        self._db.execute("DELETE FROM maintenance WHERE device_id = ?", (device_id,))
        del self.maintenance[device_id]
        enterprise, _, dev = device_id.partition("/")
        record = self._open.get((device_id, "maintenance"))
        if record is not None:  # its condition, the maintenance, is over
            self._db.execute("UPDATE alarms SET in_alarm = 0, cleared_at = ? WHERE id = ?", (now_ms, record))
        out = []
        for alarm in self._open_of_device(enterprise, dev):
            if alarm.state != OUT_OF_SERVICE:
                continue
            out.append(self._unhide(alarm, "restore", actor, note, now_ms))
            if alarm.sensor_id in self.suppressed:  # the unit is still stopped: suppressed by design again
                out.append(self._hide(out[-1].alarm, "suppress", "gateway", "still suppressed by design", now_ms))
        return out

    def suppress(self, sensor_ids: Iterable[str], on: bool, ts_ms: int, reason: str) -> list[AlarmEvent]:
        """Suppression by design (the unit a point belongs to is shut down), or its end."""
        out: list[AlarmEvent] = []
        with self._tx():
            for sid in sensor_ids:
                if on == (sid in self.suppressed):
                    continue
                (self.suppressed.add if on else self.suppressed.discard)(sid)
                if on:
                    self._db.execute("INSERT OR REPLACE INTO suppression (sensor_id, since, reason) VALUES (?,?,?)",
                                     (sid, ts_ms, reason))
                else:
                    self._db.execute("DELETE FROM suppression WHERE sensor_id = ?", (sid,))
                for alarm in self._open_of_sensor(sid):
                    # an alarm out of service stays so: maintenance outranks design (and ends into it)
                    if on and (alarm.state, "suppress") in TRANSITIONS:
                        out.append(self._hide(alarm, "suppress", "gateway", reason, ts_ms))
                    elif not on and alarm.state == SUPPRESSED:
                        out.append(self._unhide(alarm, "unsuppress", "gateway", reason, ts_ms))
        return out

    def dispatch(self, alarm_id: int, actor: str, department: str, note: str, now_ms: int,
                 scope: Within | Collection[str] | None = None) -> list[AlarmEvent]:
        """Send an alarm's case to the lead or a cooperating department, with a note.

        Dispatching an alarm nobody has acknowledged (unacknowledged, or returned to normal
        unacknowledged) acknowledges it first (two events).
        """
        if not note.strip():
            raise AlarmError("dispatching needs a note: what the department is to do")
        with self._tx():
            alarm = self._get(alarm_id, scope)
            allowed = self._departments_for(alarm)
            if department not in allowed:
                raise AlarmError(f"department {department!r} cannot take alarm {alarm_id}: "
                                 f"it goes to {', '.join(sorted(allowed)) or 'no department'}")
            self._case_next(alarm, "dispatch")
            out = []
            if (alarm.state, "ack") in TRANSITIONS:
                out.append(self._ack(alarm, actor, f"acknowledged on dispatch: {note}", now_ms))
            self._db.execute("UPDATE alarms SET case_state = 'dispatched', department = ?, updated_at = ?"
                             " WHERE id = ?", (department, now_ms, alarm_id))
            out.append(self._event(alarm_id, "dispatch", now_ms, actor, note,
                                   (*self._recipients(alarm, now_ms), f"department:{department}")))
            return out

    def resolve(self, alarm_id: int, actor: str, note: str, now_ms: int,
                scope: Within | Collection[str] | None = None, department: str | None = None) -> list[AlarmEvent]:
        """The department reports back (or the officer handled it on the spot): the case is resolved.

        ``department``, when given, must be the department the case was dispatched to. A public
        report has no condition of its own: resolving it also ends its condition.
        """
        if not note.strip():
            raise AlarmError("resolving needs a note: what was done")
        with self._tx():
            alarm = self._get(alarm_id, scope)
            if department is not None and alarm.department != department:
                raise AlarmError(f"alarm {alarm_id} is not dispatched to department {department!r}")
            self._case_next(alarm, "resolve")
            self._db.execute("UPDATE alarms SET case_state = ?, updated_at = ? WHERE id = ?",
                             (RESOLVED, now_ms, alarm_id))
            out = [self._event(alarm_id, "resolve", now_ms, actor, note)]
            if alarm.kind == "report" and alarm.in_alarm:
                out += self._clear(alarm.sensor_id, "report", "report", None, now_ms)
            return out

    def close_case(self, alarm_id: int, actor: str, note: str, now_ms: int,
                   scope: Within | Collection[str] | None = None) -> AlarmEvent:
        """The officer verifies and closes: the condition must be gone and acknowledged (normal)."""
        with self._tx():
            alarm = self._get(alarm_id, scope)
            self._case_next(alarm, "close")
            if alarm.state != NORMAL:
                raise AlarmError(f"alarm {alarm_id} is {alarm.state}: only a normal alarm (condition gone,"
                                 " acknowledged) can be verified and closed")
            self._db.execute("UPDATE alarms SET case_state = ?, closed_at = ?, closed_by = ?, updated_at = ?"
                             " WHERE id = ?", (CLOSED, now_ms, actor, now_ms, alarm_id))
            key = (alarm.sensor_id, _slot(alarm.kind, alarm.level))
            if self._open.get(key) == alarm_id:
                del self._open[key]
            return self._event(alarm_id, "close", now_ms, actor, note)

    @staticmethod
    def _case_next(alarm: Alarm, action: str) -> str:
        nxt = CASES.get((alarm.case, action))
        if nxt is None:
            hint = " (waiting for the department to report back)" if alarm.case == "dispatched" else ""
            raise AlarmError(f"alarm {alarm.id} is {alarm.case}{hint}: {action} is not allowed")
        return nxt

    @staticmethod
    def _refuse_closed(alarm: Alarm, action: str) -> None:
        if alarm.case == CLOSED:
            raise AlarmError(f"alarm {alarm.id} is closed: {action} is not allowed")

    def _departments_for(self, alarm: Alarm) -> set[str]:
        if alarm.enterprise:
            ent = self.registry.enterprises[alarm.enterprise]
            return {ent.lead_department, *ent.cooperating_departments}
        return set(self.registry.departments)

    def report(self, grid: str, enterprise: str, text: str, location: str | None, contact: str | None,
               client: str, now_ms: int) -> AlarmEvent:
        """A hazard report from the public: an alarm of kind ``report`` routed like any other."""
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO alarms (sensor_id, enterprise, device, point, grid, kind, level, value, peak,"
                " unit, state, raised_at, updated_at, reason, in_alarm) VALUES ('', ?, '', NULL, ?, 'report',"
                " 'report', NULL, NULL, '', ?, ?, ?, ?, 1)", (enterprise, grid, UNACK, now_ms, now_ms, text))
            alarm_id = int(cur.lastrowid or 0)
            sensor_id = f"report/{alarm_id}"
            self._db.execute("UPDATE alarms SET sensor_id = ? WHERE id = ?", (sensor_id, alarm_id))
            self._db.execute("INSERT INTO reports (alarm_id, location, contact, client) VALUES (?,?,?,?)",
                             (alarm_id, location, contact, client))
            self._open[(sensor_id, "report")] = alarm_id
            self.raised += 1
            return self._event(alarm_id, "raise", now_ms, "public", f"location: {location}" if location else None)

    def report_details(self, alarm_id: int) -> dict[str, str | None] | None:
        with self._lock:
            row = self._db.execute("SELECT location, contact FROM reports WHERE alarm_id = ?", (alarm_id,)).fetchone()
        return None if row is None else {"location": row[0], "contact": row[1]}

    def flag_chattering(self, alarm_id: int, ts_ms: int, note: str) -> AlarmEvent | None:
        """Mark an alarm as chattering (once): an event in its history, counted in the statistics."""
        with self._tx():
            alarm = self._get(alarm_id)
            if alarm.chattering:
                return None
            self._db.execute("UPDATE alarms SET chattering = 1 WHERE id = ?", (alarm_id,))
            return self._event(alarm_id, "chattering", ts_ms, "gateway", note)

    def record(self, alarm_id: int, kind: str, ts_ms: int, note: str, recipients: tuple[str, ...]) -> AlarmEvent:
        """An event that changes no state (``escalated``): audited like every other step."""
        with self._lock:
            return self._event(alarm_id, kind, ts_ms, "gateway", note, recipients)

    # -- internals -------------------------------------------------------------------------------

    def _tx(self) -> _Transaction:
        return _Transaction(self)

    def _recipients(self, alarm: Alarm, ts_ms: int) -> tuple[str, ...]:
        if alarm.enterprise:
            return recipients_of(self.registry, alarm.enterprise, ts_ms)
        grid = self.registry.grids.get(alarm.grid)
        return tuple(grid.officers) if grid is not None else ()

    def _event(self, alarm_id: int, step: str, ts_ms: int, actor: str | None, note: str | None,
               recipients: tuple[str, ...] | None = None) -> AlarmEvent:
        if step in RESTART_STEPS:  # became unacknowledged (again)? the escalation clock starts
            self._db.execute("UPDATE alarms SET unacked_since = ?, escalations = 0 WHERE id = ? AND state = ?",
                             (ts_ms, alarm_id, UNACK))
        elif step == "escalated":
            self._db.execute("UPDATE alarms SET escalations = escalations + 1 WHERE id = ?", (alarm_id,))
        alarm = self._get(alarm_id)
        if recipients is None:
            recipients = self._recipients(alarm, ts_ms)
        kind = EVENT_TYPES.get(step, step)
        snapshot = orjson.dumps(alarm.to_dict())
        cur = self._db.execute(
            "INSERT INTO events (alarm_id, type, ts, enterprise, grid, actor, note, recipients, snapshot)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (alarm_id, kind, ts_ms, alarm.enterprise, alarm.grid, actor, note,
             orjson.dumps(list(recipients)).decode(), snapshot))
        return AlarmEvent(int(cur.lastrowid or 0), kind, ts_ms, alarm, actor, note, recipients)

    def _open_of_device(self, enterprise: str, device: str) -> list[Alarm]:
        rows = self._db.execute(f"{SELECT} WHERE enterprise = ? AND device = ? AND case_state != ?",
                                (enterprise, device, CLOSED)).fetchall()
        return [_row_to_alarm(r) for r in rows]

    def _open_of_sensor(self, sensor_id: str) -> list[Alarm]:
        rows = self._db.execute(f"{SELECT} WHERE sensor_id = ? AND case_state != ?", (sensor_id, CLOSED)).fetchall()
        return [_row_to_alarm(r) for r in rows]

    def _get(self, alarm_id: int, scope: Within | Collection[str] | None = None) -> Alarm:
        row = self._db.execute(f"{SELECT} WHERE id = ?", (alarm_id,)).fetchone()
        if row is None:
            raise UnknownAlarm(f"alarm {alarm_id} not found")
        alarm = _row_to_alarm(row)
        if not _within(scope).covers(alarm):
            raise UnknownAlarm(f"alarm {alarm_id} not found")
        return alarm

    # -- reading -------------------------------------------------------------------------------

    def get(self, alarm_id: int, scope: Within | Collection[str] | None = None) -> Alarm:
        with self._lock:
            return self._get(alarm_id, scope)

    def list_alarms(self, scope: Within | Collection[str] | None, *, state: str | None = None,
                    grid: str | None = None, enterprise: str | None = None, since_ms: int | None = None,
                    until_ms: int | None = None, kind: str | None = None, level: str | None = None,
                    case: str | None = None, sensor: str | None = None, priority: str | None = None,
                    limit: int = 100, offset: int = 0) -> list[Alarm]:
        """Alarms newest first within ``scope`` (None: all), filtered and paged.

        ``state`` is a state, ``active`` (unacknowledged, acknowledged or returned unacknowledged)
        or ``hidden`` (shelved, suppressed, out of service); ``case`` a case state or ``open_cases``
        (anything not closed); ``since``/``until`` bound the last change.
        """
        where, args = self._scope(scope)
        groups = {"active": ACTIVE_STATES, "hidden": HIDDEN_STATES}
        if state in groups:
            where.append(f"state IN ({', '.join('?' * len(groups[state]))})")
            args.extend(groups[state])
        elif state is not None:
            where.append("state = ?")
            args.append(state)
        if case == "open_cases":
            where.append("case_state != ?")
            args.append(CLOSED)
        elif case is not None:
            where.append("case_state = ?")
            args.append(case)
        for col, val in (("grid", grid), ("enterprise", enterprise), ("kind", kind), ("level", level),
                         ("sensor_id", sensor)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if priority is not None:
            levels = [lv for lv, p in PRIORITY.items() if PRIORITY_NAMES[p] == priority]
            if priority == "low":
                where.append(f"level NOT IN ({', '.join('?' * len(PRIORITY))})")
                args.extend(PRIORITY)
            else:
                where.append(f"level IN ({', '.join('?' * len(levels))})")
                args.extend(levels)
        if since_ms is not None:
            where.append("updated_at >= ?")
            args.append(since_ms)
        if until_ms is not None:
            where.append("updated_at <= ?")
            args.append(until_ms)
        sql = SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY raised_at DESC, id DESC LIMIT ? OFFSET ?"
        with self._lock:
            return [_row_to_alarm(r) for r in self._db.execute(sql, (*args, limit, offset))]

    def events_since(self, last_id: int, scope: Within | Collection[str] | None,
                     limit: int = 1000) -> list[AlarmEvent]:
        """Events after ``last_id`` within ``scope``, oldest first: what a resuming client missed."""
        where, args = self._scope(scope, events=True)
        where.append("id > ?")
        sql = ("SELECT id, type, ts, actor, note, recipients, snapshot FROM events WHERE "
               + " AND ".join(where) + " ORDER BY id LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, (*args, last_id, limit)).fetchall()
        return [self._row_to_event(r) for r in rows]

    def history(self, alarm_id: int, scope: Within | Collection[str] | None = None) -> list[AlarmEvent]:
        self.get(alarm_id, scope)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, type, ts, actor, note, recipients, snapshot FROM events WHERE alarm_id = ?"
                " ORDER BY id", (alarm_id,)).fetchall()
        return [self._row_to_event(r) for r in rows]

    def read(self, sql: str, args: Iterable[object] = ()) -> list[tuple]:
        """A read-only query over the book's tables (statistics)."""
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

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
    def _scope(scope: Within | Collection[str] | None, events: bool = False) -> tuple[list[str], list[object]]:
        w = _within(scope)
        if w.enterprises is None:
            return [], []
        ors, args = [], []
        ents = sorted(w.enterprises)
        if ents:
            ors.append(f"enterprise IN ({', '.join('?' * len(ents))})")
            args.extend(ents)
        grids = sorted(w.grids)
        if grids:
            ors.append(f"(enterprise = '' AND grid IN ({', '.join('?' * len(grids))}))")
            args.extend(grids)
        if w.department is not None:
            col = "alarm_id" if events else "id"
            ors.append(f"{col} IN (SELECT id FROM alarms WHERE department = ?)")
            args.append(w.department)
        if not ors:
            return ["0"], []
        return ["(" + " OR ".join(ors) + ")"], args


class _Transaction:
    """``with book._tx():`` one SQLite transaction under the book's lock (nested: joins the outer)."""

    def __init__(self, book: AlarmBook) -> None:
        self.book = book
        self.outer = False

    def __enter__(self) -> None:
        self.book._lock.acquire()
        self.outer = not self.book._db.in_transaction
        if self.outer:
            self.book._db.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if self.outer:
                self.book._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.book._lock.release()
