"""Alarms in the caller's scope: the list (newest first, filtered, paged), one alarm with its
history, and the acknowledge action (audited with the login's username).

``GET /alarms`` also says, in ``X-Last-Event-Id``, where a live stream opened after it should
resume from. Outside the scope an alarm does not exist (404), and so does a ``grid`` or
``enterprise`` filter naming something outside it. Acknowledging runs on the event loop, not in the thread pool, so
that the book numbers events in the order the live hub publishes them (the stream's resume
relies on it); it is one short SQLite transaction.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_roles
from api.deps import GatewayDep
from api.params import parse_time_ms
from api.scope import CallerScope
from gateway.config import User

router = APIRouter(tags=["alarms"])

AlarmId = Annotated[int, Path(ge=1, le=2**63 - 1, description="alarm id")]
StateFilter = Literal["active", "normal", "unacknowledged", "acknowledged", "rtn_unacknowledged"]
# Enterprise logins see their alarms but acknowledging is the supervisors' side of the work.
Acknowledger = Annotated[User, require_roles("admin", "supervisor", "department", "officer")]


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=1000)


@router.get("/alarms")
def list_alarms(
    gateway: GatewayDep,
    scope: CallerScope,
    response: Response,
    state: Annotated[StateFilter | None, Query(description="a state, or 'active' for any not normal")] = None,
    grid: Annotated[str | None, Query(max_length=64)] = None,
    enterprise: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[str | None, Query(description="changed since: ISO 8601 or epoch ms")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[dict[str, Any]]:
    """Alarms newest first (by raise time); ``since`` keeps those updated at or after it.

    ``X-Last-Event-Id`` is the book's newest event id, read before the list: a client that opens
    the live stream with it as ``last_event_id`` misses nothing that happened after the list.
    """
    since_ms = None if since is None else parse_time_ms("since", since)
    scope.narrow(gateway.registry, enterprise=enterprise, grid=grid)
    response.headers["X-Last-Event-Id"] = str(gateway.book.last_event_id())
    alarms = gateway.book.list_alarms(scope.enterprises, state=state, grid=grid, enterprise=enterprise,
                                      since_ms=since_ms, limit=limit, offset=offset)
    return [a.to_dict() for a in alarms]


@router.get("/alarms/{alarm_id}")
def get_alarm(gateway: GatewayDep, scope: CallerScope, alarm_id: AlarmId) -> dict[str, Any]:
    """One alarm with every step of its life, oldest first."""
    alarm = gateway.book.get(alarm_id, scope.enterprises)
    history = gateway.book.history(alarm_id, scope.enterprises)
    return {**alarm.to_dict(), "history": [
        {"id": ev.id, "type": ev.type, "ts": ev.ts, "actor": ev.actor, "note": ev.note,
         "recipients": list(ev.recipients), "state": ev.alarm.state, "level": ev.alarm.level,
         "value": ev.alarm.value}
        for ev in history]}


@router.post("/alarms/{alarm_id}/ack")
async def acknowledge(gateway: GatewayDep, scope: CallerScope, user: Acknowledger, alarm_id: AlarmId,
                      body: AckBody | None = None) -> dict[str, Any]:
    """Acknowledge an alarm; 409 when its state does not allow it. Returns the event it made."""
    note = body.note if body is not None else ""
    now_ms = gateway.clock.now_ns() // 1_000_000
    event = gateway.book.acknowledge(alarm_id, user.username, note, now_ms, scope.enterprises)
    gateway.dispatch([event])
    return event.to_dict()
