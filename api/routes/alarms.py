"""Alarms in the caller's scope: the list (newest first, filtered, paged), one alarm with its
history, and the lifecycle actions (acknowledge, shelve, unshelve, dispatch, resolve, close), each
with a note and audited with the login's username.

``GET /alarms`` also says, in ``X-Last-Event-Id``, where a live stream opened after it should
resume from. Event ids are opaque cursors (:mod:`api.cursor`), here as in the live stream.
Outside the scope an alarm does not exist (404), and so does a ``grid`` or ``enterprise`` filter
naming something outside it. An action the lifecycle tables refuse is a 409 that says why.
Actions run on the event loop, not in the thread pool, so that the book numbers events in the
order the live hub publishes them (the stream's resume relies on it); each is one short SQLite
transaction.

Who may do what: acknowledging is for admins, supervisors, departments and officers (an
enterprise login sees its alarms; handling them is the supervisors' side of the work); shelving,
dispatching and closing are the officer's (and supervisor's, admin's); resolving (reporting back)
is the department's the case was dispatched to, or the officer's for a case handled on the spot.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerts.model import CASE_STATES, DISPATCHED, KINDS, STATES, AlarmEvent
from api.auth import require_roles
from api.cursor import EventCursorDep
from api.deps import GatewayDep
from api.params import MAX_MINUTES, MAX_MS, end_ms, parse_time_ms
from api.scope import CallerScope
from gateway.config import User
from gateway.errors import AlarmError

router = APIRouter(tags=["alarms"])

AlarmId = Annotated[int, Path(ge=1, le=2**63 - 1, description="alarm id")]
StateFilter = Literal[STATES + ("active", "hidden")]  # type: ignore[valid-type]
CaseFilter = Literal[CASE_STATES + ("open_cases",)]  # type: ignore[valid-type]
KindFilter = Literal[KINDS]  # type: ignore[valid-type]
Acknowledger = Annotated[User, require_roles("admin", "supervisor", "department", "officer")]
Handler = Annotated[User, require_roles("admin", "supervisor", "officer")]
Resolver = Annotated[User, require_roles("admin", "supervisor", "officer", "department")]
Note = Annotated[str, Field(max_length=2000)]
Minutes = Annotated[float, Field(gt=0, le=MAX_MINUTES, allow_inf_nan=False)]
Until = Annotated[int, Field(ge=0, le=MAX_MS)] | Annotated[str, Field(max_length=64)]  # epoch ms or ISO 8601


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Note = ""


class ShelveBody(BaseModel):
    """Shelve until ``until`` (ISO 8601 or epoch ms) or for ``minutes``; a reason is required."""

    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    minutes: Minutes | None = None
    until: Until | None = None

    @model_validator(mode="after")
    def _one_end(self) -> ShelveBody:
        if (self.minutes is None) == (self.until is None):
            raise ValueError("give exactly one of minutes or until")
        return self


class DispatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department: Annotated[str, Field(min_length=1, max_length=64)]
    note: Annotated[str, Field(min_length=1, max_length=2000)]


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, Field(min_length=1, max_length=2000)]


@router.get("/alarms")
def list_alarms(
    gateway: GatewayDep,
    cursor: EventCursorDep,
    scope: CallerScope,
    response: Response,
    state: Annotated[StateFilter | None, Query(
        description="a state; 'active' for unacknowledged, acknowledged or returned unacknowledged;"
                    " 'hidden' for shelved, suppressed or out of service")] = None,
    case: Annotated[CaseFilter | None, Query(description="a case state, or 'open_cases' for any not closed")] = None,
    kind: Annotated[KindFilter | None, Query()] = None,
    level: Annotated[str | None, Query(max_length=32)] = None,
    priority: Annotated[Literal["high", "medium", "low"] | None, Query()] = None,
    grid: Annotated[str | None, Query(max_length=64)] = None,
    enterprise: Annotated[str | None, Query(max_length=64)] = None,
    sensor: Annotated[str | None, Query(max_length=200, description="a sensor or device id")] = None,
    since: Annotated[str | None, Query(max_length=64, description="changed at or after: ISO 8601 or epoch ms")] = None,
    until: Annotated[str | None, Query(max_length=64, description="changed at or before: ISO 8601 or epoch ms")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[dict[str, Any]]:
    """Alarms newest first (by raise time), filtered; ``since``/``until`` bound the last change.

    ``X-Last-Event-Id`` is the book's newest event (a cursor), read before the list: a client that opens
    the live stream with it as ``last_event_id`` misses nothing that happened after the list.
    """
    since_ms = None if since is None else parse_time_ms("since", since)
    until_ms = None if until is None else parse_time_ms("until", until)
    scope.narrow(gateway.registry, enterprise=enterprise, grid=grid)
    response.headers["X-Last-Event-Id"] = cursor.encode(gateway.book.last_event_id())
    alarms = gateway.book.list_alarms(scope.within, state=state, grid=grid, enterprise=enterprise,
                                      since_ms=since_ms, until_ms=until_ms, kind=kind, level=level,
                                      case=case, sensor=sensor, priority=priority, limit=limit, offset=offset)
    return [a.to_dict() for a in alarms]


@router.get("/alarms/{alarm_id}")
def get_alarm(gateway: GatewayDep, cursor: EventCursorDep, scope: CallerScope, alarm_id: AlarmId) -> dict[str, Any]:
    """One alarm with every step of its life, oldest first (and a public report's location and contact)."""
    alarm = gateway.book.get(alarm_id, scope.within)
    history = gateway.book.history(alarm_id, scope.within)
    out = {**alarm.to_dict(), "priority": alarm.priority, "history": [
        {"id": cursor.encode(ev.id), "type": ev.type, "ts": ev.ts, "actor": ev.actor, "note": ev.note,
         "recipients": list(ev.recipients), "state": ev.alarm.state, "case": ev.alarm.case,
         "level": ev.alarm.level, "value": ev.alarm.value}
        for ev in history]}
    if alarm.kind == "report":
        out["report"] = gateway.book.report_details(alarm_id)
    return out


def _now(gateway: GatewayDep) -> int:
    return gateway.clock.now_ns() // 1_000_000


def _done(gateway: GatewayDep, cursor: EventCursorDep, events: list[AlarmEvent]) -> dict[str, Any]:
    gateway.alarms.dispatch(events)
    return {"events": [cursor.event(e) for e in events], "alarm": events[-1].alarm.to_dict()}


@router.post("/alarms/{alarm_id}/ack")
async def acknowledge(gateway: GatewayDep, cursor: EventCursorDep, scope: CallerScope, user: Acknowledger,
                      alarm_id: AlarmId, body: NoteBody | None = None) -> dict[str, Any]:
    """Acknowledge an alarm; 409 when its state does not allow it. Returns the event it made."""
    note = body.note if body is not None else ""
    event = gateway.book.acknowledge(alarm_id, user.username, note, _now(gateway), scope.within)
    gateway.alarms.dispatch([event])
    return cursor.event(event)


@router.post("/alarms/{alarm_id}/shelve")
async def shelve(gateway: GatewayDep, cursor: EventCursorDep, scope: CallerScope, user: Handler, alarm_id: AlarmId,
                 body: ShelveBody) -> dict[str, Any]:
    """Shelve an alarm for a while, with a reason; it comes back by itself when the shelf ends.

    The longest shelf is ``[alarms] max_shelve`` seconds (a shift by default).
    """
    now = _now(gateway)
    until_ms = end_ms(now, body.minutes, body.until)
    if until_ms is None:  # ShelveBody already refuses a body without one
        raise AlarmError("a shelf needs minutes or until")
    longest = gateway.config.alarms.max_shelve * 1000
    if until_ms - now > longest:
        raise AlarmError(f"a shelf may last at most {longest / 3_600_000:g} h ([alarms] max_shelve)")
    event = gateway.book.shelve(alarm_id, user.username, body.reason, until_ms, now, scope.within)
    return _done(gateway, cursor, [event])


@router.post("/alarms/{alarm_id}/unshelve")
async def unshelve(gateway: GatewayDep, cursor: EventCursorDep, scope: CallerScope, user: Handler, alarm_id: AlarmId,
                   body: NoteBody | None = None) -> dict[str, Any]:
    note = body.note if body is not None else ""
    return _done(gateway, cursor, [gateway.book.unshelve(alarm_id, user.username, note, _now(gateway), scope.within)])


@router.post("/alarms/{alarm_id}/dispatch")
async def dispatch(gateway: GatewayDep, cursor: EventCursorDep, scope: CallerScope, user: Handler, alarm_id: AlarmId,
                   body: DispatchBody) -> dict[str, Any]:
    """Send the case to the enterprise's lead or a cooperating department, with a note."""
    events = gateway.book.dispatch(alarm_id, user.username, body.department, body.note, _now(gateway),
                                   scope.within)
    return _done(gateway, cursor, events)


@router.post("/alarms/{alarm_id}/resolve")
async def resolve(gateway: GatewayDep, cursor: EventCursorDep, scope: CallerScope, user: Resolver, alarm_id: AlarmId,
                  body: ResolveBody) -> dict[str, Any]:
    """Report back: what was done. A department resolves the cases dispatched to it; an officer a
    case it handled on the spot (a dispatched case waits for its department)."""
    if user.role == "department":
        events = gateway.book.resolve(alarm_id, user.username, body.note, _now(gateway), scope.within,
                                      department=user.department)
    else:
        if gateway.book.get(alarm_id, scope.within).case == DISPATCHED:
            raise AlarmError(f"alarm {alarm_id} is dispatched: the department reports back")
        events = gateway.book.resolve(alarm_id, user.username, body.note, _now(gateway), scope.within)
    return _done(gateway, cursor, events)


@router.post("/alarms/{alarm_id}/close")
async def close(gateway: GatewayDep, cursor: EventCursorDep, scope: CallerScope, user: Handler, alarm_id: AlarmId,
                body: NoteBody | None = None) -> dict[str, Any]:
    """Verify and close: the condition must be gone and acknowledged."""
    note = body.note if body is not None else ""
    return _done(gateway, cursor, [gateway.book.close_case(alarm_id, user.username, note, _now(gateway), scope.within)])
