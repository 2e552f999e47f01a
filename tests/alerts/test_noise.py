"""Floods and chattering: one aggregated notification per flood, chattering flagged once, both counted.

The monitor is driven with explicit times over a real alarm book; the last test runs the whole
gateway against a real Mosquitto and counts what an officer's MQTT topic receives.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from alerts.book import AlarmBook
from alerts.detector import Detector
from alerts.noise import NoiseMonitor, gas_detectors
from gateway.batch import Quality, ReadingBatch
from gateway.config import ChatterSection, FloodSection
from gateway.registry import Registry
from gateway.root.runtime import Gateway
from tests.helpers import CH4, district, mqtt_device, until
from tests.peers import Mosquitto

G1, G2 = "43090300100201", "43090300100301"
T0 = 1_767_225_600_000
N = 50


def many(n: int) -> list[dict]:
    return [{**CH4, "key": f"ch{i}"} for i in range(n)]


def setup(tmp_path: Path) -> tuple[Registry, AlarmBook, Detector, NoiseMonitor]:
    reg = Registry(district([mqtt_device("e1", "d1", many(N)), mqtt_device("e2", "d2", [CH4])]))
    book = AlarmBook(tmp_path / "a.db", reg)
    return reg, book, Detector(reg), NoiseMonitor(book, FloodSection(), ChatterSection())


def feed(book: AlarmBook, det: Detector, sensor: int, value: float, at_ms: int) -> list:
    return book.apply(det.evaluate(ReadingBatch.of([sensor], [at_ms * 1_000_000], [value])))


def test_fifty_alarms_in_a_minute_make_one_flood_notification(tmp_path: Path) -> None:
    reg, book, det, noise = setup(tmp_path)
    pushed, seen = [], []
    for i in range(N):  # 50 sensors of grid 1 go high within 49 s
        everything, push = noise.observe(feed(book, det, i, 30.0, T0 + i * 1000))
        seen += everything
        pushed += push
    other, other_push = noise.observe(feed(book, det, N, 30.0, T0 + 50_000))  # grid 2, same time
    raised = [e for e in pushed if e.type == "raised"]
    assert [e.alarm.sensor_id for e in raised if e.alarm.level != "flood"] == [f"e1/d1/ch{i}" for i in range(10)]
    floods = [e for e in raised if e.alarm.level == "flood"]
    assert len(floods) == 1 and floods[0].alarm.grid == G1 and floods[0].recipients == ("o1",)
    assert floods[0].alarm.kind == "system" and floods[0].alarm.value == 11  # raised at the 11th alarm
    assert other_push == other and other[0].alarm.grid == G2  # another grid is not held
    assert len([e for e in seen if e.type == "raised" and e.alarm.level != "flood"]) == N  # nothing lost
    assert noise.counters.floods == 1 and noise.counters.held == N - 10
    assert noise.flooding(G1) and not noise.flooding(G2)
    # the flood's value follows the count; it lasts while the 10-minute window holds more than 5
    flood_id = floods[0].alarm.id
    assert book.get(flood_id).value == N
    assert noise.tick(T0 + 300_000) == []
    done = noise.tick(T0 + 49_000 + 600_000)  # the window has emptied
    assert [(e.type, e.alarm.id) for e in done] == [("cleared", flood_id)]
    assert "50 new alarms" in (book.get(flood_id).reason or "") and "40 notifications held back" in book.get(
        flood_id).reason
    # calm again: a new alarm is pushed
    _, push = noise.observe(feed(book, det, 0, 0.0, T0 + 700_000) + feed(book, det, 0, 30.0, T0 + 701_000))
    assert [e.type for e in push] == ["cleared", "raised"]


def test_below_the_threshold_is_no_flood(tmp_path: Path) -> None:
    _, book, det, noise = setup(tmp_path)
    pushed = []
    for i in range(10):  # exactly 10 in 10 minutes: not more than 10
        pushed += noise.observe(feed(book, det, i, 30.0, T0 + i * 59_000))[1]
    assert len(pushed) == 10 and noise.counters.floods == 0
    # the 11th after the first left the window: still no flood
    pushed += noise.observe(feed(book, det, 10, 30.0, T0 + 600_001))[1]
    assert len(pushed) == 11 and noise.counters.floods == 0


def test_a_chattering_alarm_is_flagged_once_and_its_repeats_held(tmp_path: Path) -> None:
    _, book, det, noise = setup(tmp_path)
    pushed = []
    t = T0
    for _cycle in range(5):  # raise and clear every 10 s: 3 cycles within a minute at 20 s
        pushed += noise.observe(feed(book, det, 0, 30.0, t))[1]
        pushed += noise.observe(feed(book, det, 0, 0.0, t + 5000))[1]
        t += 10_000
    types = [e.type for e in pushed]
    assert types == ["raised", "cleared", "raised", "cleared", "raised", "chattering"]
    alarm = book.get(pushed[0].alarm.id)
    assert alarm.chattering and noise.counters.chattering == 1
    assert [e.type for e in book.history(alarm.id)].count("raised") == 5  # the book has every cycle
    assert [e.type for e in book.history(alarm.id)].count("chattering") == 1
    noise.tick(t + 60_000)  # quiet for a minute: pushes resume
    assert [e.type for e in noise.observe(feed(book, det, 0, 30.0, t + 61_000))[1]] == ["raised"]


class Officer:
    """A paho subscriber on one officer's alarm topic."""

    def __init__(self, url_port: int, officer: str) -> None:
        self.got: list[dict] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{officer}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.connect("127.0.0.1", url_port)
        self.client.subscribe(f"gridgate/v1/officers/{officer}/alarms", qos=1)
        self.client.loop_start()
        assert self.ready.wait(5), "no SUBACK from Mosquitto"

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append(orjson.loads(msg.payload))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_flood_through_the_gateway_reaches_the_officer_as_one_notification(tmp_path: Path,
                                                                           mosquitto: Mosquitto) -> None:
    cfg = district([mqtt_device("e1", "d1", many(N))], mqtt={"url": mosquitto.url, "client_id": "gw-flood"})
    o1 = Officer(mosquitto.port, "o1")
    try:
        async def scenario() -> tuple[int, dict]:
            gw = Gateway(cfg, data_dir=tmp_path)
            runner = asyncio.create_task(gw.run())
            await gw.started.wait()
            await until(lambda: gw.notifiers["mqtt"].connected, 10, "the MQTT notifier")
            now = time.time_ns()
            for i in range(N):  # 50 gas alarms in one grid within a second
                await gw.intake.submit(ReadingBatch.of([i], [now + i * 10_000_000], [30.0]))
            await until(lambda: gw.evaluated >= N, 10, f"{N} readings evaluated")
            await until(lambda: len(o1.got) >= 11, 10, "the officer's 10 alarms and the flood")
            await asyncio.sleep(1.0)  # anything more the notifier would send has arrived by now
            raised = len(gw.book.list_alarms(None, state="unacknowledged", kind="process", limit=1000))
            health = gw.health()["alarms"]
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            return raised, health

        raised, health = asyncio.run(scenario())
    finally:
        o1.close()
    assert raised == N  # every alarm is in the book
    got = [(m["type"], m["alarm"]["level"]) for m in o1.got]
    assert got.count(("raised", "high")) == 10
    assert got.count(("raised", "flood")) == 1
    assert len(got) == 11, got
    assert health["floods"] == 1 and health["held_back"] == N - 10


