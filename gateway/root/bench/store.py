"""``gridgate bench store``: readings/s into SQLite and InfluxDB through the outbox, next to raw ceilings.

All in one run on one machine, each over the same pre-generated readings (``--sensors`` series,
unique timestamps): the raw SQLite ceiling (a bare ``executemany`` into the same table layout), the
raw InfluxDB ceiling (a bare ``/write`` of pre-built 5000-line bodies to a real ``influxd`` 1.x on
loopback), then the outbox path: batches accepted into the outbox (group commit) and drained by the
sinks, first with SQLite alone, then with SQLite and InfluxDB together (as ``backend = "influxdb"``
runs). Each figure is from the first accept to the last reading its sink confirmed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from gateway.batch import ReadingBatch
from gateway.config import parse_config
from gateway.registry import Registry
from gateway.root.progress import Progress
from gateway.storage.chunk_tables import LEGACY_SCHEMA
from gateway.storage.influx import line_protocol, series_prefix
from gateway.storage.service import Storage
from simulators.brokers import free_port, start_influxd, stop_process

S = 1_000_000_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--readings", type=int, default=1_000_000, help="readings per path (default 1,000,000)")
    p.add_argument("--batch", type=int, default=5000, help="readings per accepted batch (default 5000)")
    p.add_argument("--sensors", type=int, default=100, help="series (default 100)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")


def config(n_sensors: int, data_dir: str, influx_url: str | None) -> dict[str, Any]:
    pts = [{"key": f"t{i}", "kind": "temperature", "unit": "°C"} for i in range(n_sensors)]
    storage: dict[str, Any] = {"backend": "sqlite", "outbox_max_mb": 4096}
    if influx_url:
        storage = {**storage, "backend": "influxdb", "influxdb": {"url": influx_url, "api": "v1", "bucket": "bench"}}
    return {
        "gateway": {"id": "bench-store", "data_dir": data_dir},
        "storage": storage,
        "departments": [{"id": "yjj", "name": "应急管理局"}],
        "officers": [{"id": "o1", "name": "o1"}],
        "grids": [{"id": "43090300100201", "name": "g", "area": "430903001002", "officers": ["o1"]}],
        "enterprises": [{"id": "bench-ent", "name": "bench", "grid": "43090300100201", "lead_department": "yjj"}],
        "devices": [{"enterprise": "bench-ent", "id": "dev", "protocol": "mqtt", "points": pts}],
    }


def make_batches(total: int, size: int, n_sensors: int, t0: int) -> list[ReadingBatch]:
    out = []
    for start in range(0, total, size):
        i = np.arange(start, min(start + size, total), dtype=np.int64)
        out.append(ReadingBatch.of(i % n_sensors, t0 + (i // n_sensors) * 1_000_000, 20.0 + (i % 977) * 0.01))
    return out


def raw_sqlite(path: Path, batches: list[ReadingBatch], progress: Progress | None = None) -> float:
    progress = progress or Progress.silent()
    con = sqlite3.connect(str(path), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(LEGACY_SCHEMA)
    rows = [list(zip(b.sensor.tolist(), b.ts.tolist(), b.value.tolist(), b.quality.tolist(), strict=True))
            for b in batches]
    progress.phase("bench store: raw SQLite", len(rows), "batches")
    t = time.perf_counter()
    for i, r in enumerate(rows):
        progress.show(i)
        con.execute("BEGIN")
        con.executemany("INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?)", r)
        con.execute("COMMIT")
    dt = time.perf_counter() - t
    con.close()
    return sum(len(b) for b in batches) / dt


def raw_influx(url: str, db: str, bodies: list[bytes], n: int, progress: Progress | None = None) -> float:
    progress = progress or Progress.silent()
    progress.phase("bench store: raw InfluxDB /write", len(bodies), "requests")
    with httpx.Client(timeout=60) as http:
        t = time.perf_counter()
        for i, body in enumerate(bodies):
            progress.show(i)
            r = http.post(f"{url}/write", params={"db": db, "precision": "ns"}, content=body)
            r.raise_for_status()
        return n / (time.perf_counter() - t)


async def through_outbox(cfg_dict: dict[str, Any], batches: list[ReadingBatch],
                         progress: Progress | None = None) -> dict[str, float]:
    progress = progress or Progress.silent()
    cfg = parse_config(cfg_dict)
    reg = Registry(cfg)
    Path(cfg.gateway.data_dir).mkdir(parents=True, exist_ok=True)
    storage = Storage(cfg, reg, Path(cfg.gateway.data_dir), lambda drop: None, lambda: None)
    total = sum(len(b) for b in batches)
    runner = asyncio.create_task(storage.run())
    done: dict[str, float] = {}
    progress.phase(f"bench store: the outbox to {' and '.join(storage.drainers)}", total, "readings")
    t = time.perf_counter()
    try:
        for i, b in enumerate(batches):
            progress.show(i * len(b), "accepted")
            await storage.accept(b)
        accepted = time.perf_counter() - t
        while len(done) < len(storage.drainers):
            progress.show(min(d.written for d in storage.drainers.values()), "stored")
            for name, d in storage.drainers.items():
                if name not in done and d.written >= total:
                    done[name] = time.perf_counter() - t
                if d.state == "failing":
                    raise RuntimeError(f"sink {name} failing: {d.last_error}")
            await asyncio.sleep(0.005)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await storage.close()
    return {"accepted_per_s": total / accepted, **{f"{k}_per_s": total / v for k, v in done.items()}}


def run(args: argparse.Namespace) -> int:
    t0 = 1_767_225_600 * S
    batches = make_batches(args.readings, args.batch, args.sensors, t0)
    n = args.readings
    with tempfile.TemporaryDirectory(prefix="gridgate-bench-store-") as tmp, Progress("bench store") as progress:
        root = Path(tmp)
        http_port, rpc_port = free_port(), free_port()
        influxd = start_influxd(root / "influxd", http_port, rpc_port)
        url = f"http://127.0.0.1:{http_port}"
        try:
            for db in ("raw", "bench"):
                httpx.post(f"{url}/query", params={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
            reg = Registry(parse_config(config(args.sensors, str(root / "x"), None)))
            prefixes = [series_prefix(s.kind, {"enterprise": s.enterprise, "device": s.device, "point": s.key,
                                               "grid": s.grid}) for s in reg.sensors]
            built = time.perf_counter()
            lines = [ln for b in batches for ln in line_protocol(prefixes, b)]
            build_rate = n / (time.perf_counter() - built)
            bodies = ["\n".join(lines[i:i + 5000]).encode() for i in range(0, len(lines), 5000)]
            del lines
            sqlite_raw = raw_sqlite(root / "raw.db", batches, progress)
            influx_raw = raw_influx(url, "raw", bodies, n, progress)
            alone = asyncio.run(through_outbox(config(args.sensors, str(root / "alone"), None), batches, progress))
            both = asyncio.run(through_outbox(config(args.sensors, str(root / "both"), url), batches, progress))
        finally:
            stop_process(influxd)
    result = {
        "readings": n, "batch": args.batch, "sensors": args.sensors,
        "raw_sqlite_per_s": round(sqlite_raw), "raw_influx_write_per_s": round(influx_raw),
        "line_build_per_s": round(build_rate),
        "outbox_sqlite_alone_per_s": round(alone["sqlite_per_s"]),
        "outbox_both_sqlite_per_s": round(both["sqlite_per_s"]),
        "outbox_both_influx_per_s": round(both["influxdb_per_s"]),
        "accept_per_s": round(both["accepted_per_s"]),
    }
    result["ratio_sqlite_alone"] = round(result["outbox_sqlite_alone_per_s"] / sqlite_raw, 2)
    result["ratio_sqlite_with_influx"] = round(result["outbox_both_sqlite_per_s"] / sqlite_raw, 2)
    result["ratio_influx"] = round(result["outbox_both_influx_per_s"] / influx_raw, 2)
    if not args.json:
        print(f"bench store: {n:,} readings over {args.sensors} series, {args.batch}-reading batches")
        print(f"  SQLite    raw executemany {sqlite_raw:,.0f}/s; through the outbox alone "
              f"{alone['sqlite_per_s']:,.0f}/s ({result['ratio_sqlite_alone']}), beside InfluxDB "
              f"{both['sqlite_per_s']:,.0f}/s ({result['ratio_sqlite_with_influx']})")
        print(f"  InfluxDB  raw /write {influx_raw:,.0f}/s; through the outbox {both['influxdb_per_s']:,.0f}/s "
              f"({result['ratio_influx']}); line building alone {build_rate:,.0f}/s")
    print(json.dumps(result))
    return 0
