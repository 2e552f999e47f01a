"""``gridgate bench modbus``: the Modbus TCP collector polling a simulated device farm at full scale.

A :class:`ModbusFarm` in a separate (spawned) process serves D devices of P holding-register points
each (a float32/uint16/int16 mix that the codec coalesces into one read per poll), by default one
listening port per device (``--endpoints N`` spreads them over N ports as unit ids instead: N
serial device servers, the devices behind one port sharing its one connection, polled in turn).
The :class:`ModbusCollector` runs in this process with an intake drained by a task that counts
readings. After a warm-up, one window of ``--seconds`` is measured: readings/s, polls against the
ticks expected, skipped ticks, failures, event-loop lag, and the CPU seconds and cores of the
gateway (``time.process_time``) and of the farm process (``/proc``). Both processes raise their
RLIMIT_NOFILE soft limit to the hard limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import multiprocessing as mp
import os
import resource
import socket
import time
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from gateway.config import parse_config
from gateway.ingest.intake import Intake
from gateway.registry import Registry
from gateway.root.bench.ingest import _proc_cpu
from gateway.root.progress import Progress
from simulators.devices import PointDict, minimal_config, modbus_device

if TYPE_CHECKING:
    from collectors.modbus import ModbusCollector

PORT_BASE = 20000  # below Linux's ephemeral range, so the gateway's own connections never collide
MAX_UNITS = 247
CORE_BUDGET = 0.5


def add_modbus_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=int, default=1000, help="Modbus devices (default 1000)")
    p.add_argument("--points", type=int, default=30, help="holding-register points per device (default 30)")
    p.add_argument("--interval", type=float, default=1.0, help="poll interval in seconds (default 1.0)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured window (default 20)")
    p.add_argument("--warmup", type=float, default=4.0, help="seconds before the window (default 4)")
    p.add_argument("--endpoints", type=int,
                   help="listening ports for the farm, the devices behind one sharing its connection as unit ids"
                        " (default: one port per device)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def bench_points(n: int) -> list[PointDict]:
    """``n`` contiguous holding-register points cycling float32 CH4, uint16 H2S and int16 O2."""
    kinds = (
        {"kind": "combustible_gas", "unit": "%LEL", "dtype": "float32", "order": "ABCD"},
        {"kind": "toxic_gas", "gas": "h2s", "unit": "ppm", "dtype": "uint16", "scale": 0.1},
        {"kind": "oxygen", "unit": "%VOL", "dtype": "int16", "scale": 0.01},
    )
    points, address = [], 0
    for i in range(n):
        spec = kinds[i % 3]
        points.append({"key": f"p{i}", "register": "holding", "address": address, **spec})
        address += 2 if spec["dtype"] == "float32" else 1
    return points


def bench_config(devices: int, points: int, interval: float, ports: list[int]) -> dict[str, Any]:
    """Devices ``d0..``: device i on ``ports[i % len(ports)]``, unit ``i // len(ports) + 1``."""
    pts = bench_points(points)
    timeout = min(0.5, interval / 2)
    devs = [modbus_device("bench-ent", f"d{i}", ports[i % len(ports)], pts, unit=i // len(ports) + 1,
                          interval=interval, timeout=timeout) for i in range(devices)]
    return minimal_config(devs)


