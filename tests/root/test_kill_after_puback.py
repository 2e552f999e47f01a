"""A gas reading over high-high is PUBACKed and the gateway is SIGKILLed 0, 2, 10, 50 and 200 ms later,
behind a burst of other readings (issue 8): after each restart its alarm is in the book exactly once
and was pushed to the officer's MQTT topic and to a webhook receiver. The PUBACK means the broker
will not resend it, so only the outbox and the detector's durable cursor stand between that reading
and a missed gas alarm. Real processes: `gridgate run`, Mosquitto, influxd."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import wait_for
from tests.influx_peer import InfluxD
from tests.peers import Mosquitto
from tests.receiver import Receiver
from tests.root.test_durability import DB, ENT, TOPIC, Gateway

DELAYS_MS = (0, 2, 10, 50, 200)
GAS = "gas-ctrl"
GAS_DEVICE = f"""
[[devices]]
enterprise = "{ENT}"
id = "{GAS}"
protocol = "mqtt"
""" + "".join(f'\n[[devices.points]]\nkey = "ch{i}"\nkind = "combustible_gas"\nunit = "%LEL"\n'
              for i in range(len(DELAYS_MS)))
BURST = 400  # messages of 10 readings published just before the gas reading


def test_an_acknowledged_gas_reading_alarms_whenever_the_gateway_dies(tmp_path: Path, mosquitto: Mosquitto,
                                                                     influxd: InfluxD) -> None:
    influxd.create_database(DB)
    rx = Receiver("json").start()
    gw = Gateway(tmp_path, mosquitto, influxd)
    hook = f'\n[[notifiers]]\ntype = "webhook"\nname = "hook"\nurl = "{rx.url}"\nformat = "json"\n'
    gw.cfg.write_text(gw.cfg.read_text(encoding="utf-8") + GAS_DEVICE + hook, encoding="utf-8")
    pushed: list[dict] = []
    officer = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kill-officer", clean_session=False)
    officer.on_message = lambda c, u, m: pushed.append(orjson.loads(m.payload))
    officer.connect("127.0.0.1", mosquitto.port)
    officer.subscribe("gridgate/v1/officers/zhang/alarms", qos=1)
    officer.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kill-pub")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        gw.start()
        for n, delay in enumerate(DELAYS_MS):
            base = int(time.time() * 1000)
            for i in range(BURST):
                values = {f"t{j}": float(j) for j in range(5)} | {f"p{j}": float(j) for j in range(5)}
                pub.publish(TOPIC, orjson.dumps({"ts": base + i, "values": values}), qos=1)
            gas = pub.publish(f"gridgate/v1/{ENT}/{GAS}/telemetry",
                              orjson.dumps({"ts": base + BURST, "values": {f"ch{n}": 80.0}}), qos=1)
            gas.wait_for_publish(20)  # the PUBACK: from here on the broker will never resend it
            time.sleep(delay / 1000)
            gw.kill()
            gw.start()
            wait_for(lambda: gw.health()["evaluation"]["behind_batches"] == 0, 30,
                     f"the detector to catch up after the kill at {delay} ms")
            alarms = gw.get("/alarms", sensor=f"{ENT}/{GAS}/ch{n}", limit=10).json()
            assert [(a["level"], a["peak"]) for a in alarms] == [("high_high", 80.0)], (delay, alarms)
            history = gw.get(f"/alarms/{alarms[0]['id']}").json()["history"]
            assert [e["type"] for e in history] == ["raised"], (delay, history)
            sensor = f"{ENT}/{GAS}/ch{n}"
            wait_for(lambda sensor=sensor: any(e["alarm"]["sensor_id"] == sensor for e in pushed), 20,
                     f"the officer's MQTT push after the kill at {delay} ms")
            wait_for(lambda sensor=sensor: any(r.json["alarm"]["sensor_id"] == sensor for r in rx.got), 20,
                     f"the webhook after the kill at {delay} ms")
            # pushed at least once; a second copy only with the same event id, on MQTT and the webhook alike
            # (the API shows event ids as opaque cursors; the pushes carry the book's own id)
            mqtt_ids = {e["id"] for e in pushed if e["alarm"]["sensor_id"] == sensor}
            hook_ids = {r.json["id"] for r in rx.got if r.json["alarm"]["sensor_id"] == sensor}
            assert len(mqtt_ids) == 1 and hook_ids == mqtt_ids, (delay, mqtt_ids, hook_ids)
    finally:
        officer.loop_stop()
        officer.disconnect()
        rx.stop()
        pub.loop_stop()
        pub.disconnect()
        gw.close()


def test_an_acknowledged_offline_status_is_an_alarm_whenever_the_gateway_dies(tmp_path: Path, mosquitto: Mosquitto,
                                                                           influxd: InfluxD) -> None:
    """A device's ``offline`` (its last will), SIGKILLed 0, 2 and 10 ms after the broker took it: the
    gateway acknowledges the message only once its communication alarm is in the book, so after the
    restart the alarm is there (recorded before the kill, or redelivered by the broker after it)."""
    influxd.create_database(DB)
    gw = Gateway(tmp_path, mosquitto, influxd)
    devices = "".join(f'\n[[devices]]\nenterprise = "{ENT}"\nid = "dev{i}"\nprotocol = "mqtt"\n'
                      f'\n[[devices.points]]\nkey = "t1"\nkind = "temperature"\nunit = "°C"\n' for i in range(3))
    gw.cfg.write_text(gw.cfg.read_text(encoding="utf-8") + devices, encoding="utf-8")
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="status-pub")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()

    def booked(device: str) -> list[tuple]:
        with sqlite3.connect(f"file:{gw.data_dir / 'alarms.db'}?mode=ro", uri=True) as db:
            return db.execute("SELECT kind, level FROM alarms WHERE sensor_id = ? AND in_alarm = 1",
                              (f"{ENT}/{device}",)).fetchall()

    try:
        gw.start()
        for i, delay in enumerate((0, 2, 10)):
            msg = pub.publish(f"gridgate/v1/{ENT}/dev{i}/status", b"offline", qos=1)
            msg.wait_for_publish(20)
            time.sleep(delay / 1000)
            gw.kill()
            gw.start()
            alarms = gw.get("/alarms", kind="communication", enterprise=ENT, limit=10).json()
            assert sorted(a["sensor_id"] for a in alarms) == [f"{ENT}/dev{j}" for j in range(i + 1)], alarms
            assert all(a["level"] == "offline" and a["state"] == "unacknowledged" for a in alarms)
            assert booked(f"dev{i}") == [("communication", "offline")]
    finally:
        pub.loop_stop()
        pub.disconnect()
        gw.close()
