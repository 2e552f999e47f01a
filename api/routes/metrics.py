"""``GET /metrics``: the gateway's health as Prometheus metrics, written by ``prometheus_client``.

A :class:`GatewayCollector` reads ``gateway.health()`` at scrape time and yields typed families:
every one has a HELP text, counters end in ``_total``, units are in the names (``_seconds``,
``_bytes``), states are gauges (1 for the current state, 0 for the others). Values kept per device,
per sink, per reason or per kind are labels, never parts of names, so the set of names stays fixed
however many devices there are. Each app has its own ``CollectorRegistry`` (several gateways run in
one test process; the library's global registry is never used). ``/metrics`` needs
``Authorization: Bearer`` with ``[api] metrics_token`` (for a scraper) or an admin login's token.

A collector's or notifier's health belongs to that component: the leaves named in
:data:`COLLECTOR_LEAVES` and :data:`NOTIFIER_LEAVES` get their type and help; a numeric leaf not
named there (a component that grew a counter) is still exported, as a gauge whose help says so.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import HTTPBearer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import HTTPConnection

from api.auth import token_of_connection, unauthorized, user_of_token
from api.deps import GatewayDep
from gateway.errors import TokenError

router = APIRouter(tags=["health"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNDESCRIBED = "not described by gridgate"

# (path in health(), metric name, type, help)
FIXED: list[tuple[tuple[str, ...], str, str, str]] = [
    (("pipeline", "evaluated"), "gridgate_readings_evaluated_total", "counter", "Readings evaluated."),
    (("pipeline", "stored"), "gridgate_readings_stored_total", "counter", "Readings written to the store."),
    (("evaluation", "behind_batches"), "gridgate_evaluation_behind_batches", "gauge",
     "Outbox batches the detector has not evaluated yet."),
    (("evaluation", "backlog_readings"), "gridgate_evaluation_backlog_readings", "gauge",
     "Readings in the outbox the detector has not confirmed."),
    (("evaluation", "backlog_seconds"), "gridgate_evaluation_backlog_seconds", "gauge",
     "Age of the oldest batch the detector has not confirmed."),
    (("storage", "outbox", "bytes"), "gridgate_outbox_bytes", "gauge", "Bytes spooled in the outbox."),
    (("storage", "outbox", "max_bytes"), "gridgate_outbox_max_bytes", "gauge", "The outbox quota in bytes."),
    (("storage", "outbox", "readings"), "gridgate_outbox_readings", "gauge", "Readings spooled in the outbox."),
    (("storage", "outbox", "dropped_readings"), "gridgate_outbox_dropped_readings_total", "counter",
     "Readings dropped at the outbox quota (each raised a data_loss alarm)."),
    (("storage", "outbox", "dropped_batches"), "gridgate_outbox_dropped_batches_total", "counter",
     "Outbox batches dropped at the quota."),
    (("storage", "outbox", "losing"), "gridgate_outbox_losing", "gauge",
     "1 while the outbox is over its quota and dropping data."),
    (("live", "subscribers"), "gridgate_live_subscribers", "gauge", "Live-stream subscribers."),
    (("live", "published"), "gridgate_live_events_published_total", "counter", "Alarm events published."),
    (("live", "delivered"), "gridgate_live_events_delivered_total", "counter", "Events queued to subscribers."),
    (("live", "overflows"), "gridgate_live_overflows_total", "counter", "Subscribers cut off for lagging."),
    (("alarms", "floods"), "gridgate_alarm_floods_total", "counter", "Alarm floods (a grid over its threshold)."),
    (("alarms", "chattering"), "gridgate_alarm_chattering_total", "counter", "Alarms flagged as chattering."),
    (("alarms", "held_back"), "gridgate_alarm_events_held_total", "counter",
     "Alarm events not pushed during a flood or while chattering."),
    (("alarms", "escalated"), "gridgate_alarm_escalations_total", "counter", "Escalation steps."),
    (("alarms", "refused_transitions"), "gridgate_alarm_refused_transitions_total", "counter",
     "Detector transitions the lifecycle tables refused (a bug if not 0)."),
    (("registry", "version"), "gridgate_registry_version", "gauge", "The registry's version (one higher a change)."),
]
# Sizes of lists in health(): (path, metric name, help); always gauges.
COUNTED: list[tuple[tuple[str, ...], str, str]] = [
    (("alarms", "flooding"), "gridgate_alarm_flooding_grids", "Grids in an alarm flood now."),
    (("alarms", "in_maintenance"), "gridgate_alarm_devices_in_maintenance", "Devices in maintenance now."),
]
SINK_STATES = ("ok", "lagging", "failing")
SINK_STATE_HELP = "The sink's state (1 for the current one)."
SINK_REJECTED_HELP = "Readings a sink refused for good, by reason."
REJECTED_HELP = "Input rejected, by kind and reason."
RELOADS_HELP = "Reloads of the configuration file (SIGHUP), by result."
NOTIFIER_STATES = ("idle", "sending", "retrying")

# A leaf of a component's health -> (metric name after ``gridgate_collector_`` or ``gridgate_notifier_``,
# type, help, the factor from the leaf to the unit of the name).
Leaf = tuple[str, str, str, float]
COLLECTOR_LEAVES: dict[str, Leaf] = {
    "online": ("online", "gauge", "1 while the device answers (Modbus: a request succeeded lately).", 1),
    "last_ok": ("last_ok_timestamp_seconds", "gauge", "When the device last answered (Unix time).", 1e-3),
    "polls": ("polls_total", "counter", "Polls of the device.", 1),
    "failures": ("failures_total", "counter", "Polls of which nothing was read.", 1),
    "request_failures": ("request_failures_total", "counter", "Requests of a poll that failed.", 1),
    "skipped_ticks": ("skipped_ticks_total", "counter", "Ticks skipped because the previous poll still ran.", 1),
    "reconnects": ("reconnects_total", "counter", "Connections opened again after a failure.", 1),
    "quarantined": ("quarantined_requests", "gauge", "Requests quarantined (asked again every 120 s).", 1),
    "connected": ("connected", "gauge", "1 while connected to the broker.", 1),
    "subscribed": ("subscribed", "gauge", "1 while subscribed to the telemetry topics.", 1),
    "messages": ("messages_total", "counter", "Messages received.", 1),
    "readings": ("readings_total", "counter", "Readings received.", 1),
    "rejected": ("rejected_total", "counter", "Input refused (by reason: gridgate_rejected_total).", 1),
    "errors_sent": ("errors_sent_total", "counter", "Rejections answered on the device's errors topic.", 1),
    "errors_suppressed": ("errors_suppressed_total", "counter",
                          "Rejections not answered (a device's answers are rate-limited).", 1),
}
NOTIFIER_LEAVES: dict[str, Leaf] = {
    "delivered": ("delivered_total", "counter", "Alarm events delivered.", 1),
    "failed": ("failed_total", "counter", "Alarm events refused for good by the receiver.", 1),
    "retries": ("retries_total", "counter", "Delivery attempts retried.", 1),
    "cursor": ("cursor", "gauge", "The last alarm event id the notifier confirmed.", 1),
    "lag_events": ("lag_events", "gauge", "Alarm events not confirmed yet.", 1),
    "in_flight": ("in_flight_events", "gauge", "Alarm events taken and not confirmed yet.", 1),
    "queued": ("queued_events", "gauge", "Alarm events queued in memory.", 1),
    "dropped": ("dropped_events_total", "counter", "Alarm events dropped at a full queue.", 1),
    "connected": ("connected", "gauge", "1 while connected to the broker.", 1),
    "published": ("published_total", "counter", "Alarm events published.", 1),
    "acked": ("acked_total", "counter", "Publications the broker acknowledged.", 1),
    "awaiting_ack": ("awaiting_ack_events", "gauge", "Publications awaiting the broker's acknowledgement.", 1),
}
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")


def _at(health: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = health
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _number(value: Any) -> float | None:
    """A number of health() as a float (a bool as 0 or 1); None for anything else."""
    return float(value) if isinstance(value, int | float) else None


class _Families:
    """Families by name, in the order first met. A family's samples may differ in their label names
    (a collector kept per device has a ``device`` label, one that is not has none)."""

    def __init__(self) -> None:
        self.by_name: dict[str, Metric] = {}

    def declare(self, name: str, kind: str, help_: str) -> None:
        """The family ``name``, made empty if new (it is exported even without samples)."""
        if name not in self.by_name:
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            self.by_name[name] = family(name, help_)

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        """A sample of the declared family ``name``."""
        fam = self.by_name[name]
        fam.add_sample(fam.name + "_total" if fam.type == "counter" else fam.name, dict(labels), value)

    def put(self, name: str, kind: str, help_: str, labels: dict[str, str], value: float) -> None:
        self.declare(name, kind, help_)
        self.add(name, labels, value)


def _components(health: Mapping[str, Any], out: _Families) -> None:
    """Collectors' and notifiers' health: per device when the component keeps it so."""
    for section, label, table in (("collectors", "collector", COLLECTOR_LEAVES),
                                  ("notifiers", "notifier", NOTIFIER_LEAVES)):
        for comp, comp_health in sorted(health.get(section, {}).items()):
            if not isinstance(comp_health, Mapping):
                continue
            per_device = bool(comp_health) and all(isinstance(v, Mapping) for v in comp_health.values())
            items = sorted(comp_health.items()) if per_device else [(None, comp_health)]
            for device, part in items:
                labels = {label: comp} if device is None else {label: comp, "device": device}
                _component(f"gridgate_{label}_", table, labels, part, out)


def _component(prefix: str, table: dict[str, Leaf], labels: dict[str, str], part: Mapping[str, Any],
               out: _Families) -> None:
    """One component's (or device's) health: the leaves of ``table`` as described there; errors by
    kind; a state as one gauge per state; any other number as an undescribed gauge."""
    for key, value in part.items():
        if key == "errors" and isinstance(value, Mapping):  # faults by kind (a Modbus exception code, timeout)
            for kind, n in sorted(value.items()):
                out.put(f"{prefix}errors_total", "counter", "Failed requests, by kind.",
                        {**labels, "kind": str(kind)}, float(n))
        elif key == "state" and isinstance(value, str):
            for st in dict.fromkeys((*NOTIFIER_STATES, value)):
                out.put(f"{prefix}state", "gauge", "The notifier's state (1 for the current one).",
                        {**labels, "state": st}, float(st == value))
        elif key in table:
            name, kind, help_, scale = table[key]
            n = float(len(value)) if isinstance(value, list) else _number(value)
            if n is not None:
                out.put(prefix + name, kind, help_, labels, n * scale)
        elif isinstance(value, Mapping):
            _component(f"{prefix}{_NAME_BAD.sub('_', str(key))}_", {}, labels, value, out)
        elif (n := _number(value)) is not None:
            name = prefix + _NAME_BAD.sub("_", str(key))
            out.put(name, "gauge", f"{key} in the component's health ({UNDESCRIBED}).", labels, n)


def _sinks(sinks: Mapping[str, Any], out: _Families) -> None:
    """Per sink: backlog, written, failures, state (one gauge per state, 1 for the current one), rejected."""
    fams = [("gridgate_sink_backlog_readings", "gauge", "backlog_readings", "Readings the sink has not confirmed."),
            ("gridgate_sink_backlog_seconds", "gauge", "backlog_seconds", "Age of the oldest unconfirmed reading."),
            ("gridgate_sink_written_total", "counter", "written", "Readings the sink stored."),
            ("gridgate_sink_failures_total", "counter", "failures", "Failed write attempts (retried).")]
    for name, kind, key, help_ in fams:
        out.declare(name, kind, help_)
        for s, h in sorted(sinks.items()):
            out.add(name, {"sink": s}, float(h.get(key, 0)))
    out.declare("gridgate_sink_state", "gauge", SINK_STATE_HELP)
    out.declare("gridgate_sink_rejected_total", "counter", SINK_REJECTED_HELP)
    for s, h in sorted(sinks.items()):
        for st in SINK_STATES:
            out.add("gridgate_sink_state", {"sink": s, "state": st}, float(h.get("state") == st))
        for reason, n in sorted(h.get("rejected", {}).items()):
            out.add("gridgate_sink_rejected_total", {"sink": s, "reason": reason}, float(n))



def families(health: Mapping[str, Any]) -> Iterator[Metric]:
    """The metric families of a gateway's ``health()``."""
    out = _Families()
    out.put("gridgate_info", "gauge", "The gateway (its id as a label); always 1.",
            {"gateway": str(health.get("gateway"))}, 1.0)
    for path, name, kind, help_ in FIXED:
        if (value := _number(_at(health, path))) is not None:
            out.put(name, kind, help_, {}, value)
    for path, name, help_ in COUNTED:
        if isinstance(items := _at(health, path), list):
            out.put(name, "gauge", help_, {}, float(len(items)))
    if isinstance(outbox := _at(health, ("storage", "outbox")), Mapping):
        out.put("gridgate_outbox_refusing_writes", "gauge", "1 while the outbox refuses writes (ingest paused).",
                {}, float(bool(outbox.get("append_error"))))
    if isinstance(reloads := _at(health, ("registry", "reloads")), Mapping):
        out.declare("gridgate_registry_reloads_total", "counter", RELOADS_HELP)
        for result, n in sorted(reloads.items()):
            out.add("gridgate_registry_reloads_total", {"result": result}, float(n))
    out.declare("gridgate_rejected_total", "counter", REJECTED_HELP)
    for key, n in sorted(health.get("pipeline", {}).get("rejected", {}).items()):
        kind, _, reason = key.partition(":")
        out.add("gridgate_rejected_total", {"kind": kind, "reason": reason}, float(n))
    _sinks(health.get("storage", {}).get("sinks", {}), out)
    _components(health, out)
    yield from out.by_name.values()


class GatewayCollector(Collector):
    """The families of one gateway, read from its health (``health``, called at each scrape)."""

    def __init__(self, health: Callable[[], Mapping[str, Any]]) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        yield from families(self.health())


def exposition(health: Mapping[str, Any]) -> str:
    """The Prometheus text exposition of a gateway's ``health()``, as ``/metrics`` writes it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(lambda: health))
    return generate_latest(registry).decode()


def metrics_registry(conn: HTTPConnection, gateway: GatewayDep) -> CollectorRegistry:
    """The app's own registry, with its gateway's collector; made at the first scrape (two first
    scrapes at once may each make one: one is kept, both answer the same)."""
    state = conn.app.state
    registry = getattr(state, "metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(GatewayCollector(gateway.health))
        state.metrics_registry = registry
    return registry


# Only for the OpenAPI description; the token is read by the dependency below.
_bearer = HTTPBearer(auto_error=False)


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
def metrics(registry: Annotated[CollectorRegistry, Depends(metrics_registry)]) -> Response:
    """The gateway's counters in the Prometheus text format (version 0.0.4)."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)
