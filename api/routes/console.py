"""``GET /`` and ``GET /console``: the officer console, one static HTML page (no build step, no CDN);
``GET /api/v1/docs``: the OpenAPI explorer (Swagger UI, from its CDN).

Each page carries a Content-Security-Policy that admits exactly its own inline script and style,
by their SHA-256 (computed when the app is built, so an edit to the page needs no edit here), and
nothing from elsewhere but what it names: the console talks to its own origin only (HTTP and the
live WebSocket); the explorer loads Swagger UI from cdn.jsdelivr.net.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib.resources import files

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["console"])

_INLINE = {kind: re.compile(rf"<{kind}(?![^>]*\bsrc=)[^>]*>(.*?)</{kind}>", re.DOTALL) for kind in ("script", "style")}
SWAGGER_CDN = "https://cdn.jsdelivr.net"


def inline_hashes(page: str, kind: str) -> str:
    """The CSP sources (``'sha256-...'``) of each inline ``<script>`` or ``<style>`` of ``page``."""
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
                    for body in _INLINE[kind].findall(page))


@functools.cache
def _console() -> tuple[str, str]:
    page = files("api").joinpath("static/console.html").read_text(encoding="utf-8")
    csp = (f"default-src 'none'; script-src {inline_hashes(page, 'script')}; style-src {inline_hashes(page, 'style')};"
           " connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return page, csp


@router.get("/", include_in_schema=False)
@router.get("/console", include_in_schema=False)
def console() -> HTMLResponse:
    page, csp = _console()
    return HTMLResponse(page, headers={"Cache-Control": "no-cache", "Content-Security-Policy": csp})


@router.get("/api/v1/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    page = get_swagger_ui_html(openapi_url="/api/v1/openapi.json", title="gridgate").body.decode()
    # Swagger UI sets style attributes as it renders: its styles need 'unsafe-inline'; its scripts do not.
    csp = (f"default-src 'none'; script-src {SWAGGER_CDN} {inline_hashes(page, 'script')};"
           f" style-src {SWAGGER_CDN} 'unsafe-inline'; img-src 'self' data: https://fastapi.tiangolo.com;"
           " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
    return HTMLResponse(page, headers={"Content-Security-Policy": csp})
