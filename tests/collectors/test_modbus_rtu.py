"""Modbus RTU as the field has it: detectors on an RS-485 line (a real serial line here: a pty pair
joined by socat, a pymodbus RTU server from the farm on its far end), and a serial device server
passing RTU frames over TCP. Several unit ids share the line, polled in turn; a bad CRC costs only
the answer it spoiled."""

from __future__ import annotations

import asyncio
from typing import Any

from collectors.modbus import ModbusCollector
from gateway.batch import ReadingBatch
from gateway.config import parse_config
from gateway.ingest.intake import DeviceStatus, Intake
from gateway.registry import Registry
from simulators.devices import gas_detector_points, minimal_config
from simulators.modbus_farm import ModbusFarm
from simulators.scenarios import Scenario
from tests.helpers import until
from tests.peers import SerialLine, free_port


def rtu_device(name: str, port: str, unit: int, **kw: Any) -> dict[str, Any]:
    # 8N1: a pty refuses parity settings (EINVAL) that a real RS-485 port takes
    return {"enterprise": "acme", "id": name, "protocol": "modbus", "transport": "rtu", "port": port, "unit": unit,
            "baudrate": 19200, "parity": "N", "interval": 0.25, "timeout": 0.2, "points": gas_detector_points(), **kw}


async def poll(registry: Registry, farm: ModbusFarm, seconds: float,
               want: dict[str, int]) -> tuple[dict[str, list[dict[str, float]]], list[DeviceStatus], ModbusCollector]:
    intake = Intake()
    collector = ModbusCollector(registry, intake, backoff=(0.1, 0.5))
    got: dict[str, list[dict[str, float]]] = {name: [] for name in want}
    statuses: list[DeviceStatus] = []
    keys = {i: (d.id, k) for d in registry.devices_of("modbus") for k, i in d.points.items()}

    async def drain() -> None:
        while True:
            b: ReadingBatch = await intake.readings.get()
            per: dict[str, dict[str, float]] = {}
            for s, v in zip(b.sensor.tolist(), b.value.tolist(), strict=True):
                dev, key = keys[s]
                per.setdefault(dev, {})[key] = v
            for dev, values in per.items():
                got[dev].append(values)

    async def status() -> None:
        while True:
            statuses.append(await intake.statuses.get())

    tasks = [asyncio.create_task(c) for c in (collector.run(), drain(), status())]
    try:
        await until(lambda: all(len(got[n]) >= k for n, k in want.items()), seconds, f"polls of {want}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return got, statuses, collector


def test_two_detectors_on_one_serial_line_are_polled_in_turn(serial_line: SerialLine):
    cfg = minimal_config([rtu_device("det1", serial_line.a, 1), rtu_device("det2", serial_line.a, 2)])
    registry = Registry(parse_config(cfg))
    steady = Scenario("steady", seed=3)

    async def main() -> None:
        async with ModbusFarm(registry, default=steady, time_base=lambda: 0.0,
                              serial_peers={serial_line.a: serial_line.b}) as farm:
            got, statuses, collector = await poll(registry, farm, 10, {"det1": 5, "det2": 5})
        assert len(collector.links) == 1 and str(collector.links[0].endpoint) == f"rtu:{serial_line.a}"
        for name in ("det1", "det2"):
            points = {p["key"] for p in gas_detector_points()}
            assert all(set(v) == points for v in got[name])  # every point, every poll
            ch4 = got[name][0]["ch4"]
            assert all(v["ch4"] == ch4 for v in got[name])  # the steady value, decoded alike each time
        assert statuses == []
        h = collector.health()
        assert h["acme/det1"]["errors"] == {} and h["acme/det2"]["errors"] == {}

    asyncio.run(main())


def test_a_crc_error_costs_only_the_answer_it_spoiled(serial_line: SerialLine):
    cfg = minimal_config([rtu_device("det1", serial_line.a, 1), rtu_device("det2", serial_line.a, 2)])
    registry = Registry(parse_config(cfg))

    async def main() -> None:
        async with ModbusFarm(registry, serial_peers={serial_line.a: serial_line.b}) as farm:
            farm.set_crc_error("acme/det1", every=2)  # every other answer of unit 1 is spoiled on the line
            got, statuses, collector = await poll(registry, farm, 15, {"det1": 5, "det2": 10})
        h = collector.health()
        assert h["acme/det1"]["errors"].get("timeout", 0) >= 3  # the frame is dropped: no answer in time
        assert h["acme/det1"]["online"] is True and h["acme/det2"]["errors"] == {}
        assert statuses == []  # neither offline nor a read error: the device reads every other tick

    asyncio.run(main())


def test_rtu_frames_over_tcp_from_a_serial_device_server():
    port = free_port()
    devices = [{**rtu_device(f"det{u}", "", u), "transport": "rtu-over-tcp", "host": "127.0.0.1", "port": port}
               for u in (1, 2, 3)]
    for d in devices:
        for key in ("baudrate", "parity"):
            d.pop(key)
    registry = Registry(parse_config(minimal_config(devices)))

    async def main() -> None:
        async with ModbusFarm(registry, time_base=lambda: 0.0):
            got, statuses, collector = await poll(registry, None, 10, {"det1": 4, "det2": 4, "det3": 4})  # type: ignore[arg-type]
        assert len(collector.links) == 1 and statuses == []
        assert all(len(got[f"det{u}"][0]) == len(gas_detector_points()) for u in (1, 2, 3))

    asyncio.run(main())
