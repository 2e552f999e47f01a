"""The Modbus collector against devices that misbehave as field devices do (simulators/faulty_modbus.py, a
Modbus TCP server written from the specification, not on pymodbus): each test asserts which points
were read, which read errors and statuses were raised (once), and that the other devices were untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from collectors.modbus import ModbusCollector
from gateway.batch import ReadingBatch
from gateway.config import parse_config
from gateway.ingest.intake import DeviceStatus, Intake
from gateway.registry import Registry
from simulators.devices import minimal_config, modbus_device
from simulators.faulty_modbus import FaultyDevice, Unit
from tests.helpers import until

# two blocks far apart (two requests): t0..t1 at 0..1, t2..t3 at 100..101
POINTS = [{"key": f"t{i}", "kind": "temperature", "register": "holding", "address": a, "dtype": "int16"}
          for i, a in enumerate((0, 1, 100, 101))]
VALUES = {0: 10, 1: 11, 100: 12, 101: 13}


def unit(**kw: Any) -> Unit:
    return Unit(registers=dict(VALUES), **kw)


@dataclass
class Polled:
    registry: Registry
    collector: ModbusCollector
    readings: list[ReadingBatch] = field(default_factory=list)
    statuses: list[DeviceStatus] = field(default_factory=list)

    def values(self, device: str) -> list[dict[str, float]]:
        """Per batch of the device: point key -> value."""
        info = self.registry.device("acme", device)
        keys = {i: k for k, i in info.points.items()}
        return [{keys[s]: v for s, v in zip(b.sensor.tolist(), b.value.tolist(), strict=True) if s in keys}
                for b in self.readings if set(b.sensor.tolist()) & set(keys)]

    def device_statuses(self, device: str) -> list[bool]:
        index = self.registry.device("acme", device).index
        return [s.online for s in self.statuses if s.device_index == index and not s.points]

    def point_statuses(self, device: str) -> list[tuple[bool, list[str], str]]:
        info = self.registry.device("acme", device)
        keys = {i: k for k, i in info.points.items()}
        return [(s.online, sorted(keys[p] for p in s.points), s.reason) for s in self.statuses
                if s.device_index == info.index and s.points]


@contextlib.asynccontextmanager
async def polling(devices: list[dict[str, Any]], links: list[dict[str, Any]] | None = None) -> AsyncIterator[Polled]:
    cfg = minimal_config(devices)
    if links:
        cfg["links"] = links
    registry = Registry(parse_config(cfg))
    intake = Intake()
    polled = Polled(registry, ModbusCollector(registry, intake, backoff=(0.1, 0.5)))

    async def drain() -> None:
        while True:
            polled.readings.append(await intake.readings.get())

    async def statuses() -> None:
        while True:
            polled.statuses.append(await intake.statuses.get())

    tasks = [asyncio.create_task(c) for c in (polled.collector.run(), drain(), statuses())]
    try:
        yield polled
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def device(name: str, port: int, unit_id: int = 1, **kw: Any) -> dict[str, Any]:
    return modbus_device("acme", name, port, POINTS, unit=unit_id, **{"interval": 0.2, "timeout": 0.15, **kw})


def test_an_exception_for_one_block_fails_only_its_points():
    async def main() -> None:
        async with FaultyDevice({1: unit(exception_blocks=[(100, 102, 2)])}) as bad, \
                FaultyDevice({1: unit()}) as good, \
                polling([device("rack", bad.port), device("other", good.port)]) as p:
            await until(lambda: len(p.values("rack")) >= 8 and len(p.values("other")) >= 8, 10,
                        "eight polls of the good block and of the other device")
            health = p.collector.health()["acme/rack"]
        assert all(v == {"t0": 10.0, "t1": 11.0} for v in p.values("rack"))  # the good block, every tick
        assert p.device_statuses("rack") == []  # never offline
        [(ok, keys, reason)] = p.point_statuses("rack")  # one read error for the two points, once
        assert not ok and keys == ["t2", "t3"] and "Modbus exception 2 (illegal data address)" in reason
        assert health["online"] is True and health["quarantined"] == ["holding 100+2"]
        assert health["errors"] == {"exception_2": 3}  # three tries, then quarantined: asked every 2 minutes
        assert len(p.values("other")) >= 8 and p.point_statuses("other") == [] and p.device_statuses("other") == []

    asyncio.run(main())


def test_busy_every_other_request_is_asked_again_within_the_tick():
    async def main() -> None:
        async with FaultyDevice({1: unit(busy_every=2)}) as busy, polling([device("plc", busy.port)]) as p:
            await until(lambda: len(p.values("plc")) >= 8, 10, "eight polls")
            health = p.collector.health()["acme/plc"]
        assert all(v == {"t0": 10.0, "t1": 11.0, "t2": 12.0, "t3": 13.0} for v in p.values("plc"))
        assert p.point_statuses("plc") == [] and p.device_statuses("plc") == []
        assert health["errors"]["exception_6"] >= 8 and health["request_failures"] == 0

    asyncio.run(main())


def test_a_device_that_closes_after_each_answer_is_reconnected_before_each_request():
    async def main() -> None:
        async with FaultyDevice({1: unit()}, close_after_answer=True) as closer, \
                polling([device("cheap", closer.port)]) as p:
            await until(lambda: len(p.values("cheap")) >= 8, 10, "eight polls")
            health = p.collector.health()["acme/cheap"]
        assert all(v == {"t0": 10.0, "t1": 11.0, "t2": 12.0, "t3": 13.0} for v in p.values("cheap"))
        assert "timeout" not in health["errors"] and health["request_failures"] == 0
        assert health["reconnects"] >= 15 and p.point_statuses("cheap") == []

    asyncio.run(main())


def test_wrong_transaction_ids_and_byte_counts_are_discarded_never_decoded():
    async def main() -> None:
        async with FaultyDevice({1: unit(wrong_tid_every=3), 2: unit(wrong_count_every=3)}) as odd, \
                polling([device("tid", odd.port, 1), device("count", odd.port, 2)]) as p:
            await until(lambda: len(p.values("tid")) >= 8 and len(p.values("count")) >= 8, 10, "polls of both")
            health = p.collector.health()
        for name in ("tid", "count"):
            for v in p.values(name):  # whatever was stored is what the device holds, at the right point
                assert {k: v[k] for k in v} == {k: {"t0": 10.0, "t1": 11.0, "t2": 12.0, "t3": 13.0}[k] for k in v}
        tid_errors = health["acme/tid"]["errors"]
        assert set(tid_errors) == {"bad_response"} and tid_errors["bad_response"] >= 2
        assert set(health["acme/count"]["errors"]) == {"bad_response"}
        assert p.collector.links[0].health()["errors"]["bad_response"] >= 4
        # one lost answer in three is a gap in the series, never a read error that raises and clears
        assert p.point_statuses("tid") == [] and p.point_statuses("count") == []

    asyncio.run(main())


def test_a_serial_server_with_four_units_and_one_connection_serves_them_all():
    async def main() -> None:
        async with FaultyDevice({u: unit() for u in (1, 2, 3, 4)}, max_connections=1) as server, \
                polling([device(f"det{u}", server.port, u) for u in (1, 2, 3, 4)],
                        links=[{"host": "127.0.0.1", "port": server.port, "gap": 0.005}]) as p:
            await until(lambda: all(len(p.values(f"det{u}")) >= 5 for u in (1, 2, 3, 4)), 10, "every unit read")
            refused, accepted = server.refused, server.accepted
        assert refused == 0 and accepted == 1  # one connection, shared in turn
        for u in (1, 2, 3, 4):
            assert all(v == {"t0": 10.0, "t1": 11.0, "t2": 12.0, "t3": 13.0} for v in p.values(f"det{u}"))
            assert p.device_statuses(f"det{u}") == [] and p.point_statuses(f"det{u}") == []
        assert len(p.collector.links) == 1

    asyncio.run(main())


def test_a_unit_answering_after_its_timeout_goes_offline_once_and_spares_its_neighbours():
    async def main() -> None:
        async with FaultyDevice({1: unit(delay=0.3), 2: unit()}) as server, \
                polling([device("late", server.port, 1, interval=0.5, timeout=0.2),
                         device("fine", server.port, 2, interval=0.5, timeout=0.2)]) as p:
            await until(lambda: p.device_statuses("late") == [False], 10, "the late unit offline")
            await asyncio.sleep(1.0)
            health = p.collector.health()
        assert p.values("late") == [] and p.device_statuses("late") == [False]  # once
        assert p.point_statuses("late") == []  # nothing of it reads: one fault (offline), not one per point
        assert set(health["acme/late"]["errors"]) == {"timeout"}
        assert len(p.values("fine")) >= 8 and p.device_statuses("fine") == [] and p.point_statuses("fine") == []

    asyncio.run(main())
