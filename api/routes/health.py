"""``GET /healthz`` (the gateway's health as JSON) and ``GET /metrics`` (the same counters in the
Prometheus text format, version 0.0.4, written by hand).

The detail names enterprises, devices, grids in a flood, devices in maintenance and the last
errors of each (register addresses included), so it is not for everyone. ``/healthz`` without a
login says only ``{"status": "ok"}`` or ``"degraded"`` (a sink failing, or the outbox losing
data): enough for a probe. With a login it gives the detail in the caller's scope: an admin all
of it; any other login the devices, maintenance and floods of its own scope, the sinks' states
and the up/down flags of shared collectors, nothing of the rest. ``/metrics`` needs
``Authorization: Bearer`` with ``[api] metrics_token`` (for a scraper) or an admin login's token.

Pipeline and live-stream counters have fixed names; rejected input is one counter labelled by
kind and reason; every numeric leaf of a collector's or notifier's health becomes
``gridgate_collector_<path>{collector="<name>"}`` (``..._notifier_...`` likewise; health kept per
device adds a ``device`` label), untyped, since their shapes belong to those components.
"""

from __future__ import annotations

import hmac
import math
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from api.auth import token_of_connection, unauthorized, user_of_token
from api.deps import GatewayDep
from api.scope import Scope, scope_of
from gateway.config import User
from gateway.errors import TokenError

router = APIRouter(tags=["health"])

# (path in health(), metric name, type, help)
FIXED = [
    (("pipeline", "evaluated"), "gridgate_readings_evaluated_total", "counter", "Readings evaluated."),
    (("pipeline", "stored"), "gridgate_readings_stored_total", "counter", "Readings written to the store."),
    (("evaluation", "behind_batches"), "gridgate_evaluation_behind_batches", "gauge",
     "Outbox batches the detector has not evaluated yet."),
    (("evaluation", "backlog_readings"), "gridgate_evaluation_backlog_readings", "gauge",
     "Readings in the outbox the detector has not confirmed."),
    (("evaluation", "backlog_seconds"), "gridgate_evaluation_backlog_seconds", "gauge",
     "Age of the oldest batch the detector has not confirmed."),
    (("storage", "outbox", "bytes"), "gridgate_outbox_bytes", "gauge", "Bytes spooled in the outbox."),
    (("storage", "outbox", "max_bytes"), "gridgate_outbox_max_bytes", "gauge", "The outbox quota."),
    (("storage", "outbox", "readings"), "gridgate_outbox_readings", "gauge", "Readings spooled in the outbox."),
    (("storage", "outbox", "dropped_readings"), "gridgate_outbox_dropped_readings_total", "counter",
     "Readings dropped at the outbox quota (each raised a data_loss alarm)."),
    (("live", "subscribers"), "gridgate_live_subscribers", "gauge", "Live-stream subscribers."),
    (("live", "published"), "gridgate_live_events_published_total", "counter", "Alarm events published."),
    (("live", "delivered"), "gridgate_live_events_delivered_total", "counter",
     "Events queued to subscribers."),
    (("live", "overflows"), "gridgate_live_overflows_total", "counter", "Subscribers cut off for lagging."),
    (("alarms", "floods"), "gridgate_alarm_floods_total", "counter", "Alarm floods (a grid over its threshold)."),
    (("alarms", "chattering"), "gridgate_alarm_chattering_total", "counter", "Alarms flagged as chattering."),
    (("alarms", "held_back"), "gridgate_alarm_events_held_total", "counter",
     "Alarm events not pushed during a flood or while chattering."),
    (("alarms", "escalated"), "gridgate_alarm_escalations_total", "counter", "Escalation steps."),
    (("alarms", "refused_transitions"), "gridgate_alarm_refused_transitions_total", "counter",
     "Detector transitions the lifecycle tables refused (a bug if not 0)."),
]
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")


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


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for key, value in data.items():
        name = _NAME_BAD.sub("_", f"{prefix}{key}")
        if isinstance(value, Mapping):
            yield from _leaves(value, name + "_")
        elif isinstance(value, bool):
            yield name, float(value)
        elif isinstance(value, int | float):
            yield name, float(value)


