"""The Modbus collector against a real ModbusFarm on free ports: decoding, isolation, offline, overrun."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from collectors.modbus import ModbusCollector
from gateway.batch import ReadingBatch
from gateway.config import Point, parse_config
from gateway.ingest.intake import DeviceStatus, Intake
from gateway.registry import Registry
from simulators.devices import (
    coverage_points,
    gas_detector_points,
    minimal_config,
    modbus_device,
    status_word_points,
)
from simulators.modbus_farm import ModbusFarm
from simulators.scenarios import Scenario
from tests.helpers import until
from tests.peers import free_port

INT_RANGE = {"int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1),
             "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1)}


def served_value(p: Point, value: float) -> float:
    """What a point reads when the device holds engineering ``value``, computed without the codec."""
    raw = (value - p.offset) / p.scale
    dtype = p.modbus_dtype
    if dtype == "bool":
        raw = 1.0 if round(raw) else 0.0
    elif dtype == "float32":
        raw = struct.unpack(">f", struct.pack(">f", raw))[0]
    elif dtype in INT_RANGE:
        lo, hi = INT_RANGE[dtype]
        raw = float(min(max(round(raw), lo), hi))
    return raw * p.scale + p.offset


@dataclass
class Run:
    """A collector running against a farm, with everything it handed to the intake."""

    registry: Registry
    farm: ModbusFarm
    collector: ModbusCollector
    intake: Intake
    batches: list[ReadingBatch] = field(default_factory=list)
    statuses: list[tuple[float, DeviceStatus]] = field(default_factory=list)  # (farm time, status)

    def device_batches(self, device_id: str) -> list[ReadingBatch]:
        sensors = set(self.registry.device(*device_id.split("/")).points.values())
        return [b for b in self.batches if sensors & set(b.sensor.tolist())]

    def statuses_of(self, device_id: str) -> list[tuple[float, DeviceStatus]]:
        """The device's own statuses (offline, online)."""
        index = self.registry.device(*device_id.split("/")).index
        return [(t, s) for t, s in self.statuses if s.device_index == index and not s.points]

    def point_statuses(self, device_id: str) -> list[tuple[float, DeviceStatus]]:
        """Its points' read errors and recoveries."""
        index = self.registry.device(*device_id.split("/")).index
        return [(t, s) for t, s in self.statuses if s.device_index == index and s.points]


@contextlib.asynccontextmanager
async def running(cfg: dict, scenarios: dict | None = None, backoff: tuple[float, float] = (0.5, 10.0),
                  **farm_kw) -> AsyncIterator[Run]:
    registry = Registry(parse_config(cfg))
    intake = Intake()
    async with ModbusFarm(registry, scenarios, **farm_kw) as farm:
        run = Run(registry, farm, ModbusCollector(registry, intake, backoff=backoff), intake)

        async def drain_readings() -> None:
            while True:
                run.batches.append(await intake.readings.get())

        async def drain_statuses() -> None:
            while True:
                status = await intake.statuses.get()
                run.statuses.append((farm.elapsed(), status))

        tasks = [asyncio.create_task(c) for c in (run.collector.run(), drain_readings(), drain_statuses())]
        try:
            yield run
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t


def test_every_dtype_and_order_decoded_as_served():
    port = free_port()
    cfg = minimal_config([
        modbus_device("acme", "cov", port, coverage_points(), unit=2, interval=0.2, timeout=0.15),
        modbus_device("acme", "gas", port, gas_detector_points() + status_word_points(10), unit=1,
                      interval=0.2, timeout=0.15),
    ])
    scenario = Scenario("steady", seed=7)

    async def main() -> None:
        t0 = time.time_ns()
        async with running(cfg, default=scenario, time_base=lambda: 0.0) as run:
            await until(lambda: all(len(run.device_batches(d)) >= 2 for d in ("acme/cov", "acme/gas")), 10,
                        "two polls of each device")
            health = run.collector.health()
        assert len(run.collector.pollers["acme/cov"].requests) == 5  # holding x2, input, coil, discrete
        for device_id in ("acme/cov", "acme/gas"):
            info = run.registry.device(*device_id.split("/"))
            batch = run.device_batches(device_id)[0]
            assert sorted(batch.sensor.tolist()) == sorted(info.points.values())
            assert batch.sensor.dtype == np.int32 and batch.value.dtype == np.float64
            assert (batch.quality == 0).all()
            assert len(set(batch.ts.tolist())) == 1 and t0 <= batch.ts[0] <= time.time_ns()
            got = dict(zip(batch.sensor.tolist(), batch.value.tolist(), strict=True))
            for key, index in info.points.items():
                p = run.registry.sensors[index].point
                want = served_value(p, scenario.reading(p.kind, p.key, 0.0)[0])
                what = f"{device_id}/{key} ({p.modbus_dtype} {p.order})"
                assert got[index] == pytest.approx(want, abs=1e-6), what
            h = health[device_id]
            assert set(h) == {"online", "last_ok", "polls", "failures", "request_failures", "skipped_ticks",
                              "reconnects", "errors", "quarantined", "link", "last_error"}
            assert h["errors"] == {} and h["quarantined"] == [] and h["link"] == f"127.0.0.1:{port}"
            assert h["online"] is True and h["failures"] == 0 and h["polls"] >= 2 and h["last_error"] is None
            assert abs(h["last_ok"] - time.time() * 1000) < 10_000
        assert run.statuses == []

    asyncio.run(main())


