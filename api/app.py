"""The app factory: ``create_app(gateway)`` builds the FastAPI app serving one running gateway.

Routers live in :mod:`api.routes`, one per resource, under ``/api/v1``; the console page is at
``/`` and ``/console``, its files under ``/static/``, the API explorer at ``/api/v1/docs`` (assets
from the ``fastapi-offline`` package, no CDN). The gateway is put on ``app.state`` (nothing is
created at import time).
gridgate's own errors are answered as ``{"detail": ...}``: an unknown alarm, sensor, registry id or
login (or one outside the caller's scope) is 404, an alarm action the lifecycle refuses is 409, a
store that cannot answer is 503; for accounts, a bad or revoked token or a failed login is 401
(``WWW-Authenticate: Bearer``), a change the caller's role may not make 403, a login naming what
does not exist 422, a throttled login 429 and a full password pool 503 (both with
``Retry-After``). JSON is rendered with orjson, so a NaN or infinite value becomes null rather
than a 500. A validation error (422) says where and what (``loc``, ``msg``, ``type``),
never the input. In front of everything is :class:`~api.guard.RequestGuard` (client address,
body size, strict JSON, security headers); every refused request (4xx) is counted as
``api:http_<status>`` with the other rejected input (``/healthz``, ``gridgate_rejected_total``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from api.cursor import EventCursor
from api.deps import GatewayView
from api.guard import RequestGuard
from api.routes import (
    alarms,
    auth,
    connection,
    console,
    devices,
    health,
    live,
    me,
    metrics,
    registry,
    reports,
    sensors,
    stats,
    users,
)
from gateway.errors import (
    AccountError,
    AccountForbidden,
    AlarmError,
    ConfigError,
    HasherBusy,
    InvalidAccount,
    LoginRefused,
    LoginThrottled,
    RegistryError,
    StoreError,
    TokenError,
    UnknownAccount,
    UnknownAlarm,
)
from gateway.register.edit import EditRefused
from gateway.register.store import VersionConflict
from gateway.register.tabular import TableError

API_PREFIX = "/api/v1"

ERROR_STATUS: list[tuple[type[Exception], int]] = [
    (UnknownAlarm, 404),  # before AlarmError, its base
    (AlarmError, 409),
    (RegistryError, 404),
    (StoreError, 503),
    (VersionConflict, 409),
    (UnknownAccount, 404),  # the account errors: before AccountError, their base
    (InvalidAccount, 422),
    (AccountForbidden, 403),
    (AccountError, 409),
]


class OrjsonResponse(JSONResponse):
    """JSON via orjson: numpy scalars are serialised, NaN and infinities become null."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _error_handler(code: int) -> Any:
    async def handle(request: Request, exc: Exception) -> OrjsonResponse:
        return OrjsonResponse({"detail": str(exc)}, status_code=code)

    return handle


def _short(part: Any, n: int = 64) -> Any:
    """A part of an error (an int, or text that may be the caller's): at most ``n`` printable characters."""
    if isinstance(part, int):
        return part
    return str(part)[:n].encode("utf-8", "backslashreplace").decode("utf-8")


async def _token_error(request: Request, exc: Exception) -> OrjsonResponse:
    return OrjsonResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def _login_refused(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, LoginRefused)
    code = 429 if isinstance(exc, LoginThrottled) else 503 if isinstance(exc, HasherBusy) else 409
    return OrjsonResponse({"detail": str(exc)}, status_code=code, headers={"Retry-After": str(exc.retry_after)})


async def _config_error(request: Request, exc: Exception) -> OrjsonResponse:
    """A registry change refused by the checks of ``gridgate check``: its key paths and messages."""
    assert isinstance(exc, ConfigError)
    return OrjsonResponse({"detail": [{"path": p, "message": m} for p, m in exc.problems[:200]]}, status_code=422)


async def _table_error(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, TableError)
    return OrjsonResponse({"detail": exc.problems[:500], "problems": len(exc.problems)}, status_code=422)


async def _edit_refused(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, EditRefused)
    return OrjsonResponse({"detail": str(exc)}, status_code=exc.status)


async def _validation_error(request: Request, exc: Exception) -> OrjsonResponse:
    """422 with where and what of each error (at most 20), never the input it was about."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": [_short(p) for p in e.get("loc", ())[:8]], "msg": _short(e.get("msg", ""), 200),
               "type": _short(e.get("type", ""))} for e in exc.errors()[:20]]
    return OrjsonResponse({"detail": errors}, status_code=422)


def create_app(gateway: GatewayView) -> FastAPI:
    """The HTTP API, live stream and console of ``gateway``."""
    app = FastAPI(title="gridgate", version="1", default_response_class=OrjsonResponse,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None, redoc_url=None)
    app.state.gateway = gateway
    app.state.event_cursor = EventCursor(gateway.secret)
    for exc_type, code in ERROR_STATUS:
        app.add_exception_handler(exc_type, _error_handler(code))
    app.add_exception_handler(TokenError, _token_error)
    app.add_exception_handler(LoginRefused, _login_refused)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ConfigError, _config_error)
    app.add_exception_handler(TableError, _table_error)
    app.add_exception_handler(EditRefused, _edit_refused)

    def refused(status: int, method: str, where: str) -> None:
        """Every refused request (4xx) is counted by status, like any other rejected input."""
        gateway.intake.rejects.reject("api", f"http_{status}", f"{method} {where}")

    api = gateway.config.api
    app.add_middleware(RequestGuard, max_body=api.max_body, trusted_proxies=api.trusted_proxies, refused=refused,
                       larger={f"{API_PREFIX}/registry/import": api.max_import})
    for module in (auth, me, users, alarms, sensors, health, metrics, live, reports, stats, devices, connection,
                   registry):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(console.router)
    # the console's scripts, styles and icon; Swagger UI's assets for /api/v1/docs, from their package
    app.mount("/static", StaticFiles(packages=[("api", "static")]), name="static")
    app.mount(console.DOCS_ASSETS, StaticFiles(directory=console.docs_assets()), name="docs-assets")
    return app
