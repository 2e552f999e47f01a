"""Suppression by design through the running gateway: a stopped unit suppresses its point's alarms."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.batch import ReadingBatch
from gateway.errors import ConfigError
from gateway.root.runtime import Gateway
from tests.helpers import district, mqtt_device, until

POINTS = [
    {"key": "run", "kind": "status"},
    {"key": "flow", "kind": "flow", "unit": "m3/h", "low": 10.0, "suppressed_by": "run"},
    {"key": "flow2", "kind": "flow", "unit": "m3/h", "low": 10.0},  # not suppressed
]


def test_a_stopped_unit_suppresses_and_a_running_one_returns_by_condition(tmp_path: Path) -> None:
    cfg = district([mqtt_device("e1", "pump", POINTS)])

    async def scenario() -> list[tuple[str, str, str]]:
        gw = Gateway(cfg, data_dir=tmp_path, collectors=False)
        runner = asyncio.create_task(gw.run())
        await gw.started.wait()
        t = time.time_ns()
        seen = []

        async def read(values: dict[int, float]) -> None:
            nonlocal t
            t += 1_000_000_000
            before = gw.book.last_event_id()
            await gw.intake.submit(ReadingBatch.of(list(values), [t] * len(values), list(values.values())))
            await until(lambda: gw.evaluated >= gw.intake.submitted, 5, "the batch evaluated")
            seen.extend((e.type, e.alarm.sensor_id, e.alarm.state) for e in gw.book.events_since(before, None))

        await read({0: 1, 1: 50, 2: 50})  # running, normal
        await read({1: 5, 2: 5})  # both flows low: two alarms
        await read({0: 0})  # the pump stops: flow's alarm is suppressed, flow2's is not
        state = gw.alarms.sensor_state(1), gw.alarms.sensor_state(2)
        await read({1: 50})  # clears while suppressed: recorded, still suppressed
        await read({1: 0})  # and low again (a stopped pump has no flow)
        await read({0: 1})  # running again, flow still low: back to unacknowledged
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        assert state == ("suppressed", "low")
        return seen

    seen = asyncio.run(scenario())
    flow = [(t, s) for t, sid, s in seen if sid == "e1/pump/flow"]
    assert flow == [("raised", "unacknowledged"), ("suppressed", "suppressed"), ("cleared", "suppressed"),
                    ("raised", "suppressed"), ("unsuppressed", "unacknowledged")]
    assert [(t, s) for t, sid, s in seen if sid == "e1/pump/flow2"] == [("raised", "unacknowledged")]


def test_suppressed_by_must_name_a_status_point_of_the_device() -> None:
    with pytest.raises(ConfigError) as exc:
        district([mqtt_device("e1", "pump", [{"key": "flow", "kind": "flow", "suppressed_by": "nothing"},
                                             {"key": "t", "kind": "temperature", "suppressed_by": "flow"}])])
    paths = [p for p, _ in exc.value.problems]
    assert paths == ["devices[0] (e1/pump).points[0] (flow).suppressed_by",
                     "devices[0] (e1/pump).points[1] (t).suppressed_by"]
