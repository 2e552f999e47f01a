"""Enterprise self-service: is my device's data arriving, why not, and how do I connect it.

``GET /devices/{enterprise}/{device}/connection`` answers, within the caller's scope (an enterprise
login: its own devices): the device's state (``online``, ``offline``, ``stale``, ``never`` seen,
``in_maintenance``), its last reading and last poll or message, the input refused from it by reason
(how often, when last, what was wrong, the start of the payload), where the gateway answers its
errors, and the settings to copy into a PLC or a publisher: the Modbus endpoint and registers the
gateway reads, or the broker, topics, login name and a payload example.

``POST /devices/{enterprise}/{device}/test-reading`` takes a telemetry payload (the JSON a device
publishes) and sends it through the gateway's own path: decoded as an MQTT message of the device
is, then the intake, the outbox, storage and evaluation. A test reading is a reading: over a limit
it alarms.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Path

from api.auth import require_roles
from api.deps import GatewayDep, GatewayView
from api.scope import CallerScope
from gateway.config import ModbusDevice, User
from gateway.registry import DeviceInfo

router = APIRouter(tags=["devices"])

Slug = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Sender = Annotated[User, require_roles("admin", "supervisor", "officer", "enterprise")]
READ_FIELDS = ("key", "kind", "unit", "register", "address", "dtype", "order", "bit", "count", "scale", "offset",
               "signal", "range_low", "range_high")


def _state(gateway: GatewayView, info: DeviceInfo, last_seen: int | None) -> str:
    if info.device_id in gateway.book.maintenance:
        return "in_maintenance"
    if info.index in gateway.book.offline:
        return "offline"
    if bool(gateway.alarms.detector.device_stale[info.index]):
        return "stale"
    return "online" if last_seen else "never"


def _settings(gateway: GatewayView, info: DeviceInfo) -> dict[str, Any]:
    points = gateway.registry.config.device_points(info.config)
    if isinstance(info.config, ModbusDevice):
        c = info.config
        return {"protocol": "modbus", "transport": c.transport, "host": c.host, "port": c.port, "unit": c.unit,
                "interval": c.interval, "timeout": c.timeout,
                "registers": [{k: v for k, v in p.model_dump(by_alias=True).items() if k in READ_FIELDS}
                              for p in points]}
    mqtt = gateway.registry.config.mqtt
    base = f"{mqtt.prefix.rstrip('/')}/{info.enterprise}/{info.id}"
    example = {"ts": gateway.clock.now_ns() // 1_000_000, "values": {p.key: 0.0 for p in points[:3]}}
    return {"protocol": "mqtt", "broker": mqtt.url, "telemetry_topic": f"{base}/telemetry",
            "status_topic": f"{base}/status", "errors_topic": f"{base}/errors", "qos": 1,
            "login": f"ent.{info.enterprise}",  # gridgate mqtt-auth's login of the enterprise
            "password": "from the gateway's administrator (gridgate mqtt-auth writes one per enterprise)",
            "points": [p.key for p in points], "payload_example": example}


@router.get("/devices/{enterprise}/{device}/connection")
def connection(gateway: GatewayDep, scope: CallerScope, enterprise: Slug, device: Slug) -> dict[str, Any]:
    """Whether the device's data arrives, what was refused from it, and how to connect it."""
    scope.require_enterprise(gateway.registry, enterprise)
    info = gateway.registry.device(enterprise, device)
    seen = int(gateway.alarms.detector.device_last_seen[info.index]) // 1_000_000 or None
    out: dict[str, Any] = {"device": info.device_id, "name": info.config.name, "protocol": info.protocol,
                           "state": _state(gateway, info, seen), "last_reading": seen}
    collector = gateway.collectors.get(info.protocol)
    if info.protocol == "modbus" and collector is not None and info.device_id in collector.pollers:
        poll = collector.pollers[info.device_id].health()
        out["poll"] = {k: poll[k] for k in ("online", "last_ok", "polls", "failures", "errors", "last_error",
                                             "quarantined")}
    elif info.protocol == "mqtt" and collector is not None:
        out["broker"] = {k: v for k, v in collector.health().items() if k in ("connected", "last_error")}
    out["refused"] = {reason: {"count": r.count, "last_at": r.last_at, "detail": r.detail, "payload": r.payload}
                      for reason, r in gateway.intake.rejects.of_device(info.device_id).items()}
    out["settings"] = _settings(gateway, info)
    return out


@router.post("/devices/{enterprise}/{device}/test-reading")
async def test_reading(gateway: GatewayDep, scope: CallerScope, user: Sender, enterprise: Slug, device: Slug,
                       body: Annotated[Any, Body(description="a telemetry payload, as the device publishes it")]
                       ) -> dict[str, Any]:
    """Send a reading through the gateway's own path; what was accepted and what refused, by reason."""
    scope.require_enterprise(gateway.registry, enterprise)
    info = gateway.registry.device(enterprise, device)
    return {"device": info.device_id, **await gateway.test_reading(info, orjson.dumps(body))}
