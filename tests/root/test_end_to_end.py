"""The whole gateway against real peers: a Modbus farm, Mosquitto, and the runtime's own tasks.

One run of about 25 s plays, at the same time: a gas leak on a Modbus controller in grid 1, a spike
that the on-delay must swallow in grid 2, a Modbus controller that stops answering and comes back,
and MQTT telemetry with a malformed message between good ones. The assertions count exactly.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from alerts.book import AlarmBook
from gateway.root.runtime import Gateway
from gateway.storage.sqlite_store import SqliteStore
from simulators.devices import gas_detector_points, modbus_device
from simulators.modbus_farm import ModbusFarm
from simulators.scenarios import Scenario
from tests.helpers import district, mqtt_device, until
from tests.peers import Mosquitto, free_port


def gas(on_delay: float) -> list[dict]:
    points = gas_detector_points()
    points[0].update(high=20.0, high_high=40.0, deadband=1.0, on_delay=on_delay)
    return points


class Listener:
    """A paho subscriber on the officers' alarm topics."""

    def __init__(self, url: str) -> None:
        self.messages: dict[str, list[dict]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-listener")
        self.client.on_message = self._on_message
        port = int(url.rsplit(":", 1)[1])
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("gridgate/v1/officers/+/alarms", qos=1)
        self.client.subscribe("gridgate/v1/e1/th/errors", qos=0)
        self.client.loop_start()

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.setdefault(msg.topic, []).append(orjson.loads(msg.payload))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_gateway_end_to_end(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ports = [free_port() for _ in range(3)]
    cfg = district(
        [
            modbus_device("e1", "gas", ports[0], gas(0.0), interval=0.25, timeout=0.2),
            modbus_device("e2", "gas", ports[1], gas(0.6), interval=0.25, timeout=0.2),
            modbus_device("e2", "flaky", ports[2], gas(0.0), interval=0.25, timeout=0.2),
            mqtt_device("e1", "th", [{"key": "t1", "kind": "temperature", "unit": "°C", "high": 60.0}]),
        ],
        mqtt={"url": mosquitto.url, "client_id": "gw-e2e"},
    )
    scenarios = {
        "e1/gas": Scenario("leak", start=2.0, ramp=4.0, hold=1.5, peak=70.0),
        "e2/gas": Scenario("spike", start=3.0, spike_len=0.2, peak=60.0),
        "e2/flaky": Scenario("dropout", start=2.0, hold=7.0),
    }
    listener = Listener(mosquitto.url)

    async def scenario() -> Gateway:
        gw = Gateway(cfg, data_dir=tmp_path / "data")
        async with ModbusFarm(gw.registry, scenarios):
            runner = asyncio.create_task(gw.run())
            await gw.started.wait()
            await until(lambda: gw.collectors["mqtt"].health().get("subscribed"), 10, "MQTT connection")
            await asyncio.sleep(0.3)
            pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-pub")
            pub.connect("127.0.0.1", mosquitto.port)
            pub.loop_start()
            topic = "gridgate/v1/e1/th/telemetry"
            base = int(time.time() * 1000) - 2000  # within the retention and the clock skew
            pub.publish(topic, orjson.dumps({"ts": base, "values": {"t1": 21.5}}), qos=1)
            pub.publish(topic, b"{not json", qos=1)
            pub.publish(topic, orjson.dumps({"ts": base + 1000, "values": {"t1": 22.5}}), qos=1)
            await until(lambda: gw.store.count("e1/th/t1") == 2, 10, "two MQTT readings stored")
            pub.loop_stop()
            pub.disconnect()
            # the leak is over at 2 + 4 + 1.5 + 4 = 11.5 s; the dropout device is back at 9 s
            await until(lambda: any(e.type == "cleared" and e.alarm.sensor_id == "e2/flaky"
                                    for e in gw.book.events_since(0, None)), 25, "flaky device back")
            await until(lambda: any(e.type == "cleared" and e.alarm.sensor_id == "e1/gas/ch4"
                                    for e in gw.book.events_since(0, None)), 25, "leak cleared")
            await asyncio.sleep(0.5)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        return gw

    try:
        gw = asyncio.run(scenario())
        time.sleep(0.3)
    finally:
        listener.close()
    # read back from disk: what the officers were told must have been persisted
    book = AlarmBook(tmp_path / "data" / "alarms.db", gw.registry)
    store = SqliteStore(tmp_path / "data" / "readings.db", gw.registry)
    events = book.events_since(0, None)
    leak = [(e.type, e.alarm.level) for e in events if e.alarm.sensor_id == "e1/gas/ch4"]
    assert leak == [("raised", "high"), ("rose", "high_high"), ("lowered", "high"), ("cleared", "high")]
    assert not [e for e in events if e.alarm.sensor_id.startswith("e2/gas")], "the spike must be swallowed"
    flaky = [(e.type, e.alarm.kind, e.alarm.level) for e in events if e.alarm.sensor_id == "e2/flaky"]
    assert flaky == [("raised", "communication", "offline"), ("cleared", "communication", "offline")]
    # no reading of the dropped device was invented while it was away (a dead detector looks dead)
    series = store.query("e2/flaky/ch4", 0, time.time_ns())
    gaps = [b.ts - a.ts for a, b in zip(series, series[1:], strict=False)]
    assert max(gaps) >= 6000
    assert gw.intake.rejects.snapshot().get("mqtt:not_json") == 1
    assert [p.value for p in store.query("e1/th/t1", 0, time.time_ns())] == [21.5, 22.5]
    with listener.lock:
        o1 = [m["type"] for m in listener.messages.get("gridgate/v1/officers/o1/alarms", [])]
        o2 = [(m["type"], m["alarm"]["sensor_id"]) for m in listener.messages.get(
            "gridgate/v1/officers/o2/alarms", [])]
        errors = listener.messages.get("gridgate/v1/e1/th/errors", [])
    assert o1 == ["raised", "rose", "lowered", "cleared"]
    assert o2 == [("raised", "e2/flaky"), ("cleared", "e2/flaky")]
    assert [e["reason"] for e in errors] == ["not_json"]
