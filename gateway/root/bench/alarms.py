"""``gridgate bench alarms``: alarm events through the running gateway, and the statistics queries.

A district of ``--grids`` grids × 5 enterprises × one device of ``--points`` CH4 points runs in a
gateway without collectors. Each round submits one batch in which ``--share`` of the sensors cross
their limit (or fall back: raise and clear alternate), as a collector would; a live-stream
subscriber (the hub, as the WebSocket stream uses it) receives the events. Reported: alarm events
per second from the first submit to the last event received, the latency from a batch's submit to
each of its events reaching the subscriber (p50, p99, max), and — over the book this leaves, with
acknowledgements and closes added — the time of ``/stats/officers`` and ``/stats/alarms`` for the
whole district. Floods are part of the run (many alarms per grid): the monitor sees every event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from typing import Any

import numpy as np

from alerts.scope import EVERYTHING
from alerts.stats import Period, alarm_stats, login_officers, officer_stats
from gateway.batch import ReadingBatch
from gateway.config import parse_config
from gateway.root.progress import Progress
from gateway.root.runtime import Gateway


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grids", type=int, default=20, help="grids (default 20), 5 enterprises each")
    p.add_argument("--points", type=int, default=10, help="CH4 points per enterprise (default 10)")
    p.add_argument("--rounds", type=int, default=200, help="batches (default 200)")
    p.add_argument("--share", type=float, default=0.1, help="share of sensors changing per round (default 0.1)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")


def district(grids: int, points: int) -> dict[str, Any]:
    gid = [f"4309030010{i:04d}" for i in range(grids)]
    return {
        "gateway": {"id": "bench-alarms"},
        "departments": [{"id": "yjj", "name": "yjj"}],
        "officers": [{"id": f"o{i}", "name": f"o{i}"} for i in range(grids)],
        "grids": [{"id": g, "name": g, "area": g[:12], "officers": [f"o{i}"]} for i, g in enumerate(gid)],
        "enterprises": [{"id": f"e{i}-{k}", "name": "e", "grid": g, "lead_department": "yjj"}
                        for i, g in enumerate(gid) for k in range(5)],
        "devices": [{"enterprise": f"e{i}-{k}", "id": "gas", "protocol": "mqtt",
                     "points": [{"key": f"ch{j}", "kind": "combustible_gas", "unit": "%LEL"} for j in range(points)]}
                    for i in range(grids) for k in range(5)],
    }


async def _run(args: argparse.Namespace, data_dir: str, progress: Progress) -> dict[str, Any]:
    gw = Gateway(parse_config(district(args.grids, args.points)), data_dir=data_dir, collectors=False)
    runner = asyncio.create_task(gw.run())
    await gw.started.wait()
    n = len(gw.registry)
    rng = np.random.default_rng(1)
    high = np.zeros(n, dtype=bool)
    submitted: dict[int, int] = {}  # event id bound -> submit time (ns) of the batch that made it
    latencies: list[float] = []
    received = 0
    with gw.hub.subscribe(None) as sub:
        t0 = time.perf_counter()
        base = time.time_ns()
        progress.phase("bench alarms", args.rounds, "rounds")
        for r in range(args.rounds):
            progress.show(r, f"{received:,} events received")
            change = rng.choice(n, size=max(1, int(n * args.share)), replace=False)
            high[change] = ~high[change]
            values = np.where(high[change], 30.0, 5.0)
            ts = base + r * 1_000_000
            before = gw.book.last_event_id()
            sent = time.perf_counter_ns()
            await gw.intake.submit(ReadingBatch.of(change.tolist(), [ts] * len(change), values.tolist()))
            submitted[before] = sent
            while not sub.queue.empty() or gw.evaluated < gw.intake.submitted:
                ev = await sub.get()
                if ev is None:
                    raise RuntimeError("the subscriber fell behind (raise the hub's queue size)")
                got = time.perf_counter_ns()
                bound = max(k for k in submitted if k < ev.id)
                latencies.append((got - submitted[bound]) / 1e6)
                received += 1
        wall = time.perf_counter() - t0
    # acknowledge and close a share of the alarms, so that the statistics have something to compute
    now = time.time_ns() // 1_000_000
    for a in gw.book.list_alarms(None, state="unacknowledged", limit=10_000)[: n // 4]:
        gw.book.acknowledge(a.id, "bench", "", now + 1000)
    period = Period(now - 86_400_000, now + 86_400_000)
    logins = login_officers(gw.config.users)
    q0 = time.perf_counter()
    officers = officer_stats(gw.book, [o.id for o in gw.config.officers], logins, gw.config.alarms.escalate_after,
                             EVERYTHING, period)
    q1 = time.perf_counter()
    grids = alarm_stats(gw.book, [g.id for g in gw.config.grids], EVERYTHING, period)
    q2 = time.perf_counter()
    events_total = gw.book.last_event_id()
    health = gw.health()["alarms"]
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    lat = np.array(latencies) if latencies else np.zeros(1)
    return {
        "sensors": n, "grids": args.grids, "rounds": args.rounds, "events_received": received,
        "events_in_book": events_total, "seconds": round(wall, 3),
        "events_per_s": round(received / wall) if wall else None,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 3),
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 3),
        "latency_ms_max": round(float(lat.max()), 3),
        "floods": health["floods"], "held_back": health["held_back"], "chattering": health["chattering"],
        "stats_officers_ms": round((q1 - q0) * 1000, 1), "stats_alarms_ms": round((q2 - q1) * 1000, 1),
        "officers_reported": len(officers), "grids_reported": len(grids),
    }


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="gridgate-bench-alarms-") as tmp:
        with Progress("bench alarms") as progress:
            result = asyncio.run(_run(args, tmp, progress))
    if not args.json:
        print(f"bench alarms: {result['sensors']} sensors in {result['grids']} grids, {result['rounds']} rounds, "
              f"{args.share:.1%} of the sensors changing per round")
        print(f"  events     {result['events_received']} to the live subscriber ({result['events_per_s']:,}/s),"
              f" {result['events_in_book']} in the book")
        print(f"  latency    submit → subscriber p50 {result['latency_ms_p50']} ms, p99 {result['latency_ms_p99']} ms,"
              f" max {result['latency_ms_max']} ms")
        print(f"  noise      floods {result['floods']}, held back {result['held_back']},"
              f" chattering {result['chattering']}")
        print(f"  stats      /stats/officers {result['stats_officers_ms']} ms,"
              f" /stats/alarms {result['stats_alarms_ms']} ms")
    print(json.dumps(result))
    return 0
