"""Alarm statistics in the caller's scope: officers' response times and each grid's alarm load.

``start`` and ``end`` are ISO 8601 with an offset or epoch ms (a malformed one is a 422); the
period is ``start <= ts < end``, by default the 7 days up to now, and ``end`` not after ``start``
is a 400. The definitions are those of :mod:`alerts.stats`; this layer only resolves the scope.

``/stats/officers`` is for admins (every officer), supervisors and officers (the officers serving
the grids in their scope); a department or enterprise login gets 403: it supervises nobody.
Only alarms in the caller's scope are counted. ``/stats/alarms`` is for every login: one row per
grid in scope (admin: every grid), counting only the alarms the caller may see, so an enterprise
login sees its own alarms in its grid; ``grid`` picks one (404 outside the scope).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from alerts.stats import (
    TARGETS,
    Period,
    alarm_stats,
    login_officers,
    officer_stats,
    officers_serving,
    total_stats,
)
from api.auth import require_roles
from api.deps import GatewayDep
from api.params import parse_time_ms
from api.scope import CallerScope
from gateway.config import User

router = APIRouter(tags=["stats"])

DEFAULT_WINDOW_MS = 7 * 86_400_000
Supervising = Annotated[User, require_roles("admin", "supervisor", "officer")]
Start = Annotated[str | None, Query(description="ISO 8601 or epoch ms; default end - 7 days")]
End = Annotated[str | None, Query(description="ISO 8601 or epoch ms, exclusive; default now")]


def _period(gateway: GatewayDep, start: str | None, end: str | None) -> Period:
    end_ms = gateway.clock.now_ns() // 1_000_000 if end is None else parse_time_ms("end", end)
    start_ms = max(0, end_ms - DEFAULT_WINDOW_MS) if start is None else parse_time_ms("start", start)
    if end_ms <= start_ms:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "end must be after start")
    return Period(start_ms, end_ms)


@router.get("/stats/officers")
def officers(gateway: GatewayDep, scope: CallerScope, user: Supervising, start: Start = None,
             end: End = None) -> dict[str, Any]:
    """Per officer in scope: alarms received, acknowledged and closed, with median and p90 times."""
    period = _period(gateway, start, end)
    reg = gateway.registry
    ids = officers_serving(reg, scope.grids)
    rows = officer_stats(gateway.book, ids, login_officers(gateway.accounts.users()),
                         gateway.config.alarms.escalate_after, scope.within, period)
    return {"start": period.start_ms, "end": period.end_ms,
            "officers": [{**asdict(r), "name": reg.officers[r.officer].name} for r in rows]}


@router.get("/stats/alarms")
def alarms(gateway: GatewayDep, scope: CallerScope, start: Start = None, end: End = None,
           grid: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
    """Per grid in scope: alarm rate, floods, chattering and stale alarms, priority mix, kinds."""
    period = _period(gateway, start, end)
    reg = gateway.registry
    if grid is not None:
        scope.require_grid(reg, grid)
        grids = [grid]
    else:
        grids = [g for g in reg.grids if scope.has_grid(g)]
    rows = alarm_stats(gateway.book, grids, scope.within, period)
    return {"start": period.start_ms, "end": period.end_ms, "targets": TARGETS,
            "grids": [{**asdict(r), "name": reg.grids[r.grid].name} for r in rows if r.grid is not None],
            "total": {k: v for k, v in asdict(total_stats(rows, period)).items() if k != "grid"}}
