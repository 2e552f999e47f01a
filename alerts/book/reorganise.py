"""What a registry change does to the alarms the book keeps open.

- A sensor or device retired from the registry has nothing left to clear its alarms: they end (the
  condition is gone) and their cases close, each with a ``closed`` event saying who retired it. The
  alarms stay in the history with the sensor's id.
- An enterprise moved to another grid takes its open alarms with it: their grid becomes the new
  one and each gets a ``moved`` event, which goes to the new grid's officers (the routing of
  everything after it follows the enterprise, see :meth:`BookStore.recipients`).
"""

from __future__ import annotations

from collections.abc import Iterable

from alerts.book.store import BookStore, slot
from alerts.book.transitions import Conditions
from alerts.model import CLOSED, NORMAL, AlarmEvent


def retire(store: BookStore, conditions: Conditions, sensor_ids: Iterable[str], device_ids: Iterable[str],
           device_indexes: Iterable[int], actor: str, now_ms: int,
           enterprises: Iterable[str] = ()) -> list[AlarmEvent]:
    """End and close every open alarm of the retired sensors, devices (their own communication,
    maintenance and point alarms) and enterprises (public reports about them too); forget their
    suppression, maintenance and offline state."""
    sensors, devices, gone_enterprises = set(sensor_ids), set(device_ids), set(enterprises)
    ids = {alarm_id for (sid, _), alarm_id in store.open.items()
           if sid in sensors or sid in devices or sid.rpartition("/")[0] in devices}
    for ent in gone_enterprises:
        ids |= {r[0] for r in store.db.execute("SELECT id FROM alarms WHERE enterprise = ? AND case_state != ?",
                                               (ent, CLOSED))}
    out: list[AlarmEvent] = []
    with store.tx():
        for alarm_id in sorted(ids):
            alarm = store.get(alarm_id)
            what = "enterprise" if alarm.enterprise in gone_enterprises else "device" if (
                alarm.sensor_id in devices or f"{alarm.enterprise}/{alarm.device}" in devices) else "sensor"
            store.db.execute(
                "UPDATE alarms SET in_alarm = 0, cleared_at = COALESCE(cleared_at, ?), state = ?, case_state = ?,"
                " closed_at = ?, closed_by = ?, updated_at = ? WHERE id = ?",
                (now_ms, NORMAL, CLOSED, now_ms, actor, now_ms, alarm_id))
            store.open.pop((alarm.sensor_id, slot(alarm.kind, alarm.level)), None)
            out.append(store.event(alarm_id, "close", now_ms, actor,
                                   f"the {what} was retired from the registry by {actor}: the alarm ends with it"))
        for device_id in devices:
            if device_id in store.maintenance:
                store.db.execute("DELETE FROM maintenance WHERE device_id = ?", (device_id,))
                del store.maintenance[device_id]
        gone = {s for s in store.suppressed if s in sensors or s.rpartition("/")[0] in devices}
        if gone:
            store.db.executemany("DELETE FROM suppression WHERE sensor_id = ?", [(s,) for s in gone])
            store.suppressed -= gone
    for index in device_indexes:
        conditions.offline.pop(index, None)
    return out


def move(store: BookStore, enterprise: str, old_grid: str, new_grid: str, actor: str,
         now_ms: int) -> list[AlarmEvent]:
    """The open alarms of ``enterprise`` follow it from ``old_grid`` to ``new_grid``."""
    out: list[AlarmEvent] = []
    with store.tx():
        rows = store.db.execute("SELECT id FROM alarms WHERE enterprise = ? AND case_state != ? ORDER BY id",
                                (enterprise, CLOSED)).fetchall()
        for (alarm_id,) in rows:
            store.db.execute("UPDATE alarms SET grid = ?, updated_at = ? WHERE id = ?", (new_grid, now_ms, alarm_id))
            out.append(store.event(alarm_id, "moved", now_ms, actor,
                                   f"enterprise {enterprise} moved from grid {old_grid} to grid {new_grid}"))
    return out
