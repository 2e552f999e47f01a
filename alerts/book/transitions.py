"""Conditions coming and going: the detector's transitions, devices' communication, the gateway's
own conditions, grid floods and suppression by design, applied to the book by the state table.

A condition raises the current alarm of its slot (a sensor's process level, its rate of change, its
fault; a device's communication; a gateway or grid condition) or opens one: while the alarm's case
is open the condition coming back re-raises the same alarm, after the close it opens a new alarm
linked (``linked_to``) to the closed one. An alarm born while its device is in maintenance or its
sensor is suppressed is born out of service or suppressed. While a process or rate alarm is
active, :meth:`Conditions.follow` keeps its ``value`` (the latest reading) and ``peak`` (the most
extreme) up to date, once per evaluated batch and without an event. Every change follows
:data:`~alerts.model.TRANSITIONS`; a pair the table does not have raises
:class:`~gateway.errors.AlarmError`. The moves into and out of a hidden state (:meth:`hide`,
:meth:`unhide`) and :meth:`clear` are also what the operators' actions use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from alerts.book.store import BookStore, next_or_refuse, slot
from alerts.detector import FAULT, LEVEL_NAMES, RATE, Extremes, Transitions
from alerts.model import CLOSED, NORMAL, OUT_OF_SERVICE, SUPPRESSED, TRANSITIONS, Alarm, AlarmEvent
from gateway.errors import AlarmError
from gateway.registry import DeviceInfo, SensorInfo

log = logging.getLogger(__name__)


class Conditions:
    """The condition side of the book: what the detector, the collectors and the gateway report."""

    def __init__(self, store: BookStore) -> None:
        self.store = store
        # The position of the log of accepted batches now (the evaluation says how to read it): an
        # offline is stamped with it, and only readings accepted after it bring the device back.
        self.position: Callable[[], int] = lambda: 0
        # device index -> (position, epoch ns) of its latest offline, while its offline alarm is active;
        # one open at start has position 0: its next evaluated reading clears it
        self.offline: dict[int, tuple[int, int]] = {}
        for (device_id, kind), alarm_id in store.open.items():
            ent, _, dev = device_id.partition("/")
            device = store.registry.devices_by_id.get((ent, dev)) if kind == "communication" else None
            if device is not None and self._offline_now(device):
                self.offline[device.index] = (0, store.get(alarm_id).raised_at * 1_000_000)

    def apply(self, tr: Transitions) -> list[AlarmEvent]:
        """Record the detector's transitions; return the events they made, in order."""
        if not len(tr):
            return []
        with self.store.tx():
            events: list[AlarmEvent] = []
            for i in range(len(tr)):
                try:
                    events.extend(self._apply_one(tr, i))
                except AlarmError as exc:  # a bug, not bad input: logged and counted, the pipeline goes on
                    self.store.refused += 1
                    log.error("alarm book refused a detector transition: %s", exc)
        return events

    def _apply_one(self, tr: Transitions, i: int) -> list[AlarmEvent]:
        info = self.store.registry.sensors[int(tr.sensor[i])]
        ts_ms = int(tr.ts[i]) // 1_000_000
        value, peak = float(tr.value[i]), float(tr.peak[i])
        old, new = int(tr.old[i]), int(tr.new[i])
        where = (info.enterprise, info.device, info.key, info.unit)
        condition = int(tr.condition[i])
        if condition == FAULT:
            if new:
                return self._raise(info.sensor_id, "fault", "fault", value, value, ts_ms, *where,
                                   "fault quality, a failed 4-20 mA loop, or outside the measuring range")
            return self.clear(info.sensor_id, "fault", "fault", value, ts_ms)
        if condition == RATE:
            if new:
                return self._raise(info.sensor_id, "process", "rate_of_change", value, peak, ts_ms, *where,
                                   f"changing at {peak:.4g} {info.unit}/min")
            return self.clear(info.sensor_id, "process", "rate_of_change", value, ts_ms)
        out: list[AlarmEvent] = []
        if old != 0 and (new == 0 or (old > 0) != (new > 0)):
            out += self.clear(info.sensor_id, "process", LEVEL_NAMES[old], value, ts_ms)
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
        with self.store.tx():
            if online:
                out = self.clear(device.device_id, "communication", level, None, ts_ms)
            else:
                out = self._raise(device.device_id, "communication", level, None, None, ts_ms,
                                  device.enterprise, device.id, None, "", reason)
            if not self._offline_now(device):
                self.offline.pop(device.index, None)
            elif not online and level == "offline":  # a repeated offline: only what comes after it counts
                self.offline[device.index] = (self.position(), ts_ns)
            return out

    def _offline_now(self, device: DeviceInfo) -> bool:
        alarm_id = self.store.open.get((device.device_id, "communication"))
        if alarm_id is None:
            return False
        alarm = self.store.get(alarm_id)
        return alarm.in_alarm and alarm.level == "offline"

    def follow(self, ex: Extremes) -> None:
        """The latest value and the peak of active process and rate alarms (the detector's
        :class:`~alerts.detector.Extremes` of a batch): one UPDATE per alarm, no event (a new peak is
        no step of the alarm's life, and pushing it would be noise)."""
        if not len(ex):
            return
        sensors, open_ = self.store.registry.sensors, self.store.open
        rows = []
        for s, c, v, p in zip(ex.sensor.tolist(), ex.condition.tolist(), ex.value.tolist(), ex.peak.tolist(),
                              strict=True):
            alarm_id = open_.get((sensors[s].sensor_id, "rate" if c == RATE else "process"))
            if alarm_id is not None:
                rows.append((v, p, alarm_id))
        with self.store.tx():
            self.store.db.executemany("UPDATE alarms SET value = ?, peak = ? WHERE id = ? AND in_alarm = 1", rows)

    def points_read(self, points: list[SensorInfo], ok: bool, ts_ns: int, reason: str) -> list[AlarmEvent]:
        """Points whose Modbus request keeps failing (``ok=False``): a ``read_error`` fault alarm each,
        naming the error; read again: cleared."""
        ts_ms = ts_ns // 1_000_000
        events: list[AlarmEvent] = []
        with self.store.tx():
            for info in points:
                if ok:
                    events += self.clear(info.sensor_id, "fault", "read_error", None, ts_ms)
                else:
                    events += self._raise(info.sensor_id, "fault", "read_error", None, None, ts_ms, info.enterprise,
                                          info.device, info.key, info.unit, reason)
        return events

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
        db = self.store.db
        with self.store.tx():
            open_id = self.store.open.get((sensor_id, "system"))
            if not active:
                if open_id is not None:
                    db.execute("UPDATE alarms SET value = COALESCE(?, value), reason = COALESCE(?, reason)"
                               " WHERE id = ?", (value, reason or None, open_id))
                return self.clear(sensor_id, "system", level, None, ts_ms)
            if open_id is not None and self.store.get(open_id).in_alarm:
                db.execute("UPDATE alarms SET value = ?, peak = MAX(COALESCE(peak, ?), ?), reason = ?,"
                           " updated_at = ? WHERE id = ?", (value, value, value, reason, ts_ms, open_id))
                return []
            out = self._raise(sensor_id, "system", level, value, value, ts_ms, enterprise, device, None, "",
                              reason, grid=grid)
            db.execute("UPDATE alarms SET reason = ? WHERE id = ?", (reason, out[0].alarm.id))
            return out

    def suppress(self, sensor_ids: Iterable[str], on: bool, ts_ms: int, reason: str) -> list[AlarmEvent]:
        """Suppression by design (the unit a point belongs to is shut down), or its end."""
        out: list[AlarmEvent] = []
        suppressed = self.store.suppressed
        with self.store.tx():
            for sid in sensor_ids:
                if on == (sid in suppressed):
                    continue
                (suppressed.add if on else suppressed.discard)(sid)
                if on:
                    self.store.db.execute("INSERT OR REPLACE INTO suppression (sensor_id, since, reason)"
                                          " VALUES (?,?,?)", (sid, ts_ms, reason))
                else:
                    self.store.db.execute("DELETE FROM suppression WHERE sensor_id = ?", (sid,))
                for alarm in self.store.open_of_sensor(sid):
                    # an alarm out of service stays so: maintenance outranks design (and ends into it)
                    if on and (alarm.state, "suppress") in TRANSITIONS:
                        out.append(self.hide(alarm, "suppress", "gateway", reason, ts_ms))
                    elif not on and alarm.state == SUPPRESSED:
                        out.append(self.unhide(alarm, "unsuppress", "gateway", reason, ts_ms))
        return out

    # -- condition changes, inside the caller's transaction ----------------------------------------

    def _raise(self, sensor_id: str, kind: str, level: str, value: float | None, peak: float | None,
               ts_ms: int, enterprise: str, device: str, point: str | None, unit: str,
               reason: str | None, grid: str | None = None) -> list[AlarmEvent]:
        store = self.store
        key = (sensor_id, slot(kind, level))
        existing = store.open.get(key)
        if existing is not None:  # the case is still open: the same alarm comes back
            alarm = store.get(existing)
            if alarm.in_alarm:
                return []  # already active (a second "offline" of the same device)
            nxt = next_or_refuse(alarm, "raise", True)
            store.db.execute(
                "UPDATE alarms SET state = ?, in_alarm = 1, level = ?, value = ?, peak = ?, cleared_at = NULL,"
                " updated_at = ?, reason = COALESCE(?, reason) WHERE id = ?",
                (nxt, level, value, peak, ts_ms, reason, existing))
            return [store.event(existing, "raise", ts_ms, None, None)]
        if grid is None:
            grid = store.registry.enterprises[enterprise].grid if enterprise else ""
        linked = store.db.execute(
            "SELECT MAX(id) FROM alarms WHERE sensor_id = ? AND kind = ? AND case_state = ?"
            " AND (level = 'rate_of_change') = ?", (sensor_id, kind, CLOSED, level == "rate_of_change")).fetchone()[0]
        hidden = self._hidden_state(enterprise, device, sensor_id)
        cur = store.db.execute(
            "INSERT INTO alarms (sensor_id, enterprise, device, point, grid, kind, level, value, peak,"
            " unit, state, raised_at, updated_at, reason, in_alarm, linked_to)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?)",
            (sensor_id, enterprise, device, point, grid, kind, level, value, peak, unit,
             hidden or TRANSITIONS[(NORMAL, "raise")], ts_ms, ts_ms, reason, linked))
        alarm_id = int(cur.lastrowid or 0)
        store.open[key] = alarm_id
        store.raised += 1
        note = f"follows closed alarm {linked}" if linked else None
        return [store.event(alarm_id, "raise", ts_ms, None, note)]

    def _hidden_state(self, enterprise: str, device: str, sensor_id: str) -> str | None:
        if enterprise and f"{enterprise}/{device}" in self.store.maintenance:
            return OUT_OF_SERVICE
        if sensor_id in self.store.suppressed:
            return SUPPRESSED
        return None

    def _step(self, sensor_id: str, step: str, level: str, value: float, peak: float,
              ts_ms: int) -> list[AlarmEvent]:
        alarm_id = self.store.open.get((sensor_id, "process"))
        if alarm_id is None:
            return []
        alarm = self.store.get(alarm_id)
        if not alarm.in_alarm:  # the detector never steps a cleared alarm; if it does, it is a raise
            return self._raise(sensor_id, "process", level, value, peak, ts_ms, alarm.enterprise, alarm.device,
                               alarm.point, alarm.unit, None)
        nxt = next_or_refuse(alarm, step, True)
        self.store.db.execute("UPDATE alarms SET state = ?, level = ?, value = ?, peak = ?, updated_at = ?"
                              " WHERE id = ?", (nxt, level, value, peak, ts_ms, alarm_id))
        return [self.store.event(alarm_id, step, ts_ms, None, None)]

    def clear(self, sensor_id: str, kind: str, level: str, value: float | None, ts_ms: int) -> list[AlarmEvent]:
        """The condition of ``sensor_id``'s slot ended (nothing if it was not active)."""
        alarm_id = self.store.open.get((sensor_id, slot(kind, level)))
        if alarm_id is None:
            return []
        alarm = self.store.get(alarm_id)
        if not alarm.in_alarm:
            return []
        nxt = next_or_refuse(alarm, "clear", False)
        # The value that cleared it is recorded; a communication alarm has none and keeps NULL.
        self.store.db.execute("UPDATE alarms SET state = ?, in_alarm = 0, cleared_at = ?, updated_at = ?,"
                              " value = COALESCE(?, value) WHERE id = ?", (nxt, ts_ms, ts_ms, value, alarm_id))
        return [self.store.event(alarm_id, "clear", ts_ms, None, None)]

    def hide(self, alarm: Alarm, event: str, actor: str, note: str, now_ms: int) -> AlarmEvent:
        """Into a hidden state (``suppress``, ``remove``)."""
        self.store.db.execute("UPDATE alarms SET state = ?, updated_at = ? WHERE id = ?",
                              (next_or_refuse(alarm, event, alarm.in_alarm), now_ms, alarm.id))
        return self.store.event(alarm.id, event, now_ms, actor, note)

    def unhide(self, alarm: Alarm, event: str, actor: str, note: str, now_ms: int) -> AlarmEvent:
        """Out of a hidden state (``unshelve``, ``unsuppress``, ``restore``), by the alarm's condition."""
        nxt = next_or_refuse(alarm, event, alarm.in_alarm)
        # coming back to unacknowledged restarts the escalation clock: the officer sees it afresh
        self.store.db.execute("UPDATE alarms SET state = ?, shelved_until = NULL, updated_at = ?,"
                              " acked_at = CASE WHEN ? = 'unacknowledged' THEN NULL ELSE acked_at END WHERE id = ?",
                              (nxt, now_ms, nxt, alarm.id))
        return self.store.event(alarm.id, event, now_ms, actor, note)