def _num(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(int(x)) if x.is_integer() else repr(x)


def exposition(health: Mapping[str, Any]) -> str:
    """The Prometheus text exposition of a gateway's ``health()``."""
    lines = [f'# TYPE gridgate_info gauge\ngridgate_info{{gateway="{_label(str(health.get("gateway")))}"}} 1']
    for path, name, kind, help_ in FIXED:
        value: Any = health
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, int | float):
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {_num(float(value))}"]
    rejected = health.get("pipeline", {}).get("rejected", {})
    lines += ["# HELP gridgate_rejected_total Input rejected, by kind and reason.",
              "# TYPE gridgate_rejected_total counter"]
    for key, n in sorted(rejected.items()):
        kind, _, reason = key.partition(":")
        lines.append(f'gridgate_rejected_total{{kind="{_label(kind)}",reason="{_label(reason)}"}} {n}')
    lines += _sink_lines(health.get("storage", {}).get("sinks", {}))
    families: dict[str, list[str]] = {}  # a family's samples must be contiguous
    for section, label in (("collectors", "collector"), ("notifiers", "notifier")):
        for comp, comp_health in sorted(health.get(section, {}).items()):
            if not isinstance(comp_health, Mapping):
                continue
            per_device = bool(comp_health) and all(isinstance(v, Mapping) for v in comp_health.values())
            # A collector's health per device ("ent/dev" -> counters) becomes a device label, so that
            # metric names stay a fixed set however many devices there are.
            items = sorted(comp_health.items()) if per_device else [(None, comp_health)]
            for device, part in items:
                labels = f'{label}="{_label(comp)}"' + ("" if device is None else f',device="{_label(device)}"')
                errors = part.get("errors")
                if isinstance(errors, Mapping):  # faults by kind (a Modbus exception code, timeout, ...)
                    name = f"gridgate_{label}_errors_total"
                    families.setdefault(name, []).extend(f'{name}{{{labels},kind="{_label(kind)}"}} {_num(float(n))}'
                                                         for kind, n in sorted(errors.items()))
                    part = {k: v for k, v in part.items() if k != "errors"}
                for leaf, value in _leaves(part):
                    name = f"gridgate_{label}_{leaf}"
                    families.setdefault(name, []).append(f"{name}{{{labels}}} {_num(value)}")
    for name, samples in families.items():
        lines += [f"# TYPE {name} untyped", *samples]
    return "\n".join(lines) + "\n"


SINK_STATES = ("ok", "lagging", "failing")


def _sink_lines(sinks: Mapping[str, Any]) -> list[str]:
    """Per sink: state (one gauge per state, 1 for the current one), backlog, written, rejected."""
    out: list[str] = []
    fams = [("gridgate_sink_backlog_readings", "gauge", "backlog_readings", "Readings the sink has not confirmed."),
            ("gridgate_sink_backlog_seconds", "gauge", "backlog_seconds", "Age of the oldest unconfirmed reading."),
            ("gridgate_sink_written_total", "counter", "written", "Readings the sink stored."),
            ("gridgate_sink_failures_total", "counter", "failures", "Failed write attempts (retried).")]
    for name, kind, key, help_ in fams:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
        out += [f'{name}{{sink="{_label(s)}"}} {_num(float(h.get(key, 0)))}' for s, h in sorted(sinks.items())]
    out += ["# HELP gridgate_sink_state The sink's state (1 for the current one).", "# TYPE gridgate_sink_state gauge"]
    for s, h in sorted(sinks.items()):
        out += [f'gridgate_sink_state{{sink="{_label(s)}",state="{st}"}} {int(h.get("state") == st)}'
                for st in SINK_STATES]
    out += ["# HELP gridgate_sink_rejected_total Readings a sink refused for good, by reason.",
            "# TYPE gridgate_sink_rejected_total counter"]
    for s, h in sorted(sinks.items()):
        out += [f'gridgate_sink_rejected_total{{sink="{_label(s)}",reason="{_label(r)}"}} {n}'
                for r, n in sorted(h.get("rejected", {}).items())]
    return out


def metrics_reader(conn: HTTPConnection, gateway: GatewayDep, _doc: Annotated[Any, Depends(_bearer)]) -> None:
    """Admit ``[api] metrics_token`` or an admin login's token: 401 without either, 403 for another login."""
    token = token_of_connection(conn)
    if token is None:
        raise unauthorized()
    expected = gateway.config.api.metrics_token
    if expected is not None and hmac.compare_digest(token.encode(), expected.encode()):
        return
    try:
        user = user_of_token(gateway, token)
    except TokenError as exc:
        raise unauthorized(f"invalid token: {exc}") from None
    if user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "metrics are for the metrics token or an admin")


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(metrics_reader)])
def metrics(gateway: GatewayDep) -> PlainTextResponse:
    return PlainTextResponse(exposition(gateway.health()), media_type="text/plain; version=0.0.4")
