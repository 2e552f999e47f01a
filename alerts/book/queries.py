"""Reading the alarm book: alarms by filter, events since an id, an alarm's history, the events the
notifiers push, and read-only SQL for the statistics.

Every read that takes a scope filters with :func:`alerts.scope.scope_sql`, the one definition of
what a caller may see; an alarm outside the scope is not found, as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from alerts.book.store import EVENT_COLUMNS, SELECT, BookStore, row_to_alarm, row_to_event
from alerts.model import ACTIVE_STATES, CLOSED, HIDDEN_STATES, PRIORITY, PRIORITY_NAMES, Alarm, AlarmEvent
from alerts.scope import ScopeArg, scope_sql

STATE_GROUPS = {"active": ACTIVE_STATES, "hidden": HIDDEN_STATES}


def _in(column: str, values: Collection[object], negate: bool = False) -> str:
    return f"{column} {'NOT IN' if negate else 'IN'} ({', '.join('?' * len(values))})"


def alarm_filter(state: str | None, case: str | None, columns: dict[str, str | None],
                 priority: str | None) -> tuple[list[str], list[object]]:
    """The conditions of :meth:`Queries.list_alarms` other than the scope and the time bounds."""
    where: list[str] = []
    args: list[object] = []
    if state in STATE_GROUPS:
        where.append(_in("state", STATE_GROUPS[state]))
        args.extend(STATE_GROUPS[state])
    elif state is not None:
        where.append("state = ?")
        args.append(state)
    if case == "open_cases":
        where.append("case_state != ?")
        args.append(CLOSED)
    elif case is not None:
        where.append("case_state = ?")
        args.append(case)
    for col, val in columns.items():
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    if priority == "low":
        where.append(_in("level", PRIORITY, negate=True))
        args.extend(PRIORITY)
    elif priority is not None:
        levels = [lv for lv, p in PRIORITY.items() if PRIORITY_NAMES[p] == priority]
        where.append(_in("level", levels))
        args.extend(levels)
    return where, args


class Queries:
    """The read side of the book."""

    def __init__(self, store: BookStore) -> None:
        self.store = store

    def get(self, alarm_id: int, scope: ScopeArg = None) -> Alarm:
        with self.store.lock:
            return self.store.get(alarm_id, scope)

    def list_alarms(self, scope: ScopeArg, *, state: str | None = None,
                    grid: str | None = None, enterprise: str | None = None, since_ms: int | None = None,
                    until_ms: int | None = None, kind: str | None = None, level: str | None = None,
                    case: str | None = None, sensor: str | None = None, priority: str | None = None,
                    limit: int = 100, offset: int = 0) -> list[Alarm]:
        """Alarms newest first within ``scope`` (None: all), filtered and paged.

        ``state`` is a state, ``active`` (unacknowledged, acknowledged or returned unacknowledged)
        or ``hidden`` (shelved, suppressed, out of service); ``case`` a case state or ``open_cases``
        (anything not closed); ``since``/``until`` bound the last change.
        """
        in_scope, args = scope_sql(scope)
        columns = {"grid": grid, "enterprise": enterprise, "kind": kind, "level": level, "sensor_id": sensor}
        where, more = alarm_filter(state, case, columns, priority)
        where.insert(0, in_scope)
        args.extend(more)
        for bound, val in (("updated_at >= ?", since_ms), ("updated_at <= ?", until_ms)):
            if val is not None:
                where.append(bound)
                args.append(val)
        sql = f"{SELECT} WHERE {' AND '.join(where)} ORDER BY raised_at DESC, id DESC LIMIT ? OFFSET ?"
        with self.store.lock:
            return [row_to_alarm(r) for r in self.store.db.execute(sql, (*args, limit, offset))]

    def events_since(self, last_id: int, scope: ScopeArg, limit: int = 1000) -> list[AlarmEvent]:
        """Events after ``last_id`` within ``scope``, oldest first: what a resuming client missed."""
        in_scope, args = scope_sql(scope, "events")
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {in_scope} AND id > ? ORDER BY id LIMIT ?"
        with self.store.lock:
            rows = self.store.db.execute(sql, (*args, last_id, limit)).fetchall()
        return [row_to_event(r) for r in rows]

    def history(self, alarm_id: int, scope: ScopeArg = None) -> list[AlarmEvent]:
        """Every event of one alarm in ``scope``, oldest first (UnknownAlarm outside it)."""
        with self.store.lock:
            self.store.get(alarm_id, scope)
            rows = self.store.db.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE alarm_id = ? ORDER BY id",
                                         (alarm_id,)).fetchall()
        return [row_to_event(r) for r in rows]

    def events_to_push(self, after: int, limit: int) -> list[tuple[int, AlarmEvent | None]]:
        """The events after ``after``, oldest first, each with None in place of one held from the pushes."""
        with self.store.lock:
            rows = self.store.db.execute(f"SELECT {EVENT_COLUMNS}, push FROM events WHERE id > ? ORDER BY id LIMIT ?",
                                         (after, limit)).fetchall()
        return [(r[0], None if r[7] == 0 else row_to_event(r)) for r in rows]

    def report_details(self, alarm_id: int) -> dict[str, Any] | None:
        """A report alarm's first location and contact, and those of the reports added to it since
        (``more``: the event of each, whose note has its text)."""
        with self.store.lock:
            row = self.store.db.execute("SELECT location, contact FROM reports WHERE alarm_id = ?",
                                        (alarm_id,)).fetchone()
            more = self.store.db.execute("SELECT event_id, location, contact FROM report_additions"
                                         " WHERE alarm_id = ? ORDER BY event_id", (alarm_id,)).fetchall()
        if row is None:
            return None
        return {"location": row[0], "contact": row[1],
                "more": [{"event": r[0], "location": r[1], "contact": r[2]} for r in more]}

    def read(self, sql: str, args: Iterable[object] = ()) -> list[tuple]:
        """A read-only query over the book's tables (statistics)."""
        with self.store.lock:
            return self.store.db.execute(sql, tuple(args)).fetchall()

    def last_event_id(self) -> int:
        with self.store.lock:
            return int(self.store.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def open_alarms(self) -> list[Alarm]:
        return self.list_alarms(None, state="active", limit=100000)
