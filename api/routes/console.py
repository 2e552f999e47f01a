"""The officer console and the API explorer, served from the package (no build step, no CDN).

- ``GET /`` and ``GET /console``: the console's page (``api/static/console.html``); its scripts,
  styles and icon are files under ``/static/`` (mounted by :func:`api.app.create_app`).
- ``GET /console/meta.json``: what the console needs of the code's own tables, so that it offers
  exactly what the book allows: the state and case tables (:mod:`alerts.model`), the priority of
  each level, GB/T 50493-2019's default limits (:mod:`gateway.standards`) and the gateway's
  ``[alarms]`` timings. Public facts of the standard and the lifecycle: no login needed.
- ``GET /favicon.ico``: the console's icon (SVG), so no browser gets a 404 on every load.
- ``GET /api/v1/docs`` (and ``/docs``, redirected): Swagger UI over ``/api/v1/openapi.json``, its
  assets from the ``fastapi-offline`` package, mounted at ``/api/v1/docs/assets``.

Each page carries a Content-Security-Policy that admits its own files ('self') and exactly its own
inline script and style, by their SHA-256 (computed when first served, so an edit to the page
needs no edit here): the console talks to its own origin only (HTTP and the live WebSocket).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from alerts.model import CASES, PRIORITY, PRIORITY_NAMES, TRANSITIONS
from api.deps import GatewayDep
from gateway.standards import (
    COMBUSTIBLE_HIGH,
    COMBUSTIBLE_HIGH_HIGH,
    MOLAR_VOLUME,
    OXYGEN_HIGH,
    OXYGEN_LOW,
    TOXIC_GASES,
)

router = APIRouter(tags=["console"])

_INLINE = {kind: re.compile(rf"<{kind}(?![^>]*\bsrc=)[^>]*>(.*?)</{kind}>", re.DOTALL) for kind in ("script", "style")}
DOCS_ASSETS = "/api/v1/docs/assets"
ICON = "/static/icon.svg"


def inline_hashes(page: str, kind: str) -> str:
    """The CSP sources (``'sha256-...'``) of each inline ``<script>`` or ``<style>`` of ``page``."""
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
                    for body in _INLINE[kind].findall(page))


def static_file(name: str) -> str:
    return files("api").joinpath("static", name).read_text(encoding="utf-8")


def docs_assets() -> Path:
    """The folder of Swagger UI's files as the ``fastapi-offline`` package ships them."""
    return Path(str(files("fastapi_offline").joinpath("static")))


@functools.cache
def _console() -> tuple[str, str]:
    page = static_file("console.html")
    scripts = " ".join(filter(None, (inline_hashes(page, "script"), "'self'")))
    styles = " ".join(filter(None, (inline_hashes(page, "style"), "'self'")))
    csp = (f"default-src 'none'; script-src {scripts}; style-src {styles}; img-src 'self';"
           " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return page, csp


@router.get("/", include_in_schema=False)
@router.get("/console", include_in_schema=False)
def console() -> HTMLResponse:
    page, csp = _console()
    return HTMLResponse(page, headers={"Cache-Control": "no-cache", "Content-Security-Policy": csp})


def _actions(table: dict[tuple[str, str], str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for state, action in table:
        out.setdefault(state, []).append(action)
    return out


@router.get("/console/meta.json", include_in_schema=False)
def meta(gateway: GatewayDep) -> dict[str, Any]:
    """The lifecycle tables, priorities, the standard's default limits and the alarm timings."""
    alarms = gateway.config.alarms
    return {
        "transitions": _actions(TRANSITIONS),
        "cases": _actions(CASES),
        "priority": {level: PRIORITY_NAMES[p] for level, p in PRIORITY.items()},
        "limits": {"combustible_gas": {"high": COMBUSTIBLE_HIGH, "high_high": COMBUSTIBLE_HIGH_HIGH},
                   "oxygen": {"low": OXYGEN_LOW, "high": OXYGEN_HIGH}},
        "toxic_gases": {k: {"name": g.name, "oel_mg_m3": g.oel_mg_m3, "molar_mass": g.molar_mass}
                        for k, g in TOXIC_GASES.items()},
        "molar_volume": MOLAR_VOLUME,
        "max_shelve_s": alarms.max_shelve,
        "escalate_after_s": alarms.escalate_after.model_dump(),
    }


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response(static_file("icon.svg"), media_type="image/svg+xml",
                    headers={"Cache-Control": "max-age=86400"})


@router.get("/docs", include_in_schema=False)
def docs_elsewhere() -> RedirectResponse:
    return RedirectResponse("/api/v1/docs")


@router.get("/api/v1/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url="/api/v1/openapi.json", title="gridgate API", swagger_favicon_url=ICON,
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_ui_parameters={"validatorUrl": None}).body.decode()
    # Swagger UI sets style attributes as it renders: its styles need 'unsafe-inline'; its scripts do not.
    csp = (f"default-src 'none'; script-src 'self' {inline_hashes(page, 'script')};"
           " style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
           " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
    return HTMLResponse(page, headers={"Content-Security-Policy": csp})
