"""Small builders for test configurations (validated through the real config models), and the one wait helper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

from gateway.config import Config, parse_config


def district(devices: list[dict[str, Any]], *, users: list[dict[str, Any]] | None = None,
             **sections: Any) -> Config:
    """Two grids (g1: officer o1, enterprise e1; g2: officer o2, enterprise e2) and the given devices."""
    data: dict[str, Any] = {
        "departments": [{"id": "yjj", "name": "应急管理局"}, {"id": "fire", "name": "消防"}],
        "officers": [{"id": "o1", "name": "Officer One"}, {"id": "o2", "name": "Officer Two"},
                     {"id": "resp", "name": "Responsible"}],
        "grids": [
            {"id": "43090300100201", "name": "g1", "area": "430903001002", "officers": ["o1"],
             "responsible": "resp"},
            {"id": "43090300100301", "name": "g2", "area": "430903001003", "officers": ["o2"]},
        ],
        "enterprises": [
            {"id": "e1", "name": "E1", "grid": "43090300100201", "lead_department": "yjj",
             "cooperating_departments": ["fire"]},
            {"id": "e2", "name": "E2", "grid": "43090300100301", "lead_department": "fire"},
        ],
        "devices": devices,
        "users": users or [],
    }
    data.update(sections)
    return parse_config(data)


def mqtt_device(enterprise: str, device: str, points: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {"enterprise": enterprise, "id": device, "protocol": "mqtt", "points": points, **kw}


CH4 = {"key": "ch4", "kind": "combustible_gas", "unit": "%LEL"}


def _pauses(cond: Callable[[], Any], timeout: float, what: str, interval: float) -> Iterator[tuple[Any, float]]:
    """(what ``cond`` returned, the pause before asking again): every 5 ms at first, then less often,
    up to every ``interval`` s; fails after ``timeout`` s saying ``what``."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        result = cond()
        if not result and time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {result!r})")
        yield result, pause
        pause = min(pause * 1.5, interval)


def wait_for(cond: Callable[[], Any], timeout: float = 5.0, what: str = "condition", interval: float = 0.1) -> Any:
    """Poll ``cond`` until it returns something truthy (returned), or fail after ``timeout`` s saying ``what``.

    A quick condition is seen at once; a slow one is asked less and less often, so that waiting
    does not load the peers it asks.
    """
    for result, pause in _pauses(cond, timeout, what, interval):
        if result:
            return result
        time.sleep(pause)


async def until(cond: Callable[[], Any], timeout: float = 5.0, what: str = "condition",
                interval: float = 0.05) -> Any:
    """:func:`wait_for` inside an event loop: the loop keeps running while it waits."""
    for result, pause in _pauses(cond, timeout, what, interval):
        if result:
            return result
        await asyncio.sleep(pause)
