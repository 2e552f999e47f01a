"""``gridgate bench faults``: the Modbus collector against each way a field device misbehaves.

For each fault, a device written from the specification (:mod:`simulators.faulty_modbus`, not on
pymodbus) runs in a separate (spawned) process beside a well-behaved neighbour on another port; the
collector polls both from this process for ``--seconds`` (interval 0.5 s, timeout 0.2 s, four
points in two blocks). Reported per fault: the requests the device saw, the polls, the readings
stored per point, the read errors and offline statuses raised, and what the neighbour stored
against what it should have. The last line is the whole table as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from gateway.config import parse_config
from gateway.ingest.intake import DeviceStatus, Intake
from gateway.registry import Registry
from gateway.root.progress import Progress
from simulators.brokers import free_port
from simulators.devices import minimal_config, modbus_device

POINTS = [{"key": f"t{i}", "kind": "temperature", "register": "holding", "address": a, "dtype": "int16"}
          for i, a in enumerate((0, 1, 100, 101))]
VALUES = {0: 10, 1: 11, 100: 12, 101: 13}
INTERVAL, TIMEOUT = 0.5, 0.2


@dataclass(frozen=True)
class Fault:
    name: str
    units: dict[int, dict[str, Any]]  # unit id -> faulty_modbus.Unit keyword arguments
    device: dict[str, Any]  # FaultyDevice keyword arguments


FAULTS = [
    Fault("exception 2 on one block (a card missing)", {1: {"exception_blocks": [(100, 102, 2)]}}, {}),
    Fault("exception 6 (busy) every other request", {1: {"busy_every": 2}}, {}),
    Fault("closes the connection after each answer", {1: {}}, {"close_after_answer": True}),
    Fault("answers after its timeout", {1: {"delay": 0.3}}, {}),
    Fault("wrong transaction id every 3rd answer", {1: {"wrong_tid_every": 3}}, {}),
    Fault("wrong byte count every 3rd answer", {1: {"wrong_count_every": 3}}, {}),
    Fault("4 unit ids behind one connection slot", {u: {} for u in (1, 2, 3, 4)}, {"max_connections": 1}),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=20.0, help="polling time per fault (default 20)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")


def _serve(fault: Fault, ports: tuple[int, int], conn: Connection) -> None:
    """The faulty device and its neighbour, until told to stop; then the requests each unit saw."""
    from simulators.faulty_modbus import FaultyDevice, Unit

    async def main() -> dict[int, int]:
        units = {u: Unit(registers=dict(VALUES), **kw) for u, kw in fault.units.items()}
        async with FaultyDevice(units, port=ports[0], **fault.device), \
                FaultyDevice({1: Unit(registers=dict(VALUES))}, port=ports[1]):
            conn.send("ready")
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        return {u: unit.requests for u, unit in units.items()}

    conn.send(asyncio.run(main()))


async def _poll(fault: Fault, ports: tuple[int, int], seconds: float, progress: Progress) -> dict[str, Any]:
    from collectors.modbus import ModbusCollector

    devices = [modbus_device("acme", f"unit{u}", ports[0], POINTS, unit=u, interval=INTERVAL, timeout=TIMEOUT)
               for u in fault.units] + [modbus_device("acme", "neighbour", ports[1], POINTS, interval=INTERVAL,
                                                      timeout=TIMEOUT)]
    registry = Registry(parse_config(minimal_config(devices)))
    intake = Intake()
    collector = ModbusCollector(registry, intake, backoff=(0.1, 0.5))
    stored: dict[int, int] = {}
    statuses: list[DeviceStatus] = []

    async def drain() -> None:
        while True:
            batch = await intake.readings.get()
            for s in batch.sensor.tolist():
                stored[s] = stored.get(s, 0) + 1

    async def follow() -> None:
        while True:
            statuses.append(await intake.statuses.get())

    tasks = [asyncio.create_task(c) for c in (collector.run(), drain(), follow())]
    progress.phase(progress.what, seconds)  # the time from here: the devices took their own to start
    await progress.asleep(seconds, lambda: f"{sum(stored.values()):,} readings stored")
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    out: dict[str, Any] = {}
    for info in registry.devices_of("modbus"):
        name = info.id
        health = collector.health()[info.device_id]
        out[name] = {
            "polls": health["polls"],
            "stored": {k: stored.get(i, 0) for k, i in sorted(info.points.items())},
            "read_errors": sum(len(s.points) for s in statuses if s.device_index == info.index and s.points
                               and not s.online),
            "offline": sum(1 for s in statuses if s.device_index == info.index and not s.points and not s.online),
            "errors": health["errors"],
        }
    return out


def run_fault(fault: Fault, seconds: float, progress: Progress | None = None) -> dict[str, Any]:
    ports = (free_port(), free_port())
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(fault, ports, there), daemon=True)
    proc.start()
    try:
        if not here.poll(30) or here.recv() != "ready":
            raise RuntimeError("the faulty device did not start")
        result = asyncio.run(_poll(fault, ports, seconds, progress or Progress.silent()))
        here.send("stop")
        requests = here.recv() if here.poll(10) else {}
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    return {"fault": fault.name, "requests_seen": requests, "devices": result}


def run(args: argparse.Namespace) -> int:
    table = []
    with Progress("bench faults") as progress:
        for i, fault in enumerate(FAULTS):
            progress.phase(f"bench faults {i + 1}/{len(FAULTS)}: {fault.name}", args.seconds)
            table.append(run_fault(fault, args.seconds, progress))
            progress.clear()
            if not args.json:
                print_fault(table[-1], args.seconds)
    print(json.dumps({"seconds": args.seconds, "interval": INTERVAL, "timeout": TIMEOUT, "faults": table}))
    return 0


def print_fault(r: dict[str, Any], seconds: float) -> None:
    """One line per device of a fault's result."""
    expected = seconds / INTERVAL
    for name, d in r["devices"].items():
        print(f"{r['fault']:45s} {name:9s} polls {d['polls']:3d}/{expected:.0f}  stored {d['stored']}  "
              f"read_errors {d['read_errors']}  offline {d['offline']}  errors {d['errors']}", flush=True)
