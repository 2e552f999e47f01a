"""What people and the gateway do to alarms: operators' actions, cases, maintenance, public reports.

Acknowledging and shelving follow :data:`~alerts.model.TRANSITIONS`; dispatching, resolving and
closing follow the case table :data:`~alerts.model.CASES`; a pair a table does not have raises
:class:`~gateway.errors.AlarmError` naming the state. An action on an alarm outside the caller's
scope finds no alarm (:class:`~gateway.errors.UnknownAlarm`), as for one that does not exist.
Maintenance takes a device's alarms out of service and keeps a record alarm of its own; shelves
and maintenance periods end by themselves (:meth:`Actions.expire`). Every action is an event with
who, when and the note.
"""

from __future__ import annotations

from alerts.book.store import SELECT, BookStore, next_or_refuse, row_to_alarm, slot
from alerts.book.transitions import Conditions
from alerts.model import CASES, CLOSED, NORMAL, OUT_OF_SERVICE, RESOLVED, SHELVED, TRANSITIONS, UNACK, Alarm, AlarmEvent
from alerts.scope import ScopeArg
from gateway.config import ReportsSection
from gateway.errors import AlarmError
from gateway.registry import DeviceInfo

DEFAULT_REPORT_LIMITS = ReportsSection()


def _case_next(alarm: Alarm, action: str) -> str:
    nxt = CASES.get((alarm.case, action))
    if nxt is None:
        hint = " (waiting for the department to report back)" if alarm.case == "dispatched" else ""
        raise AlarmError(f"alarm {alarm.id} is {alarm.case}{hint}: {action} is not allowed")
    return nxt


def _report_where(location: str | None, about: str | None) -> list[str]:
    """The lines of a report's note that say where: its location, and the enterprise it names when
    the grid's report alarm took it."""
    return ([f"location: {location}"] if location else []) + ([f"about enterprise: {about}"] if about else [])


def _refuse_closed(alarm: Alarm, action: str) -> None:
    if alarm.case == CLOSED:
        raise AlarmError(f"alarm {alarm.id} is closed: {action} is not allowed")


