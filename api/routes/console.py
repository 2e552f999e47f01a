"""``GET /`` and ``GET /console``: the officer console, one static HTML page (no build step, no CDN)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["console"])


@router.get("/", include_in_schema=False)
@router.get("/console", include_in_schema=False)
def console() -> HTMLResponse:
    page = files("api").joinpath("static/console.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
