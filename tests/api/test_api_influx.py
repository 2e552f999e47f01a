"""With `backend = "influxdb"`, the API's readings come from InfluxDB (a real influxd 1.6.7)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from argon2 import PasswordHasher

from api.server import serve_api
from gateway.batch import Quality, ReadingBatch
from gateway.root.runtime import Gateway
from tests.helpers import CH4, district, mqtt_device, until
from tests.influx_peer import InfluxD
from tests.peers import free_port

S = 1_000_000_000


def test_readings_endpoint_reads_influxdb(tmp_path: Path, influxd: InfluxD) -> None:
    influxd.create_database("api")
    ph = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    cfg = district(
        [mqtt_device("e1", "d1", [CH4])],
        users=[{"username": "o1", "password_hash": ph.hash("o1"), "role": "officer", "officer": "o1"}],
        storage={"backend": "influxdb", "influxdb": {"url": influxd.url, "api": "v1", "bucket": "api"}},
    )
    port = free_port()
    t0 = (time.time_ns() // S - 100) * S

    async def scenario() -> tuple[dict, dict, int]:
        gw = Gateway(cfg, data_dir=tmp_path, collectors=False)
        started = asyncio.Event()
        runner = asyncio.create_task(gw.run(api=lambda g: serve_api(g, "127.0.0.1", port, started)))
        await started.wait()
        values = [5.0, 6.0, 7.0, 8.0, 0.0, 9.0]
        quality = [Quality.GOOD] * 4 + [Quality.FAULT, Quality.GOOD]
        await gw.intake.submit(ReadingBatch.of([0] * 6, [t0 + i * S for i in range(6)], values, quality))
        await until(lambda: min(d.written for d in gw.storage.drainers.values()) >= 6, 15, "both sinks written")
        # SQLite is emptied, so what the API answers can only have come from InfluxDB
        gw.store.delete_before(time.time_ns())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1") as http:
            r = await http.post("/auth/token", data={"username": "o1", "password": "o1"})
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            window = {"start": t0 // 10**6, "end": (t0 + 10 * S) // 10**6}
            raw = (await http.get("/sensors/e1/d1/ch4/readings", params=window, headers=auth)).json()
            agg = (await http.get("/sensors/e1/d1/ch4/readings", headers=auth,
                                  params={**window, "every": "3s", "agg": "max"})).json()
        sqlite_left = gw.store.count()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return raw, agg, sqlite_left

    raw, agg, sqlite_left = asyncio.run(scenario())
    assert sqlite_left == 0
    assert [(p["ts"], p["value"], p["quality"]) for p in raw["points"]] == [
        ((t0 + i * S) // 10**6, v, q) for i, (v, q) in
        enumerate(zip([5.0, 6.0, 7.0, 8.0, 0.0, 9.0], ["good"] * 4 + ["fault", "good"], strict=True))]
    # buckets of 3 s aligned to the epoch; the fault reading (0.0) is left out of the aggregate
    first = (t0 // (3 * S)) * 3 * S
    expected: dict[int, float] = {}
    for i, v in enumerate([5.0, 6.0, 7.0, 8.0, None, 9.0]):
        if v is not None:
            b = ((t0 + i * S - first) // (3 * S)) * 3 * S + first
            expected[b // 10**6] = max(expected.get(b // 10**6, v), v)
    assert [(p["ts"], p["value"]) for p in agg["points"]] == sorted(expected.items())
