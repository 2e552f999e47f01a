"""Public hazard reports: ``POST /reports``, no login, rate limited per client address.

Anyone may report a hazard (a smell of gas, a leaking drum, a locked fire exit): naming the
enterprise, or the grid with a description of the place, what they saw, and optionally how to
reach them. A report becomes an alarm of kind ``report`` in that grid, routed to its officers on
duty like any alarm, escalated when nobody acknowledges it, and handled through the same case
flow (dispatch, resolve, close). The reporter gets the report's number, nothing of the book.

Reports have limits of their own and never count toward a grid's alarm flood. Each client
address may send ``[api] reports_per_hour`` reports in any hour (a sliding window); one more is a
429 with ``Retry-After``. Behind a reverse proxy every report comes from the proxy's address: put
the limit at the proxy, or raise this one. The book then limits the alarms reports open
(``[alarms.reports]``): one open report alarm per place (an enterprise, or a grid), which further
reports about it add to (a count, and each text in its history), and at most ``per_grid`` new
report alarms per grid in ``window``. A burst about one place is one alarm for the officer.
"""

from __future__ import annotations

from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import GatewayDep
from gateway.errors import RegistryError

router = APIRouter(tags=["reports"])

HOUR_MS = 3_600_000
MAX_CLIENTS = 100_000  # addresses remembered; past it the quietest are forgotten


class ReportBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    text: Annotated[str, Field(min_length=1, max_length=2000, description="what was seen")]
    enterprise: Annotated[str | None, Field(max_length=64)] = None
    grid: Annotated[str | None, Field(max_length=64)] = None
    location: Annotated[str | None, Field(max_length=500, description="where, in words")] = None
    contact: Annotated[str | None, Field(max_length=100, description="a phone number or name")] = None

    @model_validator(mode="after")
    def _where(self) -> ReportBody:
        if self.enterprise is None and self.grid is None:
            raise ValueError("say where: an enterprise, or a grid with a location")
        if self.enterprise is None and not self.location:
            raise ValueError("a report for a grid needs a location: where in the grid")
        return self


class RateLimiter:
    """At most ``limit`` hits per ``window_ms`` per key, sliding."""

    def __init__(self, limit: int, window_ms: int = HOUR_MS) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self.hits: dict[str, deque[int]] = {}
        self.refused = 0

    def check(self, key: str, now_ms: int) -> float | None:
        """None when allowed (and counted); else the seconds until the next hit is allowed."""
        times = self.hits.setdefault(key, deque())
        while times and times[0] <= now_ms - self.window_ms:
            times.popleft()
        if len(times) >= self.limit:
            self.refused += 1
            return (times[0] + self.window_ms - now_ms) / 1000
        times.append(now_ms)
        if len(self.hits) > MAX_CLIENTS:
            for k in [k for k, t in self.hits.items() if not t or t[-1] <= now_ms - self.window_ms]:
                del self.hits[k]
        return None


def _limiter(request: Request, limit: int) -> RateLimiter:
    state = request.app.state
    if getattr(state, "report_limiter", None) is None:
        state.report_limiter = RateLimiter(limit)
    return state.report_limiter


@router.post("/reports", status_code=status.HTTP_201_CREATED)
async def report(gateway: GatewayDep, request: Request, body: ReportBody) -> dict[str, Any]:
    """File a hazard report; 404 for an unknown enterprise or grid, 429 past the rate limit."""
    now = gateway.clock.now_ns() // 1_000_000
    client = request.client.host if request.client else "unknown"
    reg = gateway.registry
    if body.enterprise is not None:
        if body.enterprise not in reg.enterprises:
            raise RegistryError(f"enterprise {body.enterprise!r} not found")
        grid = reg.enterprises[body.enterprise].grid
        if body.grid is not None and body.grid != grid:
            raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                f"enterprise {body.enterprise!r} is not in grid {body.grid!r}")
    else:
        grid = body.grid or ""
        if grid not in reg.grids:
            raise RegistryError(f"grid {grid!r} not found")
    wait = _limiter(request, gateway.config.api.reports_per_hour).check(client, now)
    if wait is not None:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"at most {gateway.config.api.reports_per_hour} reports an hour from one address",
                            headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    event = gateway.book.report(grid, body.enterprise or "", body.text, body.location, body.contact, client, now,
                                gateway.config.alarms.reports)
    gateway.alarms.dispatch([event])
    return {"id": event.alarm.id, "grid": grid, "received_at": now,
            "status": "received: the grid's safety officers have it"}
