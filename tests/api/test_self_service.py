"""Enterprise self-service against a real Mosquitto: the enterprise adds an MQTT device itself,
publishes to it (first a payload the gateway refuses, then a good one), and the connection view
says what arrived, what was refused and why (with the payload), and how to connect; a test reading
goes through the gateway's own path and is stored and evaluated; another enterprise's device is a 404.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from tests.helpers import wait_for
from tests.peers import Mosquitto
from tests.server import ApiServer, make_config


def publish(port: int, topic: str, payload: bytes) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def test_an_enterprise_connects_its_own_device(tmp_path: Path, mosquitto: Mosquitto):
    cfg: dict[str, Any] = {**make_config(), "mqtt": {"url": mosquitto.url}}
    with ApiServer(tmp_path / "data", cfg, collectors=True) as server, server.client("shimen") as me:
        new = {"enterprise": "shimen", "id": "kiln", "protocol": "mqtt", "name": "窑炉温度",
               "points": [{"key": "t", "kind": "temperature", "unit": "°C", "high": 300.0}]}
        assert me.put("/registry/devices/shimen/kiln", json=new).status_code == 201
        view = me.get("/devices/shimen/kiln/connection").json()
        assert view["state"] == "never" and view["refused"] == {}
        assert view["settings"]["telemetry_topic"] == "gridgate/v1/shimen/kiln/telemetry"
        assert view["settings"]["errors_topic"] == "gridgate/v1/shimen/kiln/errors"
        assert view["settings"]["login"] == "ent.shimen" and view["settings"]["points"] == ["t"]

        wait_for(lambda: server.gw.collectors["mqtt"].subscribed, what="the MQTT collector subscribed")
        publish(mosquitto.port, "gridgate/v1/shimen/kiln/telemetry", b'{"values": {"temp": 21.5}}')
        view = wait_for(lambda: (v := me.get("/devices/shimen/kiln/connection").json())["refused"] and v,
                        what="the refusal in the connection view")
        refused = view["refused"]["unknown_point"]
        assert refused["count"] == 1 and "temp" in refused["detail"]
        assert refused["payload"] == '{"values": {"temp": 21.5}}'

        publish(mosquitto.port, "gridgate/v1/shimen/kiln/telemetry", b'{"values": {"t": 250.5}}')
        view = wait_for(lambda: (v := me.get("/devices/shimen/kiln/connection").json())["state"] == "online" and v,
                        what="the device online in the connection view")
        assert view["last_reading"] > 0 and view["broker"]["connected"]

        # a test reading goes the gateway's own way: stored, evaluated (here: over its limit, an alarm)
        r = me.post("/devices/shimen/kiln/test-reading", json={"values": {"t": 320.0, "x": 1}})
        assert r.status_code == 200
        assert r.json()["accepted"] == 1 and r.json()["refused"]["unknown_point"]["count"] == 1
        assert [x["value"] for x in r.json()["readings"]] == [320.0]
        alarm = wait_for(lambda: [a for a in server.gw.book.open_alarms() if a.sensor_id == "shimen/kiln/t"],
                         what="the test reading's alarm")[0]
        assert alarm.level == "high" and alarm.value == 320.0
        def series() -> list[float]:
            return [p["value"] for p in me.get("/sensors/shimen/kiln/t/readings").json()["points"]]

        wait_for(lambda: series() == [250.5, 320.0], what="both readings stored")
        assert me.post("/devices/shimen/kiln/test-reading", json="nonsense").json()["refused"] != {}

        # another enterprise's device does not exist for this login
        assert me.get("/devices/hengyuan/gas/connection").status_code == 404
        assert me.post("/devices/hengyuan/gas/test-reading", json={"values": {"ch4": 1}}).status_code == 404
        with server.client("zhang") as officer:
            assert officer.get("/devices/hengyuan/gas/connection").json()["settings"]["protocol"] == "mqtt"
