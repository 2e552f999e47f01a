"""The app factory: ``create_app(gateway)`` builds the FastAPI app serving one running gateway.

Routers live in :mod:`api.routes`, one per resource, under ``/api/v1``; the console page is at
``/`` and ``/console``. The gateway is put on ``app.state`` (nothing is created at import time).
gridgate's own errors are answered as ``{"detail": ...}``: an unknown alarm, sensor or registry id
(or one outside the caller's scope) is 404, an alarm action the lifecycle refuses is 409, a store
that cannot answer is 503. JSON is rendered with orjson, so a NaN or infinite value becomes null
rather than a 500. Every refused request (4xx) is counted as ``api:http_<status>`` with the other
rejected input (``/healthz``, ``gridgate_rejected_total``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.deps import GatewayView
from api.routes import alarms, auth, console, devices, health, live, me, reports, sensors, stats
from gateway.errors import AlarmError, RegistryError, StoreError, UnknownAlarm

API_PREFIX = "/api/v1"

ERROR_STATUS: list[tuple[type[Exception], int]] = [
    (UnknownAlarm, 404),  # before AlarmError, its base
    (AlarmError, 409),
    (RegistryError, 404),
    (StoreError, 503),
]


class OrjsonResponse(JSONResponse):
    """JSON via orjson: numpy scalars are serialised, NaN and infinities become null."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _error_handler(code: int) -> Any:
    async def handle(request: Request, exc: Exception) -> OrjsonResponse:
        return OrjsonResponse({"detail": str(exc)}, status_code=code)

    return handle


def create_app(gateway: GatewayView) -> FastAPI:
    """The HTTP API, live stream and console of ``gateway``."""
    app = FastAPI(title="gridgate", version="1", default_response_class=OrjsonResponse,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None)
    app.state.gateway = gateway
    for exc_type, code in ERROR_STATUS:
        app.add_exception_handler(exc_type, _error_handler(code))

    @app.middleware("http")
    async def count_refusals(request: Request, call_next: Any) -> Any:
        """Every refused request (4xx) is counted by status, like any other rejected input."""
        response = await call_next(request)
        if 400 <= response.status_code < 500:
            route = request.scope.get("route")
            where = getattr(route, "path", None) or request.url.path[:200]
            gateway.intake.rejects.reject("api", f"http_{response.status_code}", f"{request.method} {where}")
        return response
    for module in (auth, me, alarms, sensors, health, live, reports, stats, devices):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(console.router)
    return app
