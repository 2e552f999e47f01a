"""Registry changes through the API, applied to a running gateway without a restart: a Modbus device
put is polled (a real pymodbus farm on a free port), a limit patched alarms on the next reading, an
enterprise moved alarms to its new officers only, a retired device stops being polled and its
alarms close; a refused change says what ``gridgate check`` says; the same WebSocket connections
receive events before and after; every change is in the audit trail; a restart keeps it all.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from gateway.config import parse_config
from gateway.errors import ConfigError
from simulators.devices import gas_detector_points, modbus_device
from tests.helpers import wait_for
from tests.peers import ThreadedFarm, free_port
from tests.server import G1, G2, HASHES, LOGINS, ApiServer

NEW = "hengyuan/gas-2"


def base_config(shimen_port: int) -> dict[str, Any]:
    """Two grids (zhang's G1, wang's G2); shimen has a Modbus detector from the start, hengyuan none."""
    return {
        "gateway": {"id": "registry-live"},
        "api": {"hash_memory_kib": 1024, "hash_time_cost": 1},
        "users": [{"username": n, "password_hash": HASHES[n], "role": r, **acts} for n, (r, acts) in LOGINS.items()],
        "departments": [{"id": d, "name": d} for d in ("yjj", "fire", "market")],
        "officers": [{"id": o, "name": o} for o in ("zhang", "wang", "li")],
        "grids": [{"id": G1, "name": "龙岭村网格", "area": "430903001002", "officers": ["zhang"]},
                  {"id": G2, "name": "石门村网格", "area": "430903001003", "officers": ["wang"]}],
        "enterprises": [{"id": "hengyuan", "name": "恒源化工", "grid": G1, "lead_department": "yjj"},
                        {"id": "shimen", "name": "石门建材", "grid": G2, "lead_department": "market"}],
        "devices": [modbus_device("shimen", "gas", shimen_port, gas_detector_points(), interval=0.5, timeout=0.3)],
    }


def stream(server: ApiServer, user: str) -> ClientConnection:
    return connect(f"{server.ws_base}/alarms/live?access_token={server.token(user)}", open_timeout=5, max_queue=None)


def events_until(ws: ClientConnection, match: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Events received until one matches (all of them, the match last)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        got.append(ev)
        if match(ev):
            return got
    raise AssertionError(f"no matching event in {timeout} s; got {[(e['type'], e['alarm']['sensor_id']) for e in got]}")


def stored(server: ApiServer, sensor_id: str) -> list[int]:
    now = time.time_ns()
    return [p.ts for p in server.gw.store.query(sensor_id, now - 3_600_000_000_000, now)]


def check_message(config: dict[str, Any], device: dict[str, Any]) -> list[tuple[str, str]]:
    """What `gridgate check` says of the configuration file with ``device`` appended."""
    doc = {**config, "devices": [*config["devices"], device]}
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    return info.value.problems


@pytest.fixture
def live(tmp_path: Path):
    shimen_port, new_port = free_port(), free_port()
    config = base_config(shimen_port)
    new_device = modbus_device("hengyuan", "gas-2", new_port, gas_detector_points(), interval=0.5, timeout=0.3)
    farm_config = {**config, "devices": [*config["devices"], new_device]}
    with ThreadedFarm(farm_config), ApiServer(tmp_path / "data", config, collectors=True) as server:
        yield server, config, new_device


def test_registry_changes_apply_live_on_the_same_connections(live):
    server = live[0]
    with server.client("admin") as admin, stream(server, "zhang") as zhang, stream(server, "wang") as wang:
        walk(live, admin, zhang, wang)


def walk(live: tuple, admin: Any, zhang: ClientConnection, wang: ClientConnection) -> None:
    server, config, new_device = live
    gw = server.gw

    # before any change: wang's stream carries shimen's alarm
    server.submit({"shimen/gas/ch4": 30.0})
    events_until(wang, lambda e: e["alarm"]["sensor_id"] == "shimen/gas/ch4" and e["type"] == "raised")
    version0 = gw.registry.version

    # 1. a Modbus device put through the API is polled and stored within one interval
    r = admin.put(f"/registry/devices/{NEW}", json=new_device)
    assert r.status_code == 201, r.text
    put_at = time.time_ns()
    assert r.json()["version"] == version0 + 1 and r.json()["action"] == "create"
    first = wait_for(lambda: stored(server, f"{NEW}/ch4"), timeout=5, what="a stored reading of the new device")
    assert min(first) <= put_at // 1_000_000 + int(new_device["interval"] * 1000) + 200, (first, put_at)
    assert gw.collectors["modbus"].pollers[NEW].polls >= 1

    # 2. a limit lowered through PATCH alarms on the next reading (steady CH4 is 1.5-2.5 %LEL)
    r = admin.patch(f"/registry/devices/{NEW}", json={"points": [{"key": "ch4", "high": 1.0}]})
    assert r.status_code == 200, r.text
    assert next(p for p in r.json()["item"]["points"] if p["key"] == "ch4")["high"] == 1.0
    raised = events_until(zhang, lambda e: e["alarm"]["sensor_id"] == f"{NEW}/ch4" and e["type"] == "raised")[-1]
    assert raised["alarm"]["level"] == "high"

    # 3. hengyuan moves to wang's grid: its open alarm follows with an event, new alarms go to wang only
    r = admin.patch("/registry/enterprises/hengyuan", json={"grid": G2})
    assert r.status_code == 200, r.text
    moved = events_until(wang, lambda e: e["type"] == "moved")[-1]
    assert moved["alarm"]["sensor_id"] == f"{NEW}/ch4" and moved["alarm"]["grid"] == G2
    assert f"from grid {G1} to grid {G2}" in moved["note"]
    r = admin.patch(f"/registry/devices/{NEW}", json={"points": [{"key": "o2", "low": 21.5}]})
    assert r.status_code == 200, r.text
    o2 = events_until(wang, lambda e: e["alarm"]["sensor_id"] == f"{NEW}/o2" and e["type"] == "raised")[-1]
    assert o2["recipients"] == ["wang"]
    # zhang's stream got nothing of hengyuan after the move (his grid has no enterprise left)
    with pytest.raises(TimeoutError):
        zhang.recv(timeout=1.5)

    # 4. a refused change answers with `gridgate check`'s paths and messages, and changes nothing
    bad = {**new_device, "id": "gas-3", "unit": 1.0}
    r = admin.put("/registry/devices/hengyuan/gas-3", json=bad)
    assert r.status_code == 422
    expected = check_message({**config, "devices": gw.register.items["devices"]}, bad)
    assert [(p["path"], p["message"]) for p in r.json()["detail"]] == expected
    assert "devices[2] (hengyuan/gas-3).unit" in expected[0][0]
    assert gw.registry.version == version0 + 4

    # 5. a retired device stops being polled; its open alarms close with a note; its history stays
    polls_before = gw.collectors["modbus"].pollers[NEW].polls
    r = admin.delete(f"/registry/devices/{NEW}")
    assert r.status_code == 200, r.text
    closed = events_until(wang, lambda e: e["type"] == "closed" and e["alarm"]["sensor_id"] == f"{NEW}/o2")
    assert any("retired from the registry by admin" in (e["note"] or "") for e in closed)
    wait_for(lambda: NEW not in gw.collectors["modbus"].tasks_running(), timeout=3, what="the poller to stop")
    def settled() -> int | None:  # the last poll's readings reach the store: two counts 0.6 s apart agree
        before = len(stored(server, f"{NEW}/ch4"))
        time.sleep(0.6)
        return before if len(stored(server, f"{NEW}/ch4")) == before else None

    count = wait_for(settled, timeout=6, what="the retired device's readings to stop")
    time.sleep(1.2)  # more than two intervals
    assert len(stored(server, f"{NEW}/ch4")) == count
    assert not [a for a in gw.book.open_alarms() if a.enterprise == "hengyuan"]
    history = admin.get(f"/sensors/{NEW}/ch4/readings")
    assert history.status_code == 200 and len(history.json()["points"]) == count
    assert admin.get(f"/registry/devices/{NEW}").headers.get("X-Retired-At")
    assert admin.put(f"/registry/devices/{NEW}", json=new_device).status_code == 409  # ids are not reused
    assert polls_before >= 1

    # the same connections carry events after all of it, and the shimen device was polled throughout
    server.submit({"shimen/gas/h2s": 50.0})
    events_until(wang, lambda e: e["alarm"]["sensor_id"] == "shimen/gas/h2s" and e["type"] == "raised")
    assert gw.collectors["modbus"].pollers["shimen/gas"].failures == 0

    # 6. the audit trail names each change with who, when, old and new
    trail = admin.get("/registry/audit", params={"limit": 20}).json()
    mine = [(t["action"], t["section"], t["key"]) for t in trail if t["actor"] == "admin"]
    assert mine == [("retire", "devices", NEW), ("replace", "devices", NEW), ("replace", "enterprises", "hengyuan"),
                    ("replace", "devices", NEW), ("create", "devices", NEW)]
    move = next(t for t in trail if t["section"] == "enterprises")
    assert move["old"]["grid"] == G1 and move["new"]["grid"] == G2 and move["at"] > 0
    assert [t["version"] for t in trail if t["actor"] == "admin"] == [version0 + 5, version0 + 4, version0 + 3,
                                                                       version0 + 2, version0 + 1]


def test_a_restart_keeps_the_registry_and_its_numbers(tmp_path: Path):
    shimen_port, new_port = free_port(), free_port()
    config = base_config(shimen_port)
    new_device = modbus_device("hengyuan", "gas-2", new_port, gas_detector_points(), interval=0.5, timeout=0.3)
    with ApiServer(tmp_path / "data", config) as server, server.client("admin") as admin:
        assert admin.put(f"/registry/devices/{NEW}", json=new_device).status_code == 201
        assert admin.patch("/registry/enterprises/hengyuan", json={"grid": G2}).status_code == 200
        server.submit({f"{NEW}/h2s": 3.0})
        numbers = dict(server.gw.registry.layout.sensors)
        version = server.gw.registry.version
    # the same file: the registry database is taken, with the API's changes and the same numbers
    with ApiServer(tmp_path / "data", config) as server:
        reg = server.gw.registry
        assert reg.version == version and reg.layout.sensors == numbers
        assert reg.enterprises["hengyuan"].grid == G2 and f"{NEW}/ch4" in {s.sensor_id for s in reg.sensors}
        assert [p.value for p in server.gw.store.query(f"{NEW}/h2s", 0, time.time_ns())] == [3.0]
        with server.client("wang") as wang, server.client("zhang") as zhang:
            r = wang.get(f"/registry/devices/{NEW}")
            assert r.status_code == 200 and r.json()["port"] == new_port
            assert zhang.get(f"/registry/devices/{NEW}").status_code == 404


def test_an_edited_file_is_taken_when_the_api_changed_nothing(tmp_path: Path):
    config = base_config(free_port())
    with ApiServer(tmp_path / "data", config) as server:
        assert server.gw.registry.enterprises["hengyuan"].name == "恒源化工"
    edited = {**config, "enterprises": [{**config["enterprises"][0], "name": "恒源化工有限公司"},
                                        config["enterprises"][1]]}
    with ApiServer(tmp_path / "data", edited) as server:
        assert server.gw.registry.enterprises["hengyuan"].name == "恒源化工有限公司"
        with server.client("admin") as admin:
            trail = admin.get("/registry/audit").json()
            assert trail[0]["actor"] == "file" and trail[0]["new"]["name"] == "恒源化工有限公司"
            # now the API changes it: a later file edit no longer overrides the API's change
            r = admin.patch("/registry/enterprises/shimen", json={"name": "石门建材厂"})
            assert r.status_code == 200
    again = {**edited, "enterprises": [{**edited["enterprises"][0], "name": "file wins?"}, edited["enterprises"][1]]}
    with ApiServer(tmp_path / "data", again) as server:
        assert server.gw.registry.enterprises["hengyuan"].name == "恒源化工有限公司"
        assert server.gw.registry.enterprises["shimen"].name == "石门建材厂"
