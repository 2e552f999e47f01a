"""A store that keeps failing is a system alarm, raised after 10 s and cleared when it writes again
(a real influxd stopped and started; the alarm clock is the gateway's tick, driven by hand)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.batch import ReadingBatch
from gateway.clock import ManualClock
from gateway.root.runtime import Gateway
from tests.helpers import CH4, district, mqtt_device, until
from tests.influx_peer import InfluxD


def test_a_failing_sink_raises_and_clears_a_system_alarm(tmp_path: Path, influxd: InfluxD) -> None:
    influxd.create_database("s")
    cfg = district([mqtt_device("e1", "d1", [CH4])],
                   storage={"backend": "influxdb", "influxdb": {"url": influxd.url, "api": "v1", "bucket": "s"}})

    async def scenario() -> list[tuple[str, str, str]]:
        clock = ManualClock(time.time_ns())  # the test moves the alarm clock itself
        gw = Gateway(cfg, data_dir=tmp_path / "gw", collectors=False, clock=clock)
        runner = asyncio.create_task(gw.run())
        await gw.started.wait()
        influxd.stop()
        await gw.intake.submit(ReadingBatch.of([0], [time.time_ns()], [5.0]))
        sink = gw.storage.drainers["influxdb"]
        await until(lambda: sink.state == "failing", 30, "the sink to fail")
        t = clock.now_ns() // 1_000_000
        gw.tick(t)
        gw.tick(t + 9_999)
        assert gw.book.list_alarms(None, kind="system") == []  # a short outage is no alarm
        gw.tick(t + 10_000)
        gw.tick(t + 11_000)  # still failing: the same alarm, no new event
        influxd.start()
        await until(lambda: sink.state == "ok", 30, "the sink to recover")
        gw.tick(t + 12_000)
        events = [(e.type, e.alarm.sensor_id, e.alarm.level) for e in gw.book.events_since(0, None)]
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return events

    events = asyncio.run(scenario())
    assert events == [("raised", "gateway/sink/influxdb", "store_failing"),
                      ("cleared", "gateway/sink/influxdb", "store_failing")]
    assert influxd.count("s") == 1  # and the reading got there after all
