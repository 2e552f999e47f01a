"""``GET /healthz`` (the gateway's health as JSON) and ``GET /metrics`` (the same counters in the
Prometheus text format, version 0.0.4, written by hand). Both answer without a login, as probes
and scrapers expect; they carry counts, never readings or alarms.

Pipeline and live-stream counters have fixed names; rejected input is one counter labelled by
kind and reason; every numeric leaf of a collector's or notifier's health becomes
``gridgate_collector_<path>{collector="<name>"}`` (``..._notifier_...`` likewise; health kept per
device adds a ``device`` label), untyped, since their shapes belong to those components.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from api.deps import GatewayDep

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


@router.get("/healthz")
def healthz(gateway: GatewayDep) -> dict[str, Any]:
    return gateway.health()


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


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(gateway: GatewayDep) -> PlainTextResponse:
    return PlainTextResponse(exposition(gateway.health()), media_type="text/plain; version=0.0.4")
