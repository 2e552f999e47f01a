"""The case of a gas leak, against real peers: Mosquitto, the MQTT collector, uvicorn and the API.

A leak at an enterprise; nobody acknowledges; the alarm escalates to the grid's responsible person
and then to the lead department on time; the officer dispatches it to that department, which
reports back; the leak ends; the officer verifies and closes. The alarm's history shows every
step with who and when, and each recipient got its notification on its MQTT topic.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import CH4, wait_for
from tests.peers import Mosquitto
from tests.server import FAST_HASHER, ApiServer

GRID = "43090300100201"
STEP_S = 3.0  # the high-high escalation timeout of this test


def config(mqtt_url: str) -> dict[str, Any]:
    logins = {"o1": ("officer", {"officer": "o1"}), "yjj-duty": ("department", {"department": "yjj"}),
              "fire-duty": ("department", {"department": "fire"})}
    return {
        "gateway": {"id": "scenario"},
        "mqtt": {"url": mqtt_url, "client_id": "gw-scenario"},
        "alarms": {"escalate_after": {"high_high": STEP_S, "high": 60, "other": 60}},
        "users": [{"username": n, "password_hash": FAST_HASHER.hash(n), "role": r, **acts}
                  for n, (r, acts) in logins.items()],
        "departments": [{"id": "yjj", "name": "应急管理局"}, {"id": "fire", "name": "消防"}],
        "officers": [{"id": "o1", "name": "网格员"}, {"id": "resp", "name": "网格长"}],
        "grids": [{"id": GRID, "name": "龙岭村网格", "area": "430903001002", "officers": ["o1"],
                   "responsible": "resp"}],
        "enterprises": [{"id": "hengyuan", "name": "恒源化工", "grid": GRID, "lead_department": "yjj",
                         "cooperating_departments": ["fire"]}],
        "devices": [{"enterprise": "hengyuan", "id": "gas", "protocol": "mqtt", "points": [CH4]}],
    }


class Topics:
    """A paho subscriber on every officer and department alarm topic, with arrival times."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[float, str, dict]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="scenario-listener")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([("gridgate/v1/officers/+/alarms", 1), ("gridgate/v1/departments/+/alarms", 1)])
        self.client.loop_start()
        assert self.subscribed.wait(5)

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((time.monotonic(), msg.topic, orjson.loads(msg.payload)))

    def on(self, topic: str) -> list[tuple[float, dict]]:
        with self.lock:
            return [(t, m) for t, tp, m in self.got if tp == f"gridgate/v1/{topic}/alarms"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_leak_escalates_is_dispatched_reported_back_and_closed(tmp_path: Path, mosquitto: Mosquitto) -> None:
    srv = ApiServer(tmp_path, config(mosquitto.url), collectors=True)
    srv.start()
    topics = Topics(mosquitto.port)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="scenario-detector")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        wait_for(lambda: srv.gw.collectors["mqtt"].health().get("subscribed"), 10, "the MQTT collector")
        wait_for(lambda: srv.gw.notifiers["mqtt"].connected, 10, "the MQTT notifier")

        def reading(value: float) -> None:
            payload = {"ts": time.time_ns() // 1_000_000, "values": {"ch4": value}}
            pub.publish("gridgate/v1/hengyuan/gas/telemetry", orjson.dumps(payload), qos=1).wait_for_publish(5)

        reading(62.0)  # the leak: over 50 %LEL, high-high at once
        alarm = wait_for(lambda: srv.gw.book.list_alarms(None, state="unacknowledged"), 10, "the alarm")[0]
        assert (alarm.level, alarm.sensor_id) == ("high_high", "hengyuan/gas/ch4")
        raised_at = alarm.raised_at
        first = wait_for(lambda: topics.on("officers/o1"), 5, "the officer's notification")
        assert first[0][1]["type"] == "raised"

        # nobody acknowledges: the grid's responsible person after 3 s, the lead department after 6 s
        resp = wait_for(lambda: topics.on("officers/resp"), 10, "escalation to the responsible person")
        dept = wait_for(lambda: topics.on("departments/yjj"), 10, "escalation to the lead department")
        steps = [e for e in srv.gw.book.history(alarm.id) if e.type == "escalated"]
        assert [e.recipients for e in steps] == [("resp",), ("department:yjj",)]
        # on time: never early, and late by at most the escalator's 1 s tick (plus scheduling slack)
        assert STEP_S * 1000 <= steps[0].ts - raised_at <= STEP_S * 1000 + 2000
        assert 2 * STEP_S * 1000 <= steps[1].ts - raised_at <= 2 * STEP_S * 1000 + 2000
        assert resp[0][1]["type"] == dept[0][1]["type"] == "escalated"
        assert resp[0][0] < dept[0][0]
        assert not topics.on("departments/fire")  # the cooperating department is not escalated to

        with srv.client("o1") as o1, srv.client("yjj-duty") as yjj, srv.client("fire-duty") as fire:
            r = o1.post(f"/alarms/{alarm.id}/dispatch", json={"department": "market", "note": "x"})
            assert r.status_code == 409 and "yjj" in r.json()["detail"]  # not one of the enterprise's
            r = o1.post(f"/alarms/{alarm.id}/dispatch",
                        json={"department": "yjj", "note": "请应急局带队现场处置，关闭进料阀"})
            assert r.status_code == 200, r.text
            assert [e["type"] for e in r.json()["events"]] == ["acknowledged", "dispatched"]
            wait_for(lambda: any(m["type"] == "dispatched" for _, m in topics.on("departments/yjj")), 5,
                       "the dispatch on the department's topic")
            # the department sees its case; another department may not report back on it
            assert [a["id"] for a in yjj.get("/alarms", params={"case": "dispatched"}).json()] == [alarm.id]
            assert fire.post(f"/alarms/{alarm.id}/resolve", json={"note": "done"}).status_code == 409
            assert o1.post(f"/alarms/{alarm.id}/resolve", json={"note": "me"}).status_code == 409
            r = yjj.post(f"/alarms/{alarm.id}/resolve", json={"note": "阀门已关闭，泄漏点已封堵"})
            assert r.status_code == 200, r.text
            # the officer cannot close while the gas is still there
            r = o1.post(f"/alarms/{alarm.id}/close", json={"note": "checked"})
            assert r.status_code == 409 and "acknowledged" in r.json()["detail"]
            reading(3.0)  # the leak is over
            wait_for(lambda: srv.gw.book.get(alarm.id).state == "normal", 10, "the alarm back to normal")
            r = o1.post(f"/alarms/{alarm.id}/close", json={"note": "现场复核：浓度正常，结案"})
            assert r.status_code == 200, r.text
            detail = o1.get(f"/alarms/{alarm.id}").json()
            assert o1.post(f"/alarms/{alarm.id}/close", json={}).status_code == 409  # closed once

        history = [(h["type"], h["actor"]) for h in detail["history"]]
        assert history == [("raised", None), ("escalated", "gateway"), ("escalated", "gateway"),
                           ("acknowledged", "o1"), ("dispatched", "o1"), ("resolved", "yjj-duty"),
                           ("cleared", None), ("closed", "o1")]
        assert [h["case"] for h in detail["history"]][-4:] == ["dispatched", "resolved", "resolved", "closed"]
        assert detail["closed_by"] == "o1" and detail["department"] == "yjj" and detail["case"] == "closed"
        assert all(h["ts"] >= raised_at for h in detail["history"])
        assert [h["ts"] for h in detail["history"]] == sorted(h["ts"] for h in detail["history"])

        # the same leak again after the close: a new alarm, linked to the closed one
        reading(30.0)
        again = wait_for(lambda: [a for a in srv.gw.book.list_alarms(None, state="unacknowledged")
                                    if a.id != alarm.id], 10, "a new alarm")[0]
        assert again.linked_to == alarm.id and again.case == "open"
    finally:
        pub.loop_stop()
        pub.disconnect()
        topics.close()
        srv.stop()
