"""The MQTT collector and the MQTT fleet against a real Mosquitto (the ``mosquitto`` fixture)."""

from __future__ import annotations

import asyncio
import time

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collectors.mqtt import MqttCollector
from gateway.batch import Quality
from gateway.config import Config, parse_config
from gateway.ingest.intake import DeviceStatus, Intake
from gateway.registry import Registry
from simulators.mqtt_fleet import FleetDevice, MqttFleet
from simulators.scenarios import Scenario
from tests.helpers import until

PREFIX = "gridgate/v1"
TS = (int(time.time()) - 3600) * 1000  # epoch ms, an hour ago: within the retention and the clock skew
NS = 1_000_000


def make_config(url: str) -> Config:
    return parse_config({
        "mqtt": {"url": url, "prefix": PREFIX, "max_payload": 2048},
        "departments": [{"id": "yjj", "name": "应急管理局"}],
        "officers": [{"id": "zhang", "name": "张伟"}],
        "grids": [{"id": "g1", "name": "龙岭村网格", "area": "430903001002", "officers": ["zhang"]}],
        "enterprises": [{"id": "acme", "name": "恒源化工", "grid": "g1", "lead_department": "yjj"}],
        "devices": [
            {"enterprise": "acme", "id": "tank", "protocol": "mqtt", "points": [
                {"key": "t1", "kind": "temperature", "unit": "°C"},
                {"key": "ch4", "kind": "combustible_gas", "unit": "%LEL"},
                {"key": "run", "kind": "status"}]},
            {"enterprise": "acme", "id": "gas", "protocol": "mqtt", "points": [
                {"key": "ch4", "kind": "combustible_gas", "unit": "%LEL"},
                {"key": "o2", "kind": "oxygen", "unit": "%VOL"}]},
            {"enterprise": "acme", "id": "plc", "protocol": "modbus", "host": "127.0.0.1", "points": [
                {"key": "x", "kind": "temperature", "register": "holding", "address": 0, "dtype": "int16"}]},
        ],
    })


