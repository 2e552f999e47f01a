"""``GET /healthz``: the gateway's health as JSON (the same counters as Prometheus metrics are
``GET /metrics``, :mod:`api.routes.metrics`).

The detail names enterprises, devices, grids in a flood, devices in maintenance and the last
errors of each (register addresses included), so it is not for everyone. ``/healthz`` without a
login says only ``{"status": "ok"}`` or ``"degraded"`` (a sink failing, or the outbox losing
data): enough for a probe. With a login it gives the detail in the caller's scope: an admin all
of it; any other login the devices, maintenance and floods of its own scope, the sinks' states
and the up/down flags of shared collectors, nothing of the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from api.auth import token_of_connection, unauthorized, user_of_token
from api.deps import GatewayDep
from api.scope import Scope, scope_of
from gateway.config import User
from gateway.errors import TokenError

router = APIRouter(tags=["health"])


# Only for the OpenAPI description; the token is read by the dependencies below.
_bearer = HTTPBearer(auto_error=False)


def optional_user(conn: HTTPConnection, gateway: GatewayDep,
                  _doc: Annotated[Any, Depends(_bearer)]) -> User | None:
    """The caller's login, None without a token; a bad token is a 401 all the same."""
    token = token_of_connection(conn)
    if token is None:
        return None
    try:
        return user_of_token(gateway, token)
    except TokenError as exc:
        raise unauthorized(f"invalid token: {exc}") from None


def health_status(health: Mapping[str, Any]) -> str:
    """``degraded`` when a sink is failing or the outbox is losing data; ``ok`` otherwise."""
    storage = health.get("storage", {})
    outbox = storage.get("outbox", {})
    failing = any(s.get("state") == "failing" for s in storage.get("sinks", {}).values())
    return "degraded" if failing or outbox.get("losing") or outbox.get("append_error") else "ok"


def scoped_health(health: Mapping[str, Any], scope: Scope) -> dict[str, Any]:
    """What a login that is not an admin may see of ``health``: its own devices, floods and maintenance."""

    def mine(device_id: str) -> bool:
        return scope.has_enterprise(device_id.partition("/")[0])

    collectors: dict[str, Any] = {}
    for name, comp in health.get("collectors", {}).items():
        if comp and all(isinstance(v, Mapping) for v in comp.values()):  # per device: those in scope
            collectors[name] = {device: h for device, h in comp.items() if mine(device)}
        else:  # shared by every enterprise: up or down, no counts, no errors
            collectors[name] = {k: v for k, v in comp.items() if isinstance(v, bool)}
    alarms = health.get("alarms", {})
    sinks = health.get("storage", {}).get("sinks", {})
    return {"status": health_status(health), "gateway": health.get("gateway"),
            "storage": {"sinks": {name: {"state": h.get("state")} for name, h in sinks.items()}},
            "collectors": collectors,
            "alarms": {"flooding": [g for g in alarms.get("flooding", []) if g in scope.alarm_grids],
                       "in_maintenance": [d for d in alarms.get("in_maintenance", []) if mine(d)]}}


@router.get("/healthz")
def healthz(gateway: GatewayDep, user: Annotated[User | None, Depends(optional_user)]) -> dict[str, Any]:
    """Up or down without a login; the detail in the caller's scope with one."""
    health = gateway.health()
    if user is None:
        return {"status": health_status(health)}
    scope = scope_of(gateway.registry, user)
    if scope.everything:
        return {"status": health_status(health), **health}
    return scoped_health(health, scope)
