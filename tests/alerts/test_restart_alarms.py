"""After a restart the gateway picks up the conditions its book has open: the reading that ends an
alarm clears it, a device back with data clears its communication alarm, nothing is raised twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.batch import Quality, ReadingBatch
from gateway.ingest.intake import DeviceStatus
from gateway.root.runtime import Gateway
from tests.helpers import CH4, district, mqtt_device, until

POINTS = [CH4, {**CH4, "key": "ch4b"}, {**CH4, "key": "ch4c", "rate_of_change": 10.0}, {**CH4, "key": "ch4d"}]


async def run_once(gw: Gateway, batches: list[ReadingBatch], statuses: tuple[tuple[int, bool], ...] = ()) -> list:
    runner = asyncio.create_task(gw.run())
    await gw.started.wait()
    before = gw.book.last_event_id()
    for device, online in statuses:
        await gw.intake.device_status(DeviceStatus(device, online, time.time_ns(), "test"))
    for b in batches:
        await gw.intake.submit(b)
    await until(lambda: gw.evaluated >= gw.intake.submitted and gw.intake.statuses.empty(), 5,
                "every batch and status handled")
    await asyncio.sleep(0.1)
    events = [(e.type, e.alarm.sensor_id, e.alarm.level) for e in gw.book.events_since(before, None)]
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    return events


def test_open_conditions_survive_a_restart(tmp_path: Path) -> None:
    cfg = district([mqtt_device("e1", "d1", POINTS), mqtt_device("e1", "d2", [CH4])])
    t = time.time_ns()
    s = 1_000_000_000
    first = [
        ReadingBatch.of([0, 1, 2, 3], [t, t, t, t], [60.0, 30.0, 5.0, 5.0]),
        ReadingBatch.of([2, 3], [t + s, t + s], [20.0, 5.0], [Quality.GOOD, Quality.FAULT]),  # rate, fault
    ]
    got = asyncio.run(run_once(Gateway(cfg, data_dir=tmp_path), first, statuses=((1, False),)))
    assert sorted(got) == sorted([("raised", "e1/d1/ch4", "high_high"), ("raised", "e1/d1/ch4b", "high"),
                                  ("raised", "e1/d1/ch4c", "rate_of_change"), ("raised", "e1/d1/ch4d", "fault"),
                                  ("raised", "e1/d2", "offline")])
    # restarted: still over the limit on ch4 (no new raise), the others end, d2 sends data again
    t2 = time.time_ns()
    second = [ReadingBatch.of([0, 1, 2, 3, 4], [t2] * 5, [55.0, 1.0, 20.0, 5.0, 1.0]),
              ReadingBatch.of([2], [t2 + 120 * s], [20.0])]  # the rate falls back (no rise in a minute)
    got = asyncio.run(run_once(Gateway(cfg, data_dir=tmp_path), second))
    assert sorted(got) == sorted([("cleared", "e1/d1/ch4b", "high"), ("cleared", "e1/d1/ch4d", "fault"),
                                  ("cleared", "e1/d1/ch4c", "rate_of_change"), ("cleared", "e1/d2", "offline")])
