"""``gridgate bench ingest``: MQTT telemetry through a real Mosquitto into a running gateway.

A publisher in a separate process sends M messages of K readings each (QoS 1) for one simulated
device; the gateway in this process receives, decodes, evaluates (detector and alarm book) and
stores them in SQLite. Reported: readings/s evaluated and stored (from the first publish to the
last reading stored), whether every reading arrived, and the CPU seconds each process used.
Figures are medians only if you run it several times; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.config import parse_config
from gateway.root.progress import Progress
from gateway.root.runtime import Gateway
from simulators.brokers import free_port, start_mosquitto, stop_process


def add_ingest_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--messages", type=int, default=4000, help="messages to publish (default 4000)")
    p.add_argument("--readings", type=int, default=100, help="readings per message (default 100)")
    p.add_argument("--qos", type=int, choices=(0, 1), default=1, help="MQTT QoS of the telemetry (default 1)")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    p.add_argument("--no-raw", action="store_true",
                   help="skip the raw ceiling (a plain paho subscriber through the same broker)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_config(url: str, points: int, data_dir: str) -> dict[str, Any]:
    pts = [{"key": f"t{i}", "kind": "temperature", "unit": "°C", "high": 80.0, "high_high": 95.0}
           for i in range(points)]
    return {
        "gateway": {"id": "bench", "data_dir": data_dir},
        # The publisher's timestamps step 1 ms a message, ahead of the clock at thousands of messages a
        # second: a long run would otherwise meet the ts_future rejection (5 min of skew by default).
        "mqtt": {"url": url, "client_id": "gridgate-bench", "max_clock_skew": 86_400},
        "departments": [{"id": "yjj", "name": "应急管理局"}],
        "officers": [{"id": "o1", "name": "o1"}],
        "grids": [{"id": "43090300100201", "name": "g", "area": "430903001002", "officers": ["o1"]}],
        "enterprises": [{"id": "bench-ent", "name": "bench", "grid": "43090300100201",
                         "lead_department": "yjj"}],
        "devices": [{"enterprise": "bench-ent", "id": "dev", "protocol": "mqtt", "points": pts}],
    }


async def _ingest(args: argparse.Namespace, url: str, data_dir: str, broker_pid: int,
                  progress: Progress) -> dict[str, Any]:
    from gateway.root.bench.ingest_raw import publish_in_subprocess

    cfg = parse_config(bench_config(url, args.readings, data_dir))
    gw = Gateway(cfg, data_dir=data_dir)
    runner = asyncio.create_task(gw.run())
    try:
        await gw.started.wait()
        collector = gw.collectors["mqtt"]
        deadline = time.monotonic() + 20
        while not collector.health().get("subscribed"):
            if time.monotonic() > deadline:
                raise TimeoutError("the gateway did not connect to the broker")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let the subscription settle
        expected = args.messages * args.readings
        cpu0, broker0, t0 = time.process_time(), _proc_cpu(broker_pid), time.perf_counter()
        pub = asyncio.get_running_loop().run_in_executor(
            None, publish_in_subprocess, url, cfg.mqtt.prefix, "bench-ent", "dev",
            [f"t{i}" for i in range(args.readings)], args.messages, args.readings, args.qos)
        deadline = time.monotonic() + args.timeout
        behind: list[int] = []  # outbox batches committed but not yet evaluated, sampled every 10 ms
        progress.phase("bench ingest: stored", expected, "readings")
        while (gw.stored < expected or gw.evaluated < expected) and time.monotonic() < deadline:
            progress.show(gw.stored, f"evaluated {gw.evaluated:,}")
            behind.append(gw.storage.outbox.last_seq - gw.evaluation.cursor)
            await asyncio.sleep(0.01)
        wall = time.perf_counter() - t0
        cpu, broker_cpu = time.process_time() - cpu0, _proc_cpu(broker_pid) - broker0
        pub_stats = await pub
        stored_rows = gw.store.count()
        return {
            "messages": args.messages, "readings_per_message": args.readings, "qos": args.qos,
            "readings_expected": expected, "readings_evaluated": gw.evaluated,
            "readings_stored": gw.stored, "rows_in_sqlite": stored_rows,
            "lost": expected - stored_rows,
            "seconds": round(wall, 3),
            "readings_per_s_stored": round(gw.stored / wall),
            "readings_per_s_evaluated": round(gw.evaluated / wall),
            "cpu_s_gateway": round(cpu, 2), "cpu_s_broker": round(broker_cpu, 2),
            "cpu_s_publisher": pub_stats.get("cpu_s"),
            "gateway_cores": round(cpu / wall, 2),
            "publisher": pub_stats,
            "rejected": gw.intake.rejects.snapshot(),
            "evaluation_behind_batches": {"max": max(behind, default=0),
                                          "mean": round(sum(behind) / max(len(behind), 1), 2)},
        }
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def run_ingest(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="gridgate-bench-") as tmp:
        folder = Path(tmp) / "mosquitto"
        folder.mkdir()
        port = free_port()
        broker = start_mosquitto(folder, port)
        url = f"mqtt://127.0.0.1:{port}"
        try:
            raw = None
            with Progress("bench ingest") as progress:
                if not args.no_raw:
                    from gateway.root.bench.ingest_raw import raw_ceiling

                    progress.phase("bench ingest: the raw paho ceiling")
                    progress.show(None, f"{args.messages:,} messages through the broker, counted only")
                    raw = raw_ceiling(url, args.messages, args.readings, args.qos)
                result = asyncio.run(_ingest(args, url, str(Path(tmp) / "data"), broker.pid, progress))
        finally:
            stop_process(broker)
    if raw is not None:
        result["raw_ceiling_readings_per_s"] = round(raw["readings_per_s"])
        result["raw_ceiling_received"] = raw["received"]
        result["ratio_to_raw"] = round(result["readings_per_s_stored"] / raw["readings_per_s"], 2)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"bench ingest: {result['messages']} messages x {result['readings_per_message']} readings, "
              f"QoS {result['qos']}, Mosquitto on loopback")
        print(f"  stored     {result['readings_stored']:>10} readings  "
              f"({result['readings_per_s_stored']:,} readings/s), lost {result['lost']}")
        print(f"  evaluated  {result['readings_evaluated']:>10} readings  "
              f"({result['readings_per_s_evaluated']:,} readings/s)")
        if raw is not None:
            print(f"  raw paho   {result['raw_ceiling_readings_per_s']:,} readings/s through the same broker "
                  f"(counting only); gateway/raw = {result['ratio_to_raw']}")
        print(f"  CPU        gateway {result['cpu_s_gateway']} s ({result['gateway_cores']} cores), "
              f"broker {result['cpu_s_broker']} s, publisher {result['cpu_s_publisher']} s, "
              f"wall {result['seconds']} s")
        print(json.dumps(result))
    return 0 if result["lost"] == 0 else 1
