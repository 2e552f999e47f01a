"""`gridgate run -c FILE` as an operator runs it: a process, a real broker and farm, SIGTERM, restart."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.devices import gas_detector_points
from simulators.scenarios import Scenario
from tests.peers import Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[2]


def config_text(mqtt_url: str, api_port: int, modbus_port: int, data_dir: Path) -> str:
    # argon2 hash of "zhang" (cheap parameters; this is a test login)
    from argon2 import PasswordHasher

    h = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("zhang")
    points = "\n".join(
        f'[[devices.points]]\nkey = "{p["key"]}"\nkind = "{p["kind"]}"\nunit = "{p["unit"]}"\n'
        f'register = "{p["register"]}"\naddress = {p["address"]}\ndtype = "{p["dtype"]}"\n'
        + (f'gas = "{p["gas"]}"\n' if "gas" in p else "") + (f'scale = {p["scale"]}\n' if "scale" in p else "")
        for p in gas_detector_points())
    return f"""
[gateway]
id = "cli-test"
data_dir = "{data_dir}"

[mqtt]
url = "{mqtt_url}"

[api]
listen = "127.0.0.1:{api_port}"

[[users]]
username = "zhang"
password_hash = "{h}"
role = "officer"
officer = "zhang"

[[departments]]
id = "yjj"
name = "应急管理局"

[[officers]]
id = "zhang"
name = "张伟"

[[grids]]
id = "43090300100201"
name = "龙岭村网格"
area = "430903001002"
officers = ["zhang"]

[[enterprises]]
id = "hengyuan-chem"
name = "恒源化工"
grid = "43090300100201"
lead_department = "yjj"

[[devices]]
enterprise = "hengyuan-chem"
id = "gas-ctrl-1"
protocol = "modbus"
host = "127.0.0.1"
port = {modbus_port}
interval = 0.5
timeout = 0.4

{points}

[[devices]]
enterprise = "hengyuan-chem"
id = "tank-farm"
protocol = "mqtt"

[[devices.points]]
key = "t1"
kind = "temperature"
unit = "°C"
high = 60.0
"""


def start(cfg: Path) -> subprocess.Popen:
    with open(cfg.parent / "gridgate.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "gateway.root.cli", "run", "-c", str(cfg)], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)


def login(api: str, deadline: float, proc: subprocess.Popen) -> httpx.Client:
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gridgate run exited; see gridgate.log"
        try:
            r = httpx.post(f"{api}/auth/token", data={"username": "zhang", "password": "zhang"}, timeout=1)
            if r.status_code == 200:
                return httpx.Client(base_url=api, headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("gridgate run did not serve its API")


def test_run_serves_stores_and_stops_cleanly(tmp_path: Path, mosquitto: Mosquitto) -> None:
    from gateway.config import load_config
    from gateway.registry import Registry
    from simulators.modbus_farm import ModbusFarm

    api_port, modbus_port = free_port(), free_port()
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(config_text(mosquitto.url, api_port, modbus_port, tmp_path / "data"), encoding="utf-8")
    check = subprocess.run([sys.executable, "-m", "gateway.root.cli", "check", "-c", str(cfg)], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout

    stop_farm = threading.Event()

    def farm_thread() -> None:
        async def main() -> None:
            async with ModbusFarm(Registry(load_config(cfg)), {"hengyuan-chem/gas-ctrl-1": Scenario("steady")}):
                while not stop_farm.is_set():
                    await asyncio.sleep(0.05)
        asyncio.run(main())

    farm = threading.Thread(target=farm_thread, daemon=True)
    farm.start()
    api = f"http://127.0.0.1:{api_port}/api/v1"
    proc = start(cfg)
    try:
        client = login(api, time.monotonic() + 30, proc)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cli-pub")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        base = int(time.time() * 1000)
        for i in range(20):
            info = pub.publish("gridgate/v1/hengyuan-chem/tank-farm/telemetry",
                               orjson.dumps({"ts": base + i, "values": {"t1": 20.0 + i}}), qos=1)
            info.wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
        deadline = time.monotonic() + 15
        latest: dict = {}
        while time.monotonic() < deadline:
            latest = {s["sensor_id"]: s for s in client.get("/sensors/latest").json()}
            if latest.get("hengyuan-chem/tank-farm/t1", {}).get("value") == 39.0 and \
                    latest.get("hengyuan-chem/gas-ctrl-1/o2", {}).get("value") is not None:
                break
            time.sleep(0.1)
        assert latest["hengyuan-chem/tank-farm/t1"]["value"] == 39.0
        assert 20 < latest["hengyuan-chem/gas-ctrl-1/o2"]["value"] < 22  # the farm's steady oxygen
        health = client.get("/healthz").json()  # an officer's view: the devices of its grids
        assert health["collectors"]["modbus"]["hengyuan-chem/gas-ctrl-1"]["online"] is True
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_farm.set()
        farm.join(10)
    # every accepted reading was flushed before exit, and a restart on the same data_dir serves them
    proc = start(cfg)
    try:
        client = login(api, time.monotonic() + 30, proc)
        r = client.get("/sensors/hengyuan-chem/tank-farm/t1/readings",
                       params={"start": base - 1, "end": base + 100})
        assert r.status_code == 200
        assert [p["value"] for p in r.json()["points"]] == [20.0 + i for i in range(20)]
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
