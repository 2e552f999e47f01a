"""Small builders for test configurations (validated through the real config models)."""

from __future__ import annotations

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
