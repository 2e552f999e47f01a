"""MQTT devices' faults against a real Mosquitto: timestamps outside the gateway's window, a device's
``offline`` last will and its return, and a broken publisher's answers on its ``errors`` topic."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from collectors.mqtt import ERRORS_BURST, MqttCollector
from gateway.clock import ManualClock
from gateway.config import parse_config
from gateway.ingest.intake import Intake
from gateway.registry import Registry
from gateway.root.runtime import Gateway
from tests.collectors.test_mqtt_collector import NS, PREFIX, Peer, make_config, take
from tests.helpers import CH4, district, mqtt_device, until

MIN_MS = 60_000
DAY_MS = 86_400_000
NOW_MS = 1_750_000_000_000  # the gateway's (manual) clock


class Collector:
    """A collector on a manual clock, with ``max_clock_skew = 60`` and a 7-day retention."""

    def __init__(self, url: str) -> None:
        cfg = make_config(url).model_dump()
        cfg["mqtt"]["max_clock_skew"] = 60
        cfg["storage"]["retention_days"] = 7
        self.cfg = parse_config(cfg)
        self.registry = Registry(self.cfg)
        self.intake = Intake()
        self.clock = ManualClock(NOW_MS * NS)
        self.collector = MqttCollector(self.cfg.mqtt, self.registry, self.intake, f"gw-{time.time_ns()}",
                                       clock=self.clock)

    async def __aenter__(self) -> Collector:
        self.task = asyncio.create_task(self.collector.run())
        await until(lambda: self.collector.subscribed, 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def test_timestamps_outside_the_window_are_rejected_with_their_reason(mosquitto):
    async def main() -> None:
        async with Collector(mosquitto.url) as gw:
            peer = Peer(mosquitto.url, subscribe=f"{PREFIX}/acme/tank/errors")
            t1, ch4 = gw.registry.sensor_index("acme/tank/t1"), gw.registry.sensor_index("acme/tank/ch4")
            peer.publish("acme/tank/telemetry", [
                {"ts": NOW_MS + MIN_MS + 1, "values": {"t1": 1.0, "ch4": 1.0}},  # 60.001 s ahead
                {"ts": NOW_MS + MIN_MS, "values": {"t1": 2.0}},  # just within the skew
                {"ts": NOW_MS - 7 * DAY_MS - 1, "values": {"t1": 3.0}},  # just beyond the retention
                {"ts": NOW_MS - 7 * DAY_MS, "values": {"ch4": 4.0}},
                {"values": {"t1": 5.0}}])  # no ts: the gateway's clock
            got = await take(gw.intake, 3)
            assert sorted(got) == sorted([(t1, (NOW_MS + MIN_MS) * NS, 2.0, 0),
                                          (ch4, (NOW_MS - 7 * DAY_MS) * NS, 4.0, 0), (t1, NOW_MS * NS, 5.0, 0)])
            assert gw.intake.rejects.snapshot() == {"mqtt:ts_future": 2, "mqtt:ts_too_old": 1}
            assert gw.collector.health()["rejected"] == 3
            topic, err = await asyncio.wait_for(peer.received.get(), 5)
            assert topic == f"{PREFIX}/acme/tank/errors" and err["reason"] == "ts_future"
            assert "ahead of the gateway's clock" in err["detail"] and "3 readings kept" in err["detail"]
            peer.publish("acme/tank/telemetry", {"ts": NOW_MS - 30 * DAY_MS, "values": {"t1": 6.0}})
            _, err = await asyncio.wait_for(peer.received.get(), 5)
            assert err["reason"] == "ts_too_old" and "beyond the retention (7 days)" in err["detail"]
            gw.clock.advance(120)  # the clock moves: what was in the future is now
            peer.publish("acme/tank/telemetry", {"ts": NOW_MS + MIN_MS + 1, "values": {"t1": 7.0}})
            assert await take(gw.intake, 1) == [(t1, (NOW_MS + MIN_MS + 1) * NS, 7.0, 0)]
            assert gw.intake.rejects.snapshot() == {"mqtt:ts_future": 2, "mqtt:ts_too_old": 2}
            peer.close()

    asyncio.run(main())


def test_a_broken_publisher_gets_its_answers_rate_limited(mosquitto):
    async def main() -> None:
        flood = 60
        async with Collector(mosquitto.url) as gw:
            peer = Peer(mosquitto.url, subscribe=f"{PREFIX}/acme/+/errors")
            for _ in range(flood):
                peer.client.publish(f"{PREFIX}/acme/tank/telemetry", b"{broken", qos=1)
            peer.publish("acme/gas/telemetry", b"{broken")  # another device: a budget of its own
            await until(lambda: gw.intake.rejects.snapshot().get("mqtt:not_json") == flood + 1, 10)
            answers: list[str] = []
            while not answers or answers[-1] != f"{PREFIX}/acme/gas/errors":  # gas's answer comes last
                topic, _ = await asyncio.wait_for(peer.received.get(), 5)
                answers.append(topic)
            assert answers.count(f"{PREFIX}/acme/tank/errors") == ERRORS_BURST
            h = gw.collector.health()
            assert (h["errors_sent"], h["errors_suppressed"]) == (ERRORS_BURST + 1, flood - ERRORS_BURST)
            assert h["rejected"] == flood + 1  # every rejected message counted all the same
            gw.clock.advance(1.0)  # a second later: one more answer (1 per second on average)
            peer.publish("acme/tank/telemetry", b"{broken")
            peer.publish("acme/tank/telemetry", b"{broken")
            topic, err = await asyncio.wait_for(peer.received.get(), 5)
            assert topic == f"{PREFIX}/acme/tank/errors" and err["reason"] == "not_json"
            await until(lambda: gw.collector.health()["errors_suppressed"] == flood - ERRORS_BURST + 1, 5)
            assert peer.received.empty()
            peer.close()

    asyncio.run(main())


def test_a_last_will_raises_one_alarm_and_the_next_telemetry_clears_it(mosquitto, tmp_path: Path):
    cfg = district([mqtt_device("e1", "d1", [CH4]), mqtt_device("e1", "d2", [CH4])],
                   mqtt={"url": mosquitto.url})

    async def main() -> None:
        gw = Gateway(cfg, data_dir=tmp_path)
        runner = asyncio.create_task(gw.run())
        await gw.started.wait()
        await until(lambda: gw.collectors["mqtt"].subscribed, 10, "the MQTT subscription")
        start = gw.book.last_event_id()

        def events() -> list[tuple[str, str, str]]:
            return [(e.type, e.alarm.sensor_id, e.alarm.level) for e in gw.book.events_since(start, None)]

        peer = Peer(mosquitto.url)
        peer.publish("e1/d1/telemetry", {"values": {"ch4": 1.0}})
        peer.publish("e1/d1/status", b"offline")  # the broker publishes the device's last will
        await until(events, 10, "the offline alarm")
        peer.publish("e1/d1/status", b"offline")  # repeated (a retained will seen again)
        peer.publish("e1/d2/telemetry", {"values": {"ch4": 1.0}})  # another device's data clears nothing
        peer.publish("e1/d2/status", b"offline")  # statuses are recorded in order: d1's second one first
        await until(lambda: len(events()) == 2 and gw.evaluated >= 2, 10, "d2's offline")
        assert events() == [("raised", "e1/d1", "offline"), ("raised", "e1/d2", "offline")]
        peer.publish("e1/d1/telemetry", orjson.dumps({"ts": time.time_ns() // NS, "values": {"ch4": 2.0}}))
        await until(lambda: len(events()) == 3, 10, "the clear")
        cleared = gw.book.events_since(start, None)[-1]
        assert (cleared.type, cleared.alarm.sensor_id, cleared.note) == ("cleared", "e1/d1", None)
        assert cleared.alarm.state == "rtn_unacknowledged" and cleared.pushed
        peer.publish("e1/d1/status", b"online")  # its own "online" afterwards: nothing more
        peer.publish("e1/d2/status", b"online")
        await until(lambda: len(events()) == 4, 10, "d2's clear")
        assert events()[2:] == [("cleared", "e1/d1", "offline"), ("cleared", "e1/d2", "offline")]
        peer.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(main())