# -- what a flood or chattering never holds back -----------------------------------------------------

TEMP = {"kind": "temperature", "unit": "°C", "low_low": -10.0, "low": 0.0, "high": 60.0, "high_high": 80.0}


def setup_plant(tmp_path: Path) -> tuple[Registry, AlarmBook, Detector, NoiseMonitor]:
    """Grid 1: gas detectors e1/d1 (N methane points) and e1/o2 (oxygen), and a plant e1/plant
    (temperatures, no gas)."""
    plant = mqtt_device("e1", "plant", [{**TEMP, "key": f"t{i}"} for i in range(3)])
    oxygen = mqtt_device("e1", "o2", [{"key": "o2", "kind": "oxygen", "unit": "%VOL"}])
    reg = Registry(district([mqtt_device("e1", "d1", many(N)), plant, oxygen]))
    book = AlarmBook(tmp_path / "a.db", reg)
    return reg, book, Detector(reg), NoiseMonitor(book, FloodSection(), ChatterSection())


def test_the_gas_detectors_are_the_devices_with_a_gas_or_oxygen_point(tmp_path: Path) -> None:
    reg, *_ = setup_plant(tmp_path)
    assert gas_detectors(reg) == {"e1/d1", "e1/o2"}


def test_a_flood_holds_back_only_low_and_medium_priority(tmp_path: Path) -> None:
    reg, book, det, noise = setup_plant(tmp_path)
    t = T0
    for i in range(11):  # 11 methane highs (medium): a flood of grid 1
        noise.observe(feed(book, det, i, 30.0, t := t + 1000))
    assert noise.flooding(G1)
    gas, oxygen, plant = reg.device("e1", "d1"), reg.device("e1", "o2"), reg.device("e1", "plant")
    temp = reg.sensor_index("e1/plant/t0")

    def ns() -> int:
        nonlocal t
        t += 1000
        return t * 1_000_000

    def bad(sensor: int) -> list:  # the gas detector says its measurement is invalid
        return book.apply(det.evaluate(ReadingBatch.of([sensor], [ns()], [0.0], [Quality.FAULT])))

    cases: list[tuple[str, Callable[[], list], list[tuple[str, str]]]] = [
        ("a new methane high", lambda: feed(book, det, 20, 30.0, ns() // 10**6), []),
        ("a new methane high-high", lambda: feed(book, det, 21, 60.0, ns() // 10**6), [("raised", "high_high")]),
        ("a high rising to high-high", lambda: feed(book, det, 0, 60.0, ns() // 10**6), [("rose", "high_high")]),
        ("a high-high lowered to high", lambda: feed(book, det, 0, 30.0, ns() // 10**6), []),
        ("a high-high clearing", lambda: feed(book, det, 21, 0.0, ns() // 10**6), [("cleared", "high_high")]),
        ("a fault of the gas detector", lambda: bad(22), [("raised", "fault")]),
        ("a read error of the gas detector",
         lambda: book.points_read([reg.sensors[23]], False, ns(), "timeout"), [("raised", "read_error")]),
        ("the gas detector offline",
         lambda: book.communication(gas, False, ns(), "offline", "last will"), [("raised", "offline")]),
        ("the oxygen detector stale",
         lambda: book.communication(oxygen, False, ns(), "stale", "no data"), [("raised", "stale")]),
        ("a temperature high", lambda: feed(book, det, temp, 70.0, ns() // 10**6), []),
        ("a temperature low-low", lambda: feed(book, det, temp + 1, -20.0, ns() // 10**6), [("raised", "low_low")]),
        ("a fault of the plant (no gas)", lambda: bad(temp + 2), []),
        ("the plant offline (no gas)",
         lambda: book.communication(plant, False, ns(), "offline", "last will"), []),
    ]
    for name, act, expected in cases:
        events, push = noise.observe(act())
        assert events, name
        assert [(e.type, e.alarm.level) for e in push] == expected, name
    assert noise.flooding(G1)  # it lasted all along
    flood = book.list_alarms(None, level="flood")[0]
    assert "high priority alarms are still pushed" in (flood.reason or "")


def test_a_chattering_high_high_is_flagged_and_still_pushed(tmp_path: Path) -> None:
    _, book, det, noise = setup_plant(tmp_path)
    pushed = []
    t = T0
    for _cycle in range(5):
        pushed += noise.observe(feed(book, det, 0, 60.0, t))[1]
        pushed += noise.observe(feed(book, det, 0, 0.0, t + 5000))[1]
        t += 10_000
    assert [e.type for e in pushed] == ["raised", "cleared"] * 2 + ["raised", "chattering", "cleared"] + [
        "raised", "cleared"] * 2
    assert book.get(pushed[0].alarm.id).chattering and noise.counters.chattering == 1
    assert noise.counters.held == 0


def test_public_reports_never_make_a_flood(tmp_path: Path) -> None:
    _, book, det, noise = setup_plant(tmp_path)
    pushed = []
    for i in range(20):  # 20 reports about one enterprise, 12 about places in its grid
        pushed += noise.observe([book.report(G1, "e1", f"smell {i}", None, None, f"10.0.0.{i}", T0 + i)])[1]
    for i in range(12):
        pushed += noise.observe([book.report(G1, "", "drums", f"bridge {i}", None, "10.0.1.1", T0 + 100 + i)])[1]
    assert not noise.flooding(G1) and noise.counters.floods == 0
    assert [(e.type, e.alarm.enterprise, e.alarm.value) for e in pushed] == [
        ("raised", "e1", 1), ("raised", "", 1)]  # the further reports are in the book, not pushed
    reports = {a.enterprise: a.value for a in book.list_alarms(None, kind="report")}
    assert reports == {"e1": 20, "": 12}
    # and 10 sensor alarms after them are still below the flood line
    for i in range(10):
        noise.observe(feed(book, det, i, 30.0, T0 + 1000 + i))
    assert not noise.flooding(G1)
