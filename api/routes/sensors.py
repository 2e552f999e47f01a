"""Sensors in the caller's scope: the latest value and state of each, and one sensor's series.

``/sensors/latest`` reads the detector's arrays (the last reading the pipeline evaluated), not the
store. ``/readings`` reads the store: raw readings, or buckets of ``every`` aggregated with
``agg`` (fault readings are never aggregated in). A series holds at most ``MAX_POINTS`` points;
past that the raw answer is cut and says ``"truncated": true``, and an aggregated request that
would need more buckets is a 400 (ask for a wider ``every``).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from api.deps import GatewayDep
from api.params import parse_every_ns, parse_time_ms
from api.scope import CallerScope
from gateway.batch import Quality

router = APIRouter(tags=["sensors"])

MAX_POINTS = 10_000
DEFAULT_WINDOW_MS = 3_600_000
Slug = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
QUALITY_NAMES = {int(q): q.name.lower() for q in Quality}


def _number(x: float) -> float | None:
    return x if math.isfinite(x) else None


@router.get("/sensors/latest")
def latest(
    gateway: GatewayDep,
    scope: CallerScope,
    enterprise: Annotated[str | None, Query(max_length=64)] = None,
    grid: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    """The last value (null if none yet), its time (epoch ms) and the state of each sensor in scope."""
    ents = scope.narrow(gateway.registry, enterprise=enterprise, grid=grid)
    d = gateway.alarms.detector
    out = []
    for s in gateway.registry.sensors:
        if ents is not None and s.enterprise not in ents:
            continue
        ts_ns = int(d.last_ts[s.index])
        seen = ts_ns != 0
        out.append({
            "sensor_id": s.sensor_id,
            "value": _number(float(d.last_value[s.index])) if seen else None,
            "ts": ts_ns // 1_000_000 if seen else None,
            "unit": s.unit,
            "state": gateway.alarms.sensor_state(s.index),
        })
    return out


@router.get("/sensors/{enterprise}/{device}/{point}/readings")
async def readings(
    gateway: GatewayDep,
    scope: CallerScope,
    enterprise: Slug,
    device: Slug,
    point: Slug,
    start: Annotated[str | None, Query(max_length=64, description="ISO 8601 or epoch ms; default end - 1 h")] = None,
    end: Annotated[str | None, Query(max_length=64, description="ISO 8601 or epoch ms; default now")] = None,
    every: Annotated[str | None, Query(max_length=32, description="bucket width: seconds, or 10s, 5m, 1h")] = None,
    agg: Annotated[Literal["mean", "min", "max", "last"] | None, Query()] = None,
) -> dict[str, Any]:
    """A series between ``start`` and ``end`` (inclusive), raw or aggregated; ts in epoch ms."""
    scope.require_enterprise(gateway.registry, enterprise)
    info = gateway.registry.any_sensor(f"{enterprise}/{device}/{point}")  # a retired one's history too
    end_ms = gateway.clock.now_ns() // 1_000_000 if end is None else parse_time_ms("end", end)
    start_ms = max(0, end_ms - DEFAULT_WINDOW_MS) if start is None else parse_time_ms("start", start)
    if start_ms > end_ms:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "start is after end")
    if agg is not None and every is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "agg needs every (the bucket width)")
    every_ns = None if every is None else parse_every_ns("every", every)
    start_ns, end_ns = start_ms * 1_000_000, end_ms * 1_000_000 + 999_999
    if every_ns is not None and (end_ns - start_ns) // every_ns + 1 > MAX_POINTS:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"more than {MAX_POINTS} buckets: use a wider every or a shorter window")
    rows = await gateway.storage.query(info.sensor_id, start_ns, end_ns, every_ns, agg or "mean",
                                       limit=MAX_POINTS + 1)
    truncated = len(rows) > MAX_POINTS
    return {
        "sensor_id": info.sensor_id,
        "unit": info.unit,
        "start": start_ms,
        "end": end_ms,
        "every": None if every_ns is None else every_ns / 1e9,
        "agg": None if every_ns is None else agg or "mean",
        "truncated": truncated,
        "points": [{"ts": p.ts, "value": _number(p.value), "quality": QUALITY_NAMES.get(p.quality, "fault")}
                   for p in rows[:MAX_POINTS]],
    }