def reserve_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports from PORT_BASE up (held together while probing, then freed)."""
    held: list[socket.socket] = []
    try:
        port = PORT_BASE
        while len(held) < n:
            if port >= 32768:
                raise OSError(f"fewer than {n} free ports between {PORT_BASE} and 32767")
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
                held.append(s)
            except OSError:
                s.close()
            port += 1
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def farm_main(cfg_dict: dict[str, Any], stop: Any, conn: Connection, max_seconds: float) -> None:
    """Entry of the farm process: serve every device until ``stop`` is set, the parent dies, or
    ``max_seconds`` pass. Sends ``("ready", n_endpoints)`` or ``("error", text)`` on ``conn``."""
    from simulators.modbus_farm import ModbusFarm

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    raise_nofile_limit()
    parent = os.getppid()

    async def serve() -> None:
        async with ModbusFarm(Registry(parse_config(cfg_dict))) as farm:
            conn.send(("ready", len(farm.endpoints)))
            deadline = time.monotonic() + max_seconds
            while not stop.is_set() and os.getppid() == parent and time.monotonic() < deadline:
                await asyncio.sleep(0.2)

    try:
        asyncio.run(serve())
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _totals(collector: ModbusCollector) -> tuple[dict[str, int], dict[str, int]]:
    polls = {d: p.polls for d, p in collector.pollers.items()}
    sums = {k: sum(getattr(p, k) for p in collector.pollers.values())
            for k in ("polls", "failures", "skipped_ticks", "reconnects")}
    return polls, sums


async def _measure(args: argparse.Namespace, cfg_dict: dict[str, Any], farm_pid: int,
                   progress: Progress) -> dict[str, Any]:
    from collectors.modbus import ModbusCollector

    registry = Registry(parse_config(cfg_dict))
    intake = Intake()
    collector = ModbusCollector(registry, intake)
    gc.collect()
    gc.freeze()  # as the gateway's runtime does after start-up
    loop = asyncio.get_running_loop()
    received = [0]
    lag = [0.0]

    async def drain() -> None:
        while True:
            batch = await intake.readings.get()
            received[0] += len(batch)

    async def drain_statuses() -> None:
        while True:
            await intake.statuses.get()

    async def watch_lag() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(0.05)
            lag[0] = max(lag[0], loop.time() - t - 0.05)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(c) for c in (collector.run(), drain(), drain_statuses(), watch_lag())]
        try:
            progress.phase("bench modbus: warm-up", args.warmup)
            await progress.asleep(args.warmup, lambda: f"{received[0]:,} readings")
            polls0, sums0 = _totals(collector)
            n0, lag[0] = received[0], 0.0
            cpu0, farm0, t0 = time.process_time(), _proc_cpu(farm_pid), time.perf_counter()
            progress.phase("bench modbus: measured window", args.seconds)
            await progress.asleep(args.seconds, lambda: f"{received[0] - n0:,} readings")
            cpu, farm_cpu = time.process_time() - cpu0, _proc_cpu(farm_pid) - farm0
            wall = time.perf_counter() - t0
            polls1, sums1 = _totals(collector)
            n = received[0] - n0
            online = sum(1 for p in collector.pollers.values() if p.online)
        finally:
            for t in tasks:
                t.cancel()
    deltas = [polls1[d] - polls0[d] for d in polls1]
    d = {k: sums1[k] - sums0[k] for k in sums1}
    ticks = wall / args.interval
    every_tick = (d["skipped_ticks"] == 0 and d["failures"] == 0
                  and min(deltas) >= math.floor(ticks + 1e-6) - 1 and online == len(deltas))
    return {
        "devices": args.devices, "points": args.points, "interval_s": args.interval,
        "readings_per_poll": args.points, "requests_per_poll": len(next(iter(collector.pollers.values())).requests),
        "seconds": round(wall, 3),
        "readings": n, "readings_per_s": round(n / wall),
        "readings_per_s_expected": round(args.devices * args.points / args.interval),
        "polls": d["polls"], "polls_expected": round(args.devices * ticks),
        "polls_per_device_min": min(deltas), "polls_per_device_max": max(deltas),
        "skipped_ticks": d["skipped_ticks"], "failures": d["failures"], "reconnects": d["reconnects"],
        "online": online, "every_device_every_tick": every_tick,
        "loop_lag_max_ms": round(lag[0] * 1000, 1),
        "cpu_s_gateway": round(cpu, 2), "gateway_cores": round(cpu / wall, 3),
        "cpu_s_farm": round(farm_cpu, 2), "farm_cores": round(farm_cpu / wall, 3),
        "gateway_us_per_poll": round(cpu / max(d["polls"], 1) * 1e6, 1),
        "within_budget": every_tick and cpu / wall <= CORE_BUDGET,
        "rejected": intake.rejects.snapshot(),
    }


def run_modbus(args: argparse.Namespace) -> int:
    if args.devices < 1 or args.points < 1 or args.interval <= 0 or args.seconds <= 0:
        raise SystemExit("--devices, --points, --interval and --seconds must be positive")
    endpoints = args.endpoints or args.devices
    if not 1 <= endpoints <= args.devices or math.ceil(args.devices / endpoints) > MAX_UNITS:
        raise SystemExit(f"--endpoints must be 1..{args.devices} with at most {MAX_UNITS} devices per port")
    limit = raise_nofile_limit()
    if limit < args.devices + endpoints + 256:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {limit} is too low for {args.devices} connections; "
                         f"raise it (ulimit -Hn) or use --endpoints")
    cfg_dict = bench_config(args.devices, args.points, args.interval, reserve_ports(endpoints))
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    farm = ctx.Process(target=farm_main, name="gridgate-bench-farm", daemon=True,
                       args=(cfg_dict, stop, child_conn, args.warmup + args.seconds + 120))
    farm.start()
    try:
        deadline = time.monotonic() + 120
        while not parent_conn.poll(0.2):
            if not farm.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the farm process did not start (exit code {farm.exitcode})")
        status, info = parent_conn.recv()
        if status != "ready":
            raise RuntimeError(f"the farm process failed: {info}")
        assert farm.pid is not None
        with Progress("bench modbus") as progress:
            result = asyncio.run(_measure(args, cfg_dict, farm.pid, progress))
        result["endpoints"] = info
    finally:
        stop.set()
        farm.join(10)
        if farm.is_alive():
            farm.terminate()
            farm.join(5)
        if farm.is_alive():
            farm.kill()
            farm.join()
    if not args.json:
        r = result
        print(f"bench modbus: {r['devices']} devices x {r['points']} points every {r['interval_s']:g} s, "
              f"{r['endpoints']} farm ports, {r['requests_per_poll']} request(s) per poll, "
              f"window {r['seconds']} s")
        print(f"  readings   {r['readings_per_s']:,}/s (expected {r['readings_per_s_expected']:,}/s)")
        print(f"  polls      {r['polls']} of {r['polls_expected']} expected, per device "
              f"{r['polls_per_device_min']}..{r['polls_per_device_max']}; skipped ticks "
              f"{r['skipped_ticks']}, failures {r['failures']}, online {r['online']}/{r['devices']}")
        print(f"  every tick {'yes' if r['every_device_every_tick'] else 'NO'}; loop lag max "
              f"{r['loop_lag_max_ms']} ms")
        print(f"  CPU        gateway {r['cpu_s_gateway']} s ({r['gateway_cores']} cores, "
              f"{r['gateway_us_per_poll']} µs/poll; budget {CORE_BUDGET}), farm {r['cpu_s_farm']} s "
              f"({r['farm_cores']} cores)")
    print(json.dumps(result, ensure_ascii=False))
    with contextlib.suppress(Exception):
        parent_conn.close()
    return 0 if result["every_device_every_tick"] else 1
