"""Public reports cannot silence real alarms: the whole gateway (API, MQTT collector, alarm book,
MQTT notifier) against a real Mosquitto, with an officer subscribed to their alarm topic.

Reports about one grid open one alarm per place and never count toward the grid's flood; in a
real flood of the grid, the high priority alarms (a high-high, a gas detector's fault or
communication loss) still reach the officer while the rest are held. Each test ends with an event
that is pushed: the notifier delivers in the book's order, so once it has arrived everything pushed
before it has too, and what is missing was held.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.alerts.test_noise import Officer
from tests.helpers import wait_for
from tests.peers import Mosquitto
from tests.server import G1, ApiServer, make_config

PLANT = 13  # pressure points of a plant without gas detection


def config(mosquitto: Mosquitto, reports_per_hour: int = 10) -> dict[str, Any]:
    cfg = make_config()
    cfg["mqtt"] = {"url": mosquitto.url}
    cfg["api"] = {"reports_per_hour": reports_per_hour}
    points = [{"key": f"p{i}", "kind": "pressure", "unit": "kPa", "high": 60.0, "high_high": 80.0}
              for i in range(PLANT)]
    cfg["devices"].append({"enterprise": "hengyuan", "id": "plant", "protocol": "mqtt", "points": points})
    return cfg


def got(officer: Officer) -> list[tuple[str, str]]:
    with officer.lock:
        return [(m["type"], m["alarm"]["level"]) for m in officer.got]


def started(tmp_path: Path, cfg: dict[str, Any]) -> ApiServer:
    srv = ApiServer(tmp_path / "gw", cfg, collectors=True)
    srv.start()
    wait_for(lambda: srv.gw.notifiers["mqtt"].connected, 10, "the MQTT notifier")
    return srv


def test_reports_about_a_grid_never_silence_its_high_high(tmp_path: Path, mosquitto: Mosquitto) -> None:
    zhang = Officer(mosquitto.port, "zhang")
    srv = started(tmp_path, config(mosquitto, reports_per_hour=25))
    try:
        with httpx.Client(base_url=srv.base, timeout=10) as anon:
            ids = set()
            for i in range(20):  # the attack, and more: a burst about one enterprise
                r = anon.post("/reports", json={"enterprise": "hengyuan", "text": f"刺鼻气味 {i}",
                                                "contact": f"1390000{i:04d}"})
                assert r.status_code == 201, r.text
                ids.add(r.json()["id"])
            for i in range(5):  # and about places in its grid
                r = anon.post("/reports", json={"grid": G1, "text": "化工桶漏液", "location": f"村口 {i}"})
                assert r.status_code == 201, r.text
            r = anon.post("/reports", json={"enterprise": "hengyuan", "text": "one too many"})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) > 3000  # per reporter, as before
        assert len(ids) == 1 and not srv.gw.alarms.noise.flooding(G1)
        srv.raise_alarm("hengyuan/gas/ch4", 60.0)  # a real high-high in that grid
        wait_for(lambda: ("raised", "high_high") in got(zhang), 10, "the high-high on the officer's topic")
        assert got(zhang) == [("raised", "report"), ("raised", "report"), ("raised", "high_high")]
        with srv.client("zhang") as client:
            report = client.get(f"/alarms/{ids.pop()}").json()
        assert report["value"] == 20 and report["history"][0]["type"] == "raised"
        notes = [h["note"] for h in report["history"] if h["type"] == "reported"]
        assert [report["reason"], *notes] == [f"刺鼻气味 {i}" for i in range(20)]  # every text kept
        assert [m["contact"] for m in report["report"]["more"]] == [f"1390000{i:04d}" for i in range(1, 20)]
        assert srv.gw.health()["alarms"]["floods"] == 0
    finally:
        srv.stop()
        zhang.close()


def test_in_a_flood_the_officer_still_gets_gas_alarms(tmp_path: Path, mosquitto: Mosquitto) -> None:
    zhang = Officer(mosquitto.port, "zhang")
    srv = started(tmp_path, config(mosquitto))
    book = srv.gw.book

    def status(device: str, level: str) -> None:  # the device's last will, as the broker publishes it
        zhang.client.publish(f"gridgate/v1/hengyuan/{device}/status", "offline", qos=1, retain=True).wait_for_publish(5)
        wait_for(lambda: book.list_alarms(None, level=level, sensor=f"hengyuan/{device}"), 10, f"{device} offline")

    try:
        srv.submit({f"hengyuan/plant/p{i}": 70.0 for i in range(PLANT)})  # 13 highs: a flood at the 11th
        wait_for(lambda: len(book.list_alarms(None, level="high")) == PLANT, 10, "the plant's alarms")
        assert srv.gw.alarms.noise.flooding(G1)
        status("plant", "offline")  # medium: held in the flood
        srv.submit({"hengyuan/gas/ch4": 60.0})  # high-high
        srv.submit({"hengyuan/gas/ch4b": 150.0})  # outside the measuring range: the gas detector's fault
        wait_for(lambda: book.list_alarms(None, level="fault"), 10, "the fault")
        status("gas", "offline")  # the gas detector lost
        wait_for(lambda: ("raised", "offline") in got(zhang), 10, "the gas detector's offline")
        assert got(zhang) == [("raised", "high")] * 10 + [
            ("raised", "flood"), ("raised", "high_high"), ("raised", "fault"), ("raised", "offline")]
        assert srv.gw.health()["alarms"]["held_back"] == PLANT - 10 + 1  # three highs, the plant's offline
    finally:
        srv.stop()
        zhang.close()