class Actions:
    """The action side of the book: officers, departments, the public and the gateway's timers."""

    def __init__(self, store: BookStore, conditions: Conditions) -> None:
        self.store = store
        self.conditions = conditions

    # -- alarm state: acknowledge, shelve ----------------------------------------------------------

    def acknowledge(self, alarm_id: int, actor: str, note: str, now_ms: int, scope: ScopeArg = None) -> AlarmEvent:
        """An officer acknowledges an alarm; refused when the lifecycle does not allow it."""
        with self.store.tx():
            alarm = self.store.get(alarm_id, scope)
            if (alarm.state, "ack") not in TRANSITIONS:
                raise AlarmError(f"alarm {alarm_id} is {alarm.state}: nothing to acknowledge")
            return self._ack(alarm, actor, note, now_ms)

    def _ack(self, alarm: Alarm, actor: str, note: str, now_ms: int) -> AlarmEvent:
        nxt = next_or_refuse(alarm, "ack", alarm.in_alarm)
        self.store.db.execute("UPDATE alarms SET state = ?, acked_at = ?, acked_by = ?, ack_note = ?, updated_at = ?"
                              " WHERE id = ?", (nxt, now_ms, actor, note, now_ms, alarm.id))
        return self.store.event(alarm.id, "ack", now_ms, actor, note)

    def shelve(self, alarm_id: int, actor: str, reason: str, until_ms: int, now_ms: int,
               scope: ScopeArg = None) -> AlarmEvent:
        """Shelve an alarm until ``until_ms`` (it comes back by itself then), with a reason."""
        if not reason.strip():
            raise AlarmError("shelving needs a reason")
        if until_ms <= now_ms:
            raise AlarmError("a shelf must end in the future")
        with self.store.tx():
            alarm = self.store.get(alarm_id, scope)
            _refuse_closed(alarm, "shelve")
            nxt = next_or_refuse(alarm, "shelve", alarm.in_alarm)
            self.store.db.execute("UPDATE alarms SET state = ?, shelved_until = ?, updated_at = ? WHERE id = ?",
                                  (nxt, until_ms, now_ms, alarm_id))
            return self.store.event(alarm_id, "shelve", now_ms, actor, f"{reason} (until {until_ms})")

    def unshelve(self, alarm_id: int, actor: str, note: str, now_ms: int, scope: ScopeArg = None) -> AlarmEvent:
        with self.store.tx():
            alarm = self.store.get(alarm_id, scope)
            return self.conditions.unhide(alarm, "unshelve", actor, note, now_ms)

    def expire(self, now_ms: int) -> list[AlarmEvent]:
        """Shelves and maintenance periods that ended by ``now_ms``: their alarms come back."""
        out: list[AlarmEvent] = []
        with self.store.tx():
            rows = self.store.db.execute(f"{SELECT} WHERE state = ? AND shelved_until <= ?",
                                         (SHELVED, now_ms)).fetchall()
            for row in rows:
                out.append(self.conditions.unhide(row_to_alarm(row), "unshelve", "gateway", "the shelf expired",
                                                  now_ms))
            for device_id, (until, _) in list(self.store.maintenance.items()):
                if until is not None and until <= now_ms:
                    out += self._end_maintenance(device_id, "gateway", "the maintenance period ended", now_ms)
        return out

    # -- maintenance -------------------------------------------------------------------------------

    def set_maintenance(self, device: DeviceInfo, actor: str, note: str, now_ms: int,
                        until_ms: int | None = None) -> list[AlarmEvent]:
        """Take a device out of service: its alarms, and any it raises meanwhile, say so and are not pushed."""
        if not note.strip():
            raise AlarmError("maintenance needs a note: what is being done")
        if until_ms is not None and until_ms <= now_ms:
            raise AlarmError("maintenance must end in the future")
        with self.store.tx():
            self.store.db.execute("INSERT OR REPLACE INTO maintenance (device_id, since, until, actor, note)"
                                  " VALUES (?,?,?,?,?)", (device.device_id, now_ms, until_ms, actor, note))
            self.store.maintenance[device.device_id] = (until_ms, note)
            out = []
            for alarm in self.store.open_of_device(device.enterprise, device.id):
                if alarm.state != OUT_OF_SERVICE and alarm.level != "maintenance":
                    out.append(self.conditions.hide(alarm, "remove", actor, note, now_ms))
            out.append(self._maintenance_record(device, actor, note, now_ms, until_ms))
            return out

    def _maintenance_record(self, device: DeviceInfo, actor: str, note: str, now_ms: int,
                            until_ms: int | None) -> AlarmEvent:
        """The device's own entry, so that taking it out of service is never silent: an alarm of
        level ``maintenance``, out of service while it lasts, normal after it (the officer verifies
        the device and closes it); its ``out_of_service`` step is pushed to the grid's officers."""
        store = self.store
        key = (device.device_id, "maintenance")
        reason = f"in maintenance: {note}" + (f" (until {until_ms})" if until_ms else "")
        existing = store.open.get(key)
        if existing is not None:
            store.db.execute("UPDATE alarms SET state = ?, in_alarm = 1, cleared_at = NULL, reason = ?,"
                             " updated_at = ? WHERE id = ?", (OUT_OF_SERVICE, reason, now_ms, existing))
            return store.event(existing, "remove", now_ms, actor, note)
        grid = store.registry.enterprises[device.enterprise].grid
        cur = store.db.execute(
            "INSERT INTO alarms (sensor_id, enterprise, device, point, grid, kind, level, value, peak, unit, state,"
            " raised_at, updated_at, reason, in_alarm) VALUES (?, ?, ?, NULL, ?, 'communication', 'maintenance',"
            " NULL, NULL, '', ?, ?, ?, ?, 1)",
            (device.device_id, device.enterprise, device.id, grid, OUT_OF_SERVICE, now_ms, now_ms, reason))
        alarm_id = int(cur.lastrowid or 0)
        store.open[key] = alarm_id
        return store.event(alarm_id, "remove", now_ms, actor, note)

    def end_maintenance(self, device: DeviceInfo, actor: str, note: str, now_ms: int) -> list[AlarmEvent]:
        with self.store.tx():
            if device.device_id not in self.store.maintenance:
                raise AlarmError(f"device {device.device_id} is not in maintenance")
            return self._end_maintenance(device.device_id, actor, note, now_ms)

    def _end_maintenance(self, device_id: str, actor: str, note: str, now_ms: int) -> list[AlarmEvent]:
        store = self.store
        store.db.execute("DELETE FROM maintenance WHERE device_id = ?", (device_id,))
        del store.maintenance[device_id]
        enterprise, _, dev = device_id.partition("/")
        record = store.open.get((device_id, "maintenance"))
        if record is not None:  # its condition, the maintenance, is over
            store.db.execute("UPDATE alarms SET in_alarm = 0, cleared_at = ? WHERE id = ?", (now_ms, record))
        out = []
        for alarm in store.open_of_device(enterprise, dev):
            if alarm.state != OUT_OF_SERVICE:
                continue
            out.append(self.conditions.unhide(alarm, "restore", actor, note, now_ms))
            if alarm.sensor_id in store.suppressed:  # the unit is still stopped: suppressed by design again
                out.append(self.conditions.hide(out[-1].alarm, "suppress", "gateway", "still suppressed by design",
                                                now_ms))
        return out

    # -- cases: dispatch, resolve, close -----------------------------------------------------------

    def dispatch(self, alarm_id: int, actor: str, department: str, note: str, now_ms: int,
                 scope: ScopeArg = None) -> list[AlarmEvent]:
        """Send an alarm's case to the lead or a cooperating department, with a note.

        Dispatching an alarm nobody has acknowledged (unacknowledged, or returned to normal
        unacknowledged) acknowledges it first (two events).
        """
        if not note.strip():
            raise AlarmError("dispatching needs a note: what the department is to do")
        with self.store.tx():
            alarm = self.store.get(alarm_id, scope)
            allowed = self._departments_for(alarm)
            if department not in allowed:
                raise AlarmError(f"department {department!r} cannot take alarm {alarm_id}: "
                                 f"it goes to {', '.join(sorted(allowed)) or 'no department'}")
            _case_next(alarm, "dispatch")
            out = []
            if (alarm.state, "ack") in TRANSITIONS:
                out.append(self._ack(alarm, actor, f"acknowledged on dispatch: {note}", now_ms))
            self.store.db.execute("UPDATE alarms SET case_state = 'dispatched', department = ?, updated_at = ?"
                                  " WHERE id = ?", (department, now_ms, alarm_id))
            out.append(self.store.event(alarm_id, "dispatch", now_ms, actor, note,
                                        (*self.store.recipients(alarm, now_ms), f"department:{department}")))
            return out

    def _departments_for(self, alarm: Alarm) -> set[str]:
        registry = self.store.registry
        if alarm.enterprise:
            ent = registry.enterprises[alarm.enterprise]
            return {ent.lead_department, *ent.cooperating_departments}
        return set(registry.departments)

    def resolve(self, alarm_id: int, actor: str, note: str, now_ms: int, scope: ScopeArg = None,
                department: str | None = None) -> list[AlarmEvent]:
        """The department reports back (or the officer handled it on the spot): the case is resolved.

        ``department``, when given, must be the department the case was dispatched to. A public
        report has no condition of its own: resolving it also ends its condition.
        """
        if not note.strip():
            raise AlarmError("resolving needs a note: what was done")
        with self.store.tx():
            alarm = self.store.get(alarm_id, scope)
            if department is not None and alarm.department != department:
                raise AlarmError(f"alarm {alarm_id} is not dispatched to department {department!r}")
            _case_next(alarm, "resolve")
            self.store.db.execute("UPDATE alarms SET case_state = ?, updated_at = ? WHERE id = ?",
                                  (RESOLVED, now_ms, alarm_id))
            out = [self.store.event(alarm_id, "resolve", now_ms, actor, note)]
            if alarm.kind == "report" and alarm.in_alarm:
                out += self.conditions.clear(alarm.sensor_id, "report", "report", None, now_ms)
            return out

    def close_case(self, alarm_id: int, actor: str, note: str, now_ms: int, scope: ScopeArg = None) -> AlarmEvent:
        """The officer verifies and closes: the condition must be gone and acknowledged (normal)."""
        with self.store.tx():
            alarm = self.store.get(alarm_id, scope)
            _case_next(alarm, "close")
            if alarm.state != NORMAL:
                raise AlarmError(f"alarm {alarm_id} is {alarm.state}: only a normal alarm (condition gone,"
                                 " acknowledged) can be verified and closed")
            self.store.db.execute("UPDATE alarms SET case_state = ?, closed_at = ?, closed_by = ?, updated_at = ?"
                                  " WHERE id = ?", (CLOSED, now_ms, actor, now_ms, alarm_id))
            key = (alarm.sensor_id, slot(alarm.kind, alarm.level))
            if self.store.open.get(key) == alarm_id:
                del self.store.open[key]
            return self.store.event(alarm_id, "close", now_ms, actor, note)

    # -- public reports, chattering, audit records -------------------------------------------------

    def report(self, grid: str, enterprise: str, text: str, location: str | None, contact: str | None,
               client: str, now_ms: int, limits: ReportsSection = DEFAULT_REPORT_LIMITS) -> AlarmEvent:
        """A hazard report from the public: an alarm of kind ``report`` routed like any other, or one
        more report on the open report alarm of its place.

        The place is the enterprise, or the grid for a report that names none. While the place has
        an open report alarm (its condition active: not resolved) the report is added to it: its
        ``value`` counts the reports, and a ``reported`` event keeps the text (its location, contact
        and address in ``report_additions``). A grid opens at most ``limits.per_grid`` report alarms
        in ``limits.window``; past that a report about an enterprise goes to the grid's own report
        alarm, saying which enterprise it is about. A burst of reports about one place is one alarm.
        """
        store = self.store
        with store.tx():
            about = None
            open_id = self._open_report(grid, enterprise)
            if open_id is None and enterprise:
                since = now_ms - int(limits.window * 1000)
                opened = store.db.execute("SELECT COUNT(*) FROM alarms WHERE kind = 'report' AND grid = ?"
                                          " AND raised_at > ?", (grid, since)).fetchone()[0]
                if opened >= limits.per_grid:  # the grid's budget is spent: its own report alarm takes it
                    about, enterprise = enterprise, ""
                    open_id = self._open_report(grid, "")
            if open_id is not None:
                return self._add_report(open_id, text, location, contact, client, about, now_ms)
            cur = store.db.execute(
                "INSERT INTO alarms (sensor_id, enterprise, device, point, grid, kind, level, value, peak,"
                " unit, state, raised_at, updated_at, reason, in_alarm) VALUES ('', ?, '', NULL, ?, 'report',"
                " 'report', 1, NULL, '', ?, ?, ?, ?, 1)", (enterprise, grid, UNACK, now_ms, now_ms, text))
            alarm_id = int(cur.lastrowid or 0)
            sensor_id = f"report/{alarm_id}"
            store.db.execute("UPDATE alarms SET sensor_id = ? WHERE id = ?", (sensor_id, alarm_id))
            store.db.execute("INSERT INTO reports (alarm_id, location, contact, client) VALUES (?,?,?,?)",
                             (alarm_id, location, contact, client))
            store.open[(sensor_id, "report")] = alarm_id
            store.raised += 1
            note = "\n".join(_report_where(location, about)) or None
            return store.event(alarm_id, "raise", now_ms, "public", note)

    def _open_report(self, grid: str, enterprise: str) -> int | None:
        """The newest report alarm of a place whose condition is still active."""
        row = self.store.db.execute(
            "SELECT MAX(id) FROM alarms WHERE kind = 'report' AND grid = ? AND enterprise = ? AND in_alarm = 1"
            " AND case_state != ?", (grid, enterprise, CLOSED)).fetchone()
        return None if row[0] is None else int(row[0])

    def _add_report(self, alarm_id: int, text: str, location: str | None, contact: str | None, client: str,
                    about: str | None, now_ms: int) -> AlarmEvent:
        store = self.store
        store.db.execute("UPDATE alarms SET value = COALESCE(value, 1) + 1, updated_at = ? WHERE id = ?",
                         (now_ms, alarm_id))
        ev = store.event(alarm_id, "reported", now_ms, "public", "\n".join([text, *_report_where(location, about)]))
        store.db.execute("INSERT INTO report_additions (event_id, alarm_id, location, contact, client)"
                         " VALUES (?,?,?,?,?)", (ev.id, alarm_id, location, contact, client))
        return ev

    def flag_chattering(self, alarm_id: int, ts_ms: int, note: str) -> AlarmEvent | None:
        """Mark an alarm as chattering (once): an event in its history, counted in the statistics."""
        with self.store.tx():
            alarm = self.store.get(alarm_id)
            if alarm.chattering:
                return None
            self.store.db.execute("UPDATE alarms SET chattering = 1 WHERE id = ?", (alarm_id,))
            return self.store.event(alarm_id, "chattering", ts_ms, "gateway", note)

    def record(self, alarm_id: int, kind: str, ts_ms: int, note: str, recipients: tuple[str, ...]) -> AlarmEvent:
        """An event that changes no state (``escalated``): audited like every other step."""
        with self.store.lock:
            return self.store.event(alarm_id, kind, ts_ms, "gateway", note, recipients)