def test_non_finite_values_are_dropped_and_counted():
    port = free_port()
    cfg = minimal_config([modbus_device("acme", "gas", port, gas_detector_points(), interval=0.2,
                                        timeout=0.15)])

    async def main() -> None:
        async with running(cfg, time_base=lambda: 0.0) as run:
            device = run.farm.device("acme/gas")
            device.update(0.0)  # with the time base standing still, the image is not re-encoded
            device.setValues(3, 0, [0x7FC0, 0x0000])  # ch4: float32 NaN
            await until(lambda: len(run.batches) >= 2, 10, "two polls")
        ch4 = run.registry.sensor_index("acme/gas/ch4")
        for batch in run.batches:
            assert ch4 not in batch.sensor.tolist() and len(batch) == 2
        assert run.intake.rejects.counts[("modbus", "non_finite")] >= 2

    asyncio.run(main())


def test_exception_response_from_one_device_leaves_the_other_flowing():
    port = free_port()
    cfg = minimal_config([
        modbus_device("acme", "good", port, gas_detector_points(), unit=1, interval=0.2, timeout=0.15),
        modbus_device("acme", "bad", port, gas_detector_points(), unit=2, interval=0.2, timeout=0.15),
    ])

    async def main() -> None:
        async with running(cfg) as run:
            run.farm.set_exception("acme/bad")  # every request answered with "illegal data address"
            bad = run.collector.pollers["acme/bad"]
            await until(lambda: bad.failures >= 4 and len(run.device_batches("acme/good")) >= 4, 10,
                        "failures of one device, readings of the other")
            assert run.device_batches("acme/bad") == []
            assert "Modbus exception 2 (illegal data address)" in bad.last_error and bad.online is None
            assert bad.health()["errors"] == {"exception_2": bad.request_failures}
            assert bad.health()["quarantined"] == []  # nothing of the device reads: it is polled whole
            good = run.collector.health()["acme/good"]
            assert good["failures"] == 0 and good["online"] is True and good["errors"] == {}
            run.farm.set_exception("acme/bad", None)
            await until(lambda: len(run.device_batches("acme/bad")) >= 1, 10, "readings after the fix")
            assert bad.online is True and bad.reconnects == 0  # an exception response keeps the connection
        assert run.statuses_of("acme/bad") == [] and run.statuses_of("acme/good") == []  # never offline
        # nothing of the device read: no read error per point (its fault is the device's, once offline)
        assert run.point_statuses("acme/bad") == [] and run.point_statuses("acme/good") == []

    asyncio.run(main())


def test_dropout_gives_one_offline_then_one_online():
    """Two dropouts: one device alone on its port (the farm closes it: connections refused), one
    sharing a port with a steady device (its requests go unanswered: timeouts)."""
    port_a, port_b = free_port(), free_port()
    cfg = minimal_config([
        modbus_device("acme", "alone", port_a, gas_detector_points(), interval=0.25, timeout=0.2),
        modbus_device("acme", "silent", port_b, gas_detector_points(), unit=1, interval=0.25, timeout=0.2),
        modbus_device("acme", "steady", port_b, gas_detector_points(), unit=2, interval=0.25, timeout=0.2),
    ])
    dropout = Scenario("dropout", start=0.5, hold=6.0)

    async def main() -> None:
        # a short backoff cap, so that the refused device is back soon after the window ends
        async with running(cfg, {"acme/alone": dropout, "acme/silent": dropout}, backoff=(0.2, 1.0)) as run:
            await until(lambda: len(run.statuses_of("acme/alone") + run.statuses_of("acme/silent")) >= 4, 15,
                        "offline and online of both devices")
            await asyncio.sleep(0.6)  # a few more polls: no further status may follow
            for device_id in ("acme/alone", "acme/silent"):
                (t_off, off), (t_on, on) = run.statuses_of(device_id)
                assert off.online is False and on.online is True, device_id
                assert off.reason
                assert 0.5 + 5.0 <= t_off < 6.5 <= t_on < 6.5 + 1.5, (device_id, t_off, t_on)
                after = [b for b in run.device_batches(device_id) if b.ts[0] > on.ts - 10**9]
                assert after, f"{device_id} has readings again"
            assert run.collector.pollers["acme/alone"].reconnects >= 1
            silent = run.collector.pollers["acme/silent"]
            assert "no answer within 0.2 s" in silent.last_error and set(silent.health()["errors"]) == {"timeout"}
            steady = run.collector.health()["acme/steady"]
            assert steady["failures"] == 0 and run.statuses_of("acme/steady") == []
            assert len(run.device_batches("acme/steady")) >= 0.8 * run.farm.elapsed() / 0.25

    asyncio.run(main())


def test_poll_overrunning_its_interval_skips_ticks():
    port, other = free_port(), free_port()  # two endpoints: on one, the slow unit would hold up the other
    three_tables = [
        {"key": "t", "kind": "temperature", "register": "holding", "address": 0, "dtype": "float32"},
        {"key": "i", "kind": "temperature", "register": "input", "address": 0, "dtype": "int16"},
        {"key": "c", "kind": "status", "register": "coil", "address": 0},
    ]
    cfg = minimal_config([
        modbus_device("acme", "slow", port, three_tables, unit=1, interval=0.3, timeout=0.25),
        modbus_device("acme", "quick", other, three_tables, unit=2, interval=0.3, timeout=0.25),
    ])

    async def main() -> None:
        async with running(cfg) as run:
            run.farm.set_delay("acme/slow", 0.15)  # 3 requests x 0.15 s > the 0.3 s interval
            slow = run.collector.pollers["acme/slow"]
            await until(lambda: slow.skipped_ticks >= 3, 10, "skipped ticks")
            health = run.collector.health()
        assert health["acme/slow"]["failures"] == 0 and health["acme/slow"]["polls"] >= 3
        assert health["acme/quick"]["skipped_ticks"] == 0
        assert len(run.device_batches("acme/slow")) >= 2

    asyncio.run(main())
