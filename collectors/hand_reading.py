"""A reading sent by hand (an enterprise's engineer checking a new device, from the console or the
API): decoded exactly as an MQTT telemetry message of the device is (:mod:`collectors.mqtt_payload`)
and handed to the same intake, so it is stored and evaluated like any other reading (over a limit,
it alarms). What the decoder refuses is counted against the device like a refused message."""

from __future__ import annotations

from typing import Any

from collectors.mqtt_payload import Window, batch_of, decode_telemetry
from gateway.errors import PayloadError
from gateway.ingest.intake import Intake
from gateway.registry import DeviceInfo


async def submit(intake: Intake, device: DeviceInfo, payload: bytes, window: Window) -> dict[str, Any]:
    """Decode ``payload`` (the telemetry JSON) for ``device`` and submit what it yields; what was
    accepted (once it is durable) and what was refused, by reason."""
    try:
        decoded = decode_telemetry(payload, device.points, window)
    except PayloadError as exc:
        intake.rejects.reject("hand", exc.reason, device.device_id, exc.detail, device=device.device_id,
                              payload=payload)
        return {"accepted": 0, "refused": {exc.reason: {"count": 1, "detail": exc.detail}}}
    for reason, (count, detail) in decoded.problems.items():
        intake.rejects.reject("hand", reason, device.device_id, detail, n=count, device=device.device_id,
                              payload=payload)
    keys = {index: key for key, index in device.points.items()}
    readings: list[dict[str, Any]] = []
    if decoded.parts:
        batch = batch_of(decoded.parts)
        await intake.submit(batch)
        readings = [{"point": keys[int(s)], "ts": int(t) // 1_000_000, "value": float(v)}
                    for s, t, v in zip(batch.sensor, batch.ts, batch.value, strict=True)]
    return {"accepted": decoded.readings, "readings": readings,
            "refused": {r: {"count": c, "detail": d} for r, (c, d) in decoded.problems.items()}}
