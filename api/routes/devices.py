"""Device maintenance: take a device out of service (ISA-18.2) and put it back.

``POST /devices/{enterprise}/{device}/maintenance`` with a note (what is being done) and an
optional end (``until``, ISO 8601 or epoch ms, or ``minutes``), at most :data:`MAX_MAINTENANCE_MS`
(30 days) away; without one, maintenance ends after those 30 days (the device must not drop out
of supervision for good because someone forgot to end it). Every open alarm of the device goes
out of service, alarms it raises meanwhile are born out of service, none of them is pushed, and
the sensors say ``out_of_service`` in ``/sensors/latest``. The step itself is an event pushed to the
grid's officers, so taking a gas detector out of service is never silent. ``POST .../maintenance/end``
(or the end time passing) returns the alarms to unacknowledged or normal by their condition.
Enterprise logins may do it for their own devices (the engineer calibrating a detector);
officers, supervisors and admins within their scope.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.auth import require_roles
from api.cursor import EventCursorDep
from api.deps import GatewayDep
from api.params import MAX_MS, bad_param, end_ms
from api.scope import CallerScope
from gateway.config import User

router = APIRouter(tags=["devices"])

Slug = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Maintainer = Annotated[User, require_roles("admin", "supervisor", "officer", "enterprise")]
MAX_MAINTENANCE_MS = 30 * 86_400_000


class MaintenanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, Field(min_length=1, max_length=2000)]
    minutes: float | None = Field(None, gt=0, le=MAX_MAINTENANCE_MS // 60_000, allow_inf_nan=False)
    until: Annotated[int, Field(ge=0, le=MAX_MS)] | Annotated[str, Field(max_length=64)] | None = Field(
        None, description="epoch ms or ISO 8601, at most 30 days away")

    @model_validator(mode="after")
    def _one_end(self) -> MaintenanceBody:
        if self.minutes is not None and self.until is not None:
            raise ValueError("give minutes or until, not both")
        return self


class EndBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, Field(max_length=2000)] = ""


@router.get("/devices/{enterprise}/{device}/maintenance")
def maintenance_state(gateway: GatewayDep, scope: CallerScope, enterprise: Slug, device: Slug) -> dict[str, Any]:
    scope.require_enterprise(gateway.registry, enterprise)
    info = gateway.registry.device(enterprise, device)
    until, note = gateway.book.maintenance.get(info.device_id, (None, None))
    return {"device": info.device_id, "in_maintenance": info.device_id in gateway.book.maintenance,
            "until": until, "note": note}


@router.post("/devices/{enterprise}/{device}/maintenance")
async def start(gateway: GatewayDep, cursor: EventCursorDep, scope: CallerScope, user: Maintainer,
                enterprise: Slug, device: Slug, body: MaintenanceBody) -> dict[str, Any]:
    """Take the device out of service until ``until``, for ``minutes``, or (neither) for 30 days."""
    scope.require_enterprise(gateway.registry, enterprise)
    info = gateway.registry.device(enterprise, device)
    now = gateway.clock.now_ns() // 1_000_000
    until = end_ms(now, body.minutes, body.until)
    if until is None:
        until = now + MAX_MAINTENANCE_MS
    elif until - now > MAX_MAINTENANCE_MS:
        raise bad_param("until", "maintenance may last at most 30 days", "body")
    events = gateway.book.set_maintenance(info, user.username, body.note, now, until)
    gateway.alarms.dispatch(events)
    return {"device": info.device_id, "in_maintenance": True, "until": until,
            "events": [cursor.event(e) for e in events]}


@router.post("/devices/{enterprise}/{device}/maintenance/end")
async def end(gateway: GatewayDep, cursor: EventCursorDep, scope: CallerScope, user: Maintainer, enterprise: Slug,
              device: Slug, body: EndBody | None = None) -> dict[str, Any]:
    scope.require_enterprise(gateway.registry, enterprise)
    info = gateway.registry.device(enterprise, device)
    now = gateway.clock.now_ns() // 1_000_000
    events = gateway.book.end_maintenance(info, user.username, body.note if body else "", now)
    gateway.alarms.dispatch(events)
    return {"device": info.device_id, "in_maintenance": False, "events": [cursor.event(e) for e in events]}