class Peer:
    """A plain paho client for the test side: publishes, and queues what it receives."""

    def __init__(self, url: str, subscribe: str | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.received: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"peer-{time.time_ns()}")
        self.client.on_message = lambda c, u, m: self.loop.call_soon_threadsafe(
            self.received.put_nowait, (m.topic, orjson.loads(m.payload)))
        port = int(url.rsplit(":", 1)[1])
        self.client.connect("127.0.0.1", port)
        if subscribe:
            self.client.subscribe(subscribe, qos=1)
        self.client.loop_start()

    def publish(self, topic: str, payload: object, retain: bool = False) -> None:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self.client.publish(f"{PREFIX}/{topic}", body, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def take(intake: Intake, n: int, timeout: float = 10.0) -> list[tuple[int, int, float, int]]:
    """The next ``n`` readings from the intake, as (sensor, ts, value, quality)."""
    out: list[tuple[int, int, float, int]] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            b = await intake.readings.get()
            out.extend(zip(b.sensor.tolist(), b.ts.tolist(), b.value.tolist(), b.quality.tolist(),
                           strict=True))
    return out


class Running:
    """A collector running in a task for the length of an ``async with``."""

    def __init__(self, url: str, client_id: str = "gw-test", intake: Intake | None = None,
                 **kw: object) -> None:
        self.cfg = make_config(url)
        self.registry = Registry(self.cfg)
        self.intake = intake or Intake()
        self.collector = MqttCollector(self.cfg.mqtt, self.registry, self.intake, client_id, **kw)  # type: ignore[arg-type]

    def sensor(self, sid: str) -> int:
        return self.registry.sensor_index(sid)

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.collector.run())
        await until(lambda: self.collector.subscribed, 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def test_good_telemetry_forms(mosquitto):
    async def main() -> None:
        async with Running(mosquitto.url) as gw:
            peer = Peer(mosquitto.url)
            t1, ch4, run = gw.sensor("acme/tank/t1"), gw.sensor("acme/tank/ch4"), gw.sensor("acme/tank/run")
            peer.publish("acme/tank/telemetry", {"ts": TS, "values": {"t1": 21.5, "ch4": 3}})
            peer.publish("acme/tank/telemetry", [{"ts": TS + 1000, "values": {"t1": 22.0}},
                                                 {"ts": TS + 2000.5, "values": {"run": 4}}])
            peer.publish("acme/tank/telemetry", {"ts": TS + 3000, "values": {
                "ch4": {"v": 7.5, "q": "uncertain"}, "t1": {"v": -25, "q": "fault"}, "run": {"v": 1}}})
            before = time.time_ns()
            peer.publish("acme/tank/telemetry", {"values": {"t1": 23.25}})
            got = await take(gw.intake, 8)
            after = time.time_ns()
            no_ts = [r for r in got if r[1] >= before - 10**9]
            assert len(no_ts) == 1 and before <= no_ts[0][1] <= after and no_ts[0][2] == 23.25
            assert sorted(r for r in got if r not in no_ts) == sorted([
                (t1, TS * NS, 21.5, 0), (ch4, TS * NS, 3.0, 0),
                (t1, (TS + 1000) * NS, 22.0, 0), (run, (TS + 2000) * NS + 500_000, 4.0, 0),
                (ch4, (TS + 3000) * NS, 7.5, Quality.UNCERTAIN), (t1, (TS + 3000) * NS, -25.0, Quality.FAULT),
                (run, (TS + 3000) * NS, 1.0, Quality.GOOD)])
            assert gw.intake.rejects.total() == 0
            h = gw.collector.health()
            assert h["connected"] and h["messages"] == 4 and h["readings"] == 8 and h["rejected"] == 0
            peer.close()

    asyncio.run(main())


BIG = {"values": {"t1": 1.0}, "pad": "x" * 3000}

# (topic, payload, reason, answered on the errors topic)
MALFORMED = [
    ("acme/tank/telemetry", b"not json", "not_json", True),
    ("acme/tank/telemetry", b"\xff\xfe", "not_json", True),
    ("acme/tank/telemetry", [7], "bad_shape", True),
    ("acme/tank/telemetry", "a string", "bad_shape", True),
    ("acme/tank/telemetry", [], "bad_shape", True),
    ("acme/tank/telemetry", {"ts": TS}, "bad_shape", True),
    ("acme/tank/telemetry", {"values": {"t1": {"value": 1}}}, "bad_shape", True),
    ("acme/tank/telemetry", {"timestamp": TS, "values": {"t1": 1}}, "bad_shape", True),
    ("acme/tank/telemetry", {"values": {"nope": 1}}, "unknown_point", True),
    ("acme/tank/telemetry", {"values": {"t1": "12.5"}}, "not_number", True),
    ("acme/tank/telemetry", {"values": {"t1": True}}, "not_number", True),
    ("acme/tank/telemetry", {"values": {"t1": None}}, "not_number", True),
    ("acme/tank/telemetry", b'{"values": {"t1": 1e999}}', "non_finite", True),
    ("acme/tank/telemetry", b'{"values": {"t1": NaN}}', "non_finite", True),
    ("acme/tank/telemetry", {"ts": 1_700_000_000, "values": {"t1": 1}}, "bad_ts", True),
    ("acme/tank/telemetry", {"ts": "now", "values": {"t1": 1}}, "bad_ts", True),
    ("acme/tank/telemetry", {"ts": TS + 3 * 3_600_000, "values": {"t1": 1}}, "ts_future", True),  # 2 h ahead
    ("acme/tank/telemetry", {"ts": TS - 40 * 86_400_000, "values": {"t1": 1}}, "ts_too_old", True),
    ("acme/tank/telemetry", {"values": {"t1": {"v": 1, "q": "great"}}}, "bad_quality", True),
    ("acme/tank/telemetry", BIG, "too_large", True),
    ("acme/ghost/telemetry", {"values": {"t1": 1}}, "unknown_device", True),
    ("acme/plc/telemetry", {"values": {"x": 1}}, "unknown_device", True),  # a Modbus device
    ("nobody/tank/telemetry", {"values": {"t1": 1}}, "unknown_enterprise", True),
    ("alarms/tank/telemetry", {"values": {"t1": 1}}, "reserved_enterprise", False),
    ("acme/tank/status", b"maybe", "bad_status", True),
]


def test_malformed_payloads_are_rejected_and_answered(mosquitto):
    async def main() -> None:
        async with Running(mosquitto.url, errors=(1.0, len(MALFORMED))) as gw:  # every one answered
            peer = Peer(mosquitto.url, subscribe=f"{PREFIX}/+/+/errors")
            t1 = gw.sensor("acme/tank/t1")
            for i, (topic, payload, reason, answered) in enumerate(MALFORMED):
                before = gw.intake.rejects.snapshot().get(f"mqtt:{reason}", 0)
                peer.publish(topic, payload)
                peer.publish("acme/tank/telemetry", {"ts": TS + i, "values": {"t1": float(i)}})
                assert await take(gw.intake, 1) == [(t1, (TS + i) * NS, float(i), 0)], reason
                if answered:
                    err_topic, err = await asyncio.wait_for(peer.received.get(), 5)
                    ent, dev = topic.split("/")[:2]
                    assert err_topic == f"{PREFIX}/{ent}/{dev}/errors"
                    assert err["reason"] == reason and err["topic"] == f"{PREFIX}/{topic}" and err["detail"]
                assert gw.intake.rejects.snapshot()[f"mqtt:{reason}"] == before + 1, reason
            assert peer.received.empty()  # nothing was answered into the reserved namespace
            peer.close()

    asyncio.run(main())


def test_bad_points_are_reported_and_good_ones_kept(mosquitto):
    async def main() -> None:
        async with Running(mosquitto.url) as gw:
            peer = Peer(mosquitto.url, subscribe=f"{PREFIX}/+/+/errors")
            peer.publish("acme/tank/telemetry", [
                {"ts": TS, "values": {"t1": 20.0, "bogus": 1, "ch4": "high"}},
                {"ts": 5, "values": {"t1": 1.0, "run": 1}},
                {"ts": TS + 1, "values": {"run": 2}}])
            got = await take(gw.intake, 2)
            assert sorted(got) == sorted([(gw.sensor("acme/tank/t1"), TS * NS, 20.0, 0),
                                          (gw.sensor("acme/tank/run"), (TS + 1) * NS, 2.0, 0)])
            _, err = await asyncio.wait_for(peer.received.get(), 5)
            assert err["reason"] == "unknown_point" and "2 readings kept" in err["detail"]
            counts = gw.intake.rejects.snapshot()
            assert counts == {"mqtt:unknown_point": 1, "mqtt:not_number": 1, "mqtt:bad_ts": 2}
            assert gw.collector.health()["rejected"] == 4
            peer.close()

    asyncio.run(main())


def test_status_reaches_the_intake_and_retained_telemetry_is_refused(mosquitto):
    async def main() -> None:
        peer = Peer(mosquitto.url)
        peer.publish("acme/gas/status", b"online", retain=True)  # retained: seen on subscribe
        peer.publish("acme/gas/telemetry", {"ts": TS, "values": {"o2": 20.9}}, retain=True)
        async with Running(mosquitto.url) as gw:
            dev = gw.registry.device("acme", "gas").index
            s = await asyncio.wait_for(gw.intake.statuses.get(), 5)
            assert (s.device_index, s.online) == (dev, True)
            peer.publish("acme/gas/status", b"offline\n")
            s = await asyncio.wait_for(gw.intake.statuses.get(), 5)
            assert (s.device_index, s.online) == (dev, False) and s.ts > 0
            await until(lambda: "mqtt:retained" in gw.intake.rejects.snapshot(), 10)
            assert gw.intake.readings.empty()
        peer.close()

    asyncio.run(main())


def test_messages_sent_while_away_arrive_on_return(mosquitto):
    async def main() -> None:
        t1 = Registry(make_config(mosquitto.url)).sensor_index("acme/tank/t1")
        async with Running(mosquitto.url, client_id="gw-away"):
            pass  # the first visit creates the persistent session
        peer = Peer(mosquitto.url)
        for i in range(50):
            peer.publish("acme/tank/telemetry", {"ts": TS + i, "values": {"t1": float(i)}})
        async with Running(mosquitto.url, client_id="gw-away") as gw:
            got = await take(gw.intake, 50)
            assert sorted(got) == [(t1, (TS + i) * NS, float(i), 0) for i in range(50)]
        peer.close()

    asyncio.run(main())


def test_messages_not_accepted_by_the_intake_are_redelivered(mosquitto):
    async def main() -> None:
        n = 300
        stuck = Intake(maxsize=1)  # holds one batch; nobody reads it, so the rest stay unacknowledged
        async with Running(mosquitto.url, client_id="gw-stuck", intake=stuck, group_messages=5) as gw:
            peer = Peer(mosquitto.url)
            for i in range(n):
                peer.client.publish(f"{PREFIX}/acme/tank/telemetry",
                                    orjson.dumps({"ts": TS + i, "values": {"t1": float(i)}}), qos=1)
            await until(lambda: stuck.readings.full() and gw.collector.messages >= 10, 10)
        accepted = await take(stuck, 1)
        async with Running(mosquitto.url, client_id="gw-stuck") as gw:
            rest = await take(gw.intake, n - len(accepted))
            await asyncio.sleep(0.2)
            while not gw.intake.readings.empty():  # redelivered duplicates are allowed, gaps are not
                rest += await take(gw.intake, 1)
        assert {r[1] for r in accepted + rest} == {(TS + i) * NS for i in range(n)}
        peer.close()

    asyncio.run(main())


def test_collector_survives_a_broker_restart(mosquitto):
    async def main() -> None:
        async with Running(mosquitto.url, backoff=(0.2, 2.0)) as gw:
            t1 = gw.sensor("acme/tank/t1")
            await asyncio.to_thread(mosquitto.restart)
            await until(lambda: gw.collector.health()["reconnects"] >= 1 and gw.collector.subscribed, 10)
            assert gw.collector.health()["last_error"].startswith(("connection lost", "cannot connect"))
            peer = Peer(mosquitto.url)
            peer.publish("acme/tank/telemetry", {"ts": TS, "values": {"t1": 5.0}})
            assert await take(gw.intake, 1) == [(t1, TS * NS, 5.0, 0)]
            peer.close()

    asyncio.run(main())


def test_backpressure_blocks_without_losing(mosquitto):
    async def main() -> None:
        n = 1500
        async with Running(mosquitto.url, intake=Intake(maxsize=1), max_groups=1, group_messages=10) as gw:
            peer = Peer(mosquitto.url)
            for i in range(n):
                peer.client.publish(f"{PREFIX}/acme/tank/telemetry",
                                    orjson.dumps({"ts": TS + i, "values": {"t1": float(i)}}), qos=1)
            peer.publish("acme/gas/status", b"online")
            await until(lambda: gw.intake.readings.full(), 10)
            seen = gw.collector.messages
            await asyncio.sleep(0.3)  # nobody reads the intake: the collector must stand still
            assert gw.collector.messages - seen <= 20 and gw.collector.messages < n
            got = await take(gw.intake, n, timeout=30)
            assert sorted(r[1] for r in got) == [(TS + i) * NS for i in range(n)]
            peer.close()

    asyncio.run(main())


def test_fleet_leak_reaches_the_collector(mosquitto):
    async def main() -> None:
        leak = Scenario("leak", seed=7, start=1.0, ramp=4.0, hold=2.0, peak=60.0)
        device = FleetDevice("acme", "gas", (("ch4", "combustible_gas"), ("o2", "oxygen")))
        now = [0.0]
        async with Running(mosquitto.url) as gw:
            dev = gw.registry.device("acme", "gas")
            kinds = {dev.points["ch4"]: ("combustible_gas", "ch4"), dev.points["o2"]: ("oxygen", "o2")}
            fleet = MqttFleet(mosquitto.url, PREFIX, [device], {"acme/gas": leak}, clock=lambda: now[0])
            async with fleet:
                s = await asyncio.wait_for(gw.intake.statuses.get(), 5)
                assert (s.device_index, s.online) == (dev.index, True)
                times = [i * 0.5 for i in range(24)]
                for t in times:
                    now[0] = t
                    assert fleet.publish_at(fleet.elapsed()) == 1
                got = await take(gw.intake, 2 * len(times))
            s = await asyncio.wait_for(gw.intake.statuses.get(), 5)
            assert (s.device_index, s.online) == (dev.index, False)
        peak = 0.0
        for sensor, ts, value, quality in got:
            kind, key = kinds[sensor]
            assert (value, quality) == leak.reading(kind, key, fleet.time_of(ts // NS))
            if key == "ch4":
                peak = max(peak, value)
        assert peak == 60.0 and sorted({fleet.time_of(ts // NS) for _, ts, _, _ in got}) == times

    asyncio.run(main())


def test_fleet_ticks_on_its_own_and_dropout_is_silent(mosquitto):
    async def main() -> None:
        drop = Scenario("dropout", start=0.25, hold=10.0)
        device = FleetDevice("acme", "gas", (("o2", "oxygen"),))
        async with Running(mosquitto.url) as gw:
            async with MqttFleet(mosquitto.url, PREFIX, [device], {"acme/gas": drop}, interval=0.05) as fleet:
                await until(lambda: fleet.published >= 3, 10)
                await asyncio.sleep(0.5)  # well inside the dropout window
                assert fleet.published <= 6
            got = await take(gw.intake, fleet.published)
            assert all(fleet.time_of(ts // NS) < 0.25 for _, ts, _, _ in got)

    asyncio.run(main())


def test_a_status_is_acknowledged_only_once_the_intake_recorded_it(mosquitto):
    """An ``offline`` (a device's last will) whose recording never finished is redelivered to the next
    session: the PUBACK follows the intake's durable step for statuses, as it does for readings."""
    async def main() -> None:
        entered = asyncio.Event()

        async def never_done(status: DeviceStatus) -> None:  # a book that never commits
            entered.set()
            await asyncio.Event().wait()

        stuck = Intake(accept_status=never_done)
        async with Running(mosquitto.url, client_id="gw-status", intake=stuck):
            peer = Peer(mosquitto.url)
            peer.publish("acme/tank/status", b"offline")
            await asyncio.wait_for(entered.wait(), 5)
        recorded: list[DeviceStatus] = []

        async def record(status: DeviceStatus) -> None:
            recorded.append(status)

        async with Running(mosquitto.url, client_id="gw-status", intake=Intake(accept_status=record)) as gw:
            await until(lambda: recorded, 10, "the redelivered status")
            tank = gw.registry.device("acme", "tank").index
            assert [(s.device_index, s.online) for s in recorded] == [(tank, False)]
        peer.close()

    asyncio.run(main())
