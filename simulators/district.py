"""The demo district: three grids in two towns, eight enterprises, 56 sensors over Modbus and MQTT.

``district_config`` returns a whole ``gridgate.toml``-shaped dict (validated by the caller with
``parse_config``) and ``district_scenarios`` what each device plays: a gas leak at an enterprise in
grid 1 (officer1) from the 10th second, a spike that the on-delay swallows in grid 1 too, an MQTT
device in grid 3 that drops out later on, and steady noise everywhere else, so that nothing in
grid 2 (officer2) alarms.
"""

from __future__ import annotations

from typing import Any

from simulators.devices import gas_detector_points, modbus_device, status_word_points
from simulators.scenarios import Scenario

GRIDS = [
    # id, name, village code, officer
    ("43090300100201", "龙岭村网格", "430903001002", "officer1"),
    ("43090300100301", "石门村网格", "430903001003", "officer2"),
    ("43090300200101", "安平社区网格", "430903002001", "officer3"),
]
ENTERPRISES = [
    # id, name, grid index, lead department, cooperating, risk class
    ("hengyuan-chem", "恒源化工", 0, "yjj", ["fire"], "hazardous_chemicals"),
    ("longling-fireworks", "龙岭烟花", 0, "yjj", ["fire", "scj"], "fireworks"),
    ("shimen-metal", "石门冶金", 1, "yjj", [], "metallurgy"),
    ("jinhe-gas", "金禾燃气", 1, "scj", ["fire"], "major_hazard"),
    ("shimen-paint", "石门涂料", 1, "yjj", ["fire"], "hazardous_chemicals"),
    ("anping-chem", "安平化工", 2, "yjj", ["fire"], "hazardous_chemicals"),
    ("xinyu-mining", "新宇矿业", 2, "yjj", [], "mine"),
    ("anping-lpg", "安平液化气站", 2, "scj", ["fire"], "major_hazard"),
]
# what an officer calls when an alarm comes: the enterprise's safety contact (made-up people and
# numbers)
CONTACTS = ["刘建国", "陈志强", "王秀英", "李明", "张桂兰", "赵伟", "孙丽", "周平"]
DEVICE_NAMES = {"gas-ctrl-1": "气体报警控制器", "tank-farm": "储罐区温压监测"}
LEAK_DEVICE = "hengyuan-chem/gas-ctrl-1"
SPIKE_DEVICE = "longling-fireworks/gas-ctrl-1"
DROPOUT_DEVICE = "xinyu-mining/tank-farm"


def _gas_controller_points() -> list[dict[str, Any]]:
    points = gas_detector_points()
    points[0].update(high=20.0, high_high=40.0, deadband=1.0, on_delay=2.0)  # stricter than GB/T 50493
    return points + status_word_points(base=10)


def _tank_farm_points() -> list[dict[str, Any]]:
    return [
        {"key": "t1", "kind": "temperature", "unit": "°C", "high": 60.0, "deadband": 0.5},
        {"key": "t2", "kind": "temperature", "unit": "°C", "high": 60.0, "deadband": 0.5},
        {"key": "p1", "kind": "pressure", "unit": "MPa", "high": 1.6, "high_high": 2.0},
    ]


def district_config(mqtt_url: str, modbus_ports: list[int], users: list[dict[str, Any]],
                    data_dir: str, api_listen: str) -> dict[str, Any]:
    """The demo's configuration; ``modbus_ports`` gives one free port per enterprise's gas controller."""
    if len(modbus_ports) != len(ENTERPRISES):
        raise ValueError(f"need {len(ENTERPRISES)} Modbus ports, got {len(modbus_ports)}")
    devices: list[dict[str, Any]] = []
    for (ent, *_), port in zip(ENTERPRISES, modbus_ports, strict=True):
        devices.append({**modbus_device(ent, "gas-ctrl-1", port, _gas_controller_points(),
                                        interval=1.0, timeout=0.5), "name": DEVICE_NAMES["gas-ctrl-1"]})
        devices.append({"enterprise": ent, "id": "tank-farm", "name": DEVICE_NAMES["tank-farm"], "protocol": "mqtt",
                        "stale_after": 10.0, "points": _tank_farm_points()})
    return {
        "gateway": {"id": "demo", "data_dir": data_dir},
        "mqtt": {"url": mqtt_url, "prefix": "gridgate/v1", "client_id": "gridgate-demo"},
        "api": {"listen": api_listen},
        # short enough to watch: an unacknowledged high-high alarm goes to the station chief after
        # 20 s and to the lead department after 40 s
        "alarms": {"escalate_after": {"high_high": 20, "high": 60, "other": 300}},
        "users": users,
        "departments": [
            {"id": "yjj", "name": "应急管理局"},
            {"id": "fire", "name": "消防救援大队"},
            {"id": "scj", "name": "市场监督管理局"},
        ],
        "officers": [{"id": g[3], "name": f"网格员{i + 1}"} for i, g in enumerate(GRIDS)]
        + [{"id": "chief", "name": "镇安监站站长"}],
        "grids": [
            {"id": gid, "name": name, "area": area, "officers": [officer], "responsible": "chief"}
            for gid, name, area, officer in GRIDS
        ],
        "enterprises": [
            {"id": ent, "name": name, "grid": GRIDS[g][0], "lead_department": lead,
             "cooperating_departments": coop, "risk_class": risk, "contact": CONTACTS[i],
             "phone": f"0736-55501{i:02d}", "address": f"{GRIDS[g][1].removesuffix('网格')}工业区 {i + 1} 号"}
            for i, (ent, name, g, lead, coop, risk) in enumerate(ENTERPRISES)
        ],
        "devices": devices,
    }


def district_scenarios(seed: int = 1) -> dict[str, Scenario]:
    """What the non-steady devices play (times in seconds since the simulators started).

    The leak crosses 20 %LEL (high) at about 15 s and 40 %LEL (high-high) at about 21 s, holds 70 %LEL
    until 70 s and falls back, under high-high again at about 79 s and under high at about 85 s: an
    unacknowledged high-high alarm stays high-high past both escalation steps (20 s and 40 s after
    the rise, the demo's ``escalate_after``), and everything is over within the demo's first 90 s.
    """
    return {
        LEAK_DEVICE: Scenario("leak", seed=seed, start=10.0, ramp=20.0, hold=40.0, peak=70.0),
        SPIKE_DEVICE: Scenario("spike", seed=seed, start=20.0, peak=60.0),
        DROPOUT_DEVICE: Scenario("dropout", seed=seed, start=45.0, hold=30.0,
                                 targets=("temperature", "pressure")),
    }


def demo_logins() -> list[tuple[str, str, str, dict[str, str]]]:
    """(username, password, role, acts-as) of the demo: admin, officerN for grid N, the station
    chief (every grid's responsible person), and one login per department."""
    logins = [("admin", "admin", "admin", {})]
    for i, g in enumerate(GRIDS):
        logins.append((f"officer{i + 1}", f"officer{i + 1}", "officer", {"officer": g[3]}))
    logins.append(("chief", "chief", "officer", {"officer": "chief"}))
    for dept in ("yjj", "fire", "scj"):
        logins.append((dept, dept, "department", {"department": dept}))
    return logins
