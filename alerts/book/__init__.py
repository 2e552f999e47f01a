"""The alarm book: every alarm and every step of its life, persisted in SQLite, nothing deleted.

The book turns the detector's transitions, the collectors' device status, operators' actions and
public reports into alarms and events, applying the tables of :mod:`alerts.model` and nothing
else, and answers the API's queries within the caller's scope (:mod:`alerts.scope`).
:class:`AlarmBook` is its one public face; each of its methods is the method of the same name of
one part, all over one :class:`~alerts.book.store.BookStore` (the SQLite file, its lock and
transactions, the consumers' cursors): :mod:`~alerts.book.transitions` (conditions coming and
going), :mod:`~alerts.book.actions` (operators' actions, cases, maintenance, reports) and
:mod:`~alerts.book.queries` (reads).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from alerts.book import reorganise
from alerts.book.actions import DEFAULT_REPORT_LIMITS, Actions
from alerts.book.queries import Queries
from alerts.book.store import BookStore
from alerts.book.transitions import Conditions
from alerts.detector import Extremes, Transitions
from alerts.model import Alarm, AlarmEvent
from alerts.scope import Within
from gateway.config import ReportsSection
from gateway.registry import DeviceInfo, Registry, SensorInfo

__all__ = ["AlarmBook"]


class AlarmBook:
    """Alarms and their events in one SQLite file (WAL)."""

    def __init__(self, path: str | Path, registry: Registry) -> None:
        self._store = BookStore(path, registry)
        self._conditions = Conditions(self._store)
        self._actions = Actions(self._store, self._conditions)
        self._queries = Queries(self._store)

    @property
    def registry(self) -> Registry:
        return self._store.registry

    @property
    def maintenance(self) -> dict[str, tuple[int | None, str]]:
        """Device id -> (end or None, note) of each device in maintenance (out of service)."""
        return self._store.maintenance

    @property
    def suppressed(self) -> set[str]:
        """Ids of the sensors suppressed by design."""
        return self._store.suppressed

    @property
    def raised(self) -> int:
        """Alarms opened since the book was opened."""
        return self._store.raised

    @property
    def refused(self) -> int:
        """Detector transitions the tables refused (should stay 0)."""
        return self._store.refused

    def close(self) -> None:
        self._store.close()

    # -- the store: consumers' cursors --------------------------------------------------------------

    def cursor(self, consumer: str) -> int | None:
        return self._store.cursor(consumer)

    def set_cursor(self, consumer: str, seq: int) -> None:
        self._store.set_cursor(consumer, seq)

    def evaluating(self, consumer: str, seq: int) -> AbstractContextManager[None]:
        return self._store.evaluating(consumer, seq)

    def mark_pushed(self, pushed: Iterable[int], held: Iterable[int]) -> None:
        self._store.mark_pushed(pushed, held)

    # -- conditions ---------------------------------------------------------------------------------

    def apply(self, tr: Transitions) -> list[AlarmEvent]:
        return self._conditions.apply(tr)

    def communication(self, device: DeviceInfo, online: bool, ts_ns: int, level: str,
                      reason: str) -> list[AlarmEvent]:
        return self._conditions.communication(device, online, ts_ns, level, reason)

    def follow(self, extremes: Extremes) -> None:
        self._conditions.follow(extremes)

    @property
    def offline(self) -> dict[int, tuple[int, int]]:
        """Device index -> (position of the accepted log, epoch ns) of its offline, while active."""
        return self._conditions.offline

    def stamp_offline_with(self, position: Callable[[], int]) -> None:
        """How to read the position of the log of accepted batches that an offline is stamped with."""
        self._conditions.position = position

    def points_read(self, points: list[SensorInfo], ok: bool, ts_ns: int, reason: str) -> list[AlarmEvent]:
        return self._conditions.points_read(points, ok, ts_ns, reason)

    def system(self, key: str, active: bool, ts_ns: int, level: str, value: float | None,
               reason: str) -> list[AlarmEvent]:
        return self._conditions.system(key, active, ts_ns, level, value, reason)

    def flood(self, grid: str, active: bool, ts_ms: int, count: int, reason: str) -> list[AlarmEvent]:
        return self._conditions.flood(grid, active, ts_ms, count, reason)

    def retire(self, sensor_ids: Iterable[str], device_ids: Iterable[str], device_indexes: Iterable[int],
               actor: str, now_ms: int, enterprises: Iterable[str] = ()) -> list[AlarmEvent]:
        """End and close the open alarms of sensors, devices and enterprises retired from the registry."""
        return reorganise.retire(self._store, self._conditions, sensor_ids, device_ids, device_indexes, actor,
                                 now_ms, enterprises)

    def move(self, enterprise: str, old_grid: str, new_grid: str, actor: str, now_ms: int) -> list[AlarmEvent]:
        """The open alarms of an enterprise moved to another grid follow it."""
        return reorganise.move(self._store, enterprise, old_grid, new_grid, actor, now_ms)

    def suppress(self, sensor_ids: Iterable[str], on: bool, ts_ms: int, reason: str) -> list[AlarmEvent]:
        return self._conditions.suppress(sensor_ids, on, ts_ms, reason)

    # -- actions ------------------------------------------------------------------------------------

    def acknowledge(self, alarm_id: int, actor: str, note: str, now_ms: int,
                    scope: Within | Collection[str] | None = None) -> AlarmEvent:
        return self._actions.acknowledge(alarm_id, actor, note, now_ms, scope)

    def shelve(self, alarm_id: int, actor: str, reason: str, until_ms: int, now_ms: int,
               scope: Within | Collection[str] | None = None) -> AlarmEvent:
        return self._actions.shelve(alarm_id, actor, reason, until_ms, now_ms, scope)

    def unshelve(self, alarm_id: int, actor: str, note: str, now_ms: int,
                 scope: Within | Collection[str] | None = None) -> AlarmEvent:
        return self._actions.unshelve(alarm_id, actor, note, now_ms, scope)

    def expire(self, now_ms: int) -> list[AlarmEvent]:
        return self._actions.expire(now_ms)

    def set_maintenance(self, device: DeviceInfo, actor: str, note: str, now_ms: int,
                        until_ms: int | None = None) -> list[AlarmEvent]:
        return self._actions.set_maintenance(device, actor, note, now_ms, until_ms)

    def end_maintenance(self, device: DeviceInfo, actor: str, note: str, now_ms: int) -> list[AlarmEvent]:
        return self._actions.end_maintenance(device, actor, note, now_ms)

    def dispatch(self, alarm_id: int, actor: str, department: str, note: str, now_ms: int,
                 scope: Within | Collection[str] | None = None) -> list[AlarmEvent]:
        return self._actions.dispatch(alarm_id, actor, department, note, now_ms, scope)

    def resolve(self, alarm_id: int, actor: str, note: str, now_ms: int,
                scope: Within | Collection[str] | None = None, department: str | None = None) -> list[AlarmEvent]:
        return self._actions.resolve(alarm_id, actor, note, now_ms, scope, department)

    def close_case(self, alarm_id: int, actor: str, note: str, now_ms: int,
                   scope: Within | Collection[str] | None = None) -> AlarmEvent:
        return self._actions.close_case(alarm_id, actor, note, now_ms, scope)

    def report(self, grid: str, enterprise: str, text: str, location: str | None, contact: str | None,
               client: str, now_ms: int, limits: ReportsSection = DEFAULT_REPORT_LIMITS) -> AlarmEvent:
        return self._actions.report(grid, enterprise, text, location, contact, client, now_ms, limits)

    def flag_chattering(self, alarm_id: int, ts_ms: int, note: str) -> AlarmEvent | None:
        return self._actions.flag_chattering(alarm_id, ts_ms, note)

    def record(self, alarm_id: int, kind: str, ts_ms: int, note: str, recipients: tuple[str, ...]) -> AlarmEvent:
        return self._actions.record(alarm_id, kind, ts_ms, note, recipients)

    # -- queries ------------------------------------------------------------------------------------

    def get(self, alarm_id: int, scope: Within | Collection[str] | None = None) -> Alarm:
        return self._queries.get(alarm_id, scope)

    def list_alarms(self, scope: Within | Collection[str] | None, *, state: str | None = None,
                    grid: str | None = None, enterprise: str | None = None, since_ms: int | None = None,
                    until_ms: int | None = None, kind: str | None = None, level: str | None = None,
                    case: str | None = None, sensor: str | None = None, priority: str | None = None,
                    limit: int = 100, offset: int = 0) -> list[Alarm]:
        return self._queries.list_alarms(scope, state=state, grid=grid, enterprise=enterprise, since_ms=since_ms,
                                         until_ms=until_ms, kind=kind, level=level, case=case, sensor=sensor,
                                         priority=priority, limit=limit, offset=offset)

    def events_since(self, last_id: int, scope: Within | Collection[str] | None,
                     limit: int = 1000) -> list[AlarmEvent]:
        return self._queries.events_since(last_id, scope, limit)

    def history(self, alarm_id: int, scope: Within | Collection[str] | None = None) -> list[AlarmEvent]:
        return self._queries.history(alarm_id, scope)

    def report_details(self, alarm_id: int) -> dict[str, Any] | None:
        return self._queries.report_details(alarm_id)

    def read(self, sql: str, args: Iterable[object] = ()) -> list[tuple]:
        return self._queries.read(sql, args)

    def last_event_id(self) -> int:
        return self._queries.last_event_id()

    def open_alarms(self) -> list[Alarm]:
        return self._queries.open_alarms()

    def events_to_push(self, after: int, limit: int) -> list[tuple[int, AlarmEvent | None]]:
        return self._queries.events_to_push(after, limit)
