"""``gridgate bench soak``: a full ``gridgate run`` polling a simulated Modbus farm, for many minutes.

The farm (``gridgate sim modbus``) and the gateway (``gridgate run``, with a data dir of its own)
run as two processes of their own, from one configuration written as TOML: D devices × P points
at the poll interval (the ``bench modbus`` devices: :func:`gateway.root.bench.modbus.bench_config`).
Every ``--every`` seconds it samples the gateway's ``/api/v1/metrics`` (with the configuration's
``metrics_token``: readings stored and evaluated, the SQLite sink's backlog in readings and
seconds; ``/healthz`` gives these only to an admin login), the gateway process's CPU (from
``/proc/<pid>/stat``, as cores over the interval) and RSS, and the size of ``readings.db`` with its
WAL. It prints a line per sample and, at the end, one JSON line with every sample and a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.root.bench.ingest import _proc_cpu
from gateway.root.bench.modbus import bench_config, raise_nofile_limit, reserve_ports
from gateway.root.progress import Progress
from simulators.brokers import free_port, stop_process

BACKLOG_BUDGET_S = 5.0
CORE_BUDGET = 0.6
RSS_BUDGET_MB = 150.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=int, default=1000, help="Modbus devices (default 1000)")
    p.add_argument("--points", type=int, default=30, help="points per device (default 30)")
    p.add_argument("--interval", type=float, default=1.0, help="poll interval in seconds (default 1.0)")
    p.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    p.add_argument("--every", type=float, default=60.0, help="seconds between samples (default 60)")
    p.add_argument("--endpoints", type=int, help="listening ports for the farm (default: one per device)")
    p.add_argument("--data-dir", help="keep the gateway's data and the logs here (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string (\uXXXX escapes included) is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML for {type(v).__name__}")


def toml_text(cfg: dict[str, Any]) -> str:
    """A configuration dict as TOML: tables, arrays of tables, one level of nested arrays (points)."""
    out: list[str] = []

    def table(header: str, d: dict[str, Any]) -> None:
        out.append(header)
        nested = {k: v for k, v in d.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
        out.extend(f"{k} = {toml_value(v)}" for k, v in d.items() if k not in nested)
        name = header.strip("[]")
        for k, rows in nested.items():
            for row in rows:
                table(f"[[{name}.{k}]]", row)

    for key, v in cfg.items():
        if isinstance(v, dict):
            table(f"[{key}]", v)
        else:
            for row in v:
                table(f"[[{key}]]", row)
    return "\n".join(out) + "\n"


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def file_mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.exists()) / 2**20


def metrics(http: httpx.Client) -> dict[str, float]:
    """The gateway's ``/metrics`` as {``name{labels}``: value} (the Prometheus text format)."""
    r = http.get("/api/v1/metrics")
    r.raise_for_status()
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def sample(http: httpx.Client, pid: int, data: Path, prev: dict[str, Any] | None, t0: float) -> dict[str, Any]:
    m = metrics(http)
    now, cpu = time.monotonic(), _proc_cpu(pid)
    s = {"minute": round((now - t0) / 60, 2), "t": now, "cpu_s": cpu,
         "stored": int(m["gridgate_readings_stored_total"]), "evaluated": int(m["gridgate_readings_evaluated_total"]),
         "backlog_readings": int(m['gridgate_sink_backlog_readings{sink="sqlite"}']),
         "backlog_s": m['gridgate_sink_backlog_seconds{sink="sqlite"}'],
         "outbox_mb": round(m["gridgate_outbox_bytes"] / 2**20, 1),
         "dropped": int(m["gridgate_outbox_dropped_readings_total"]),
         "rss_mb": round(proc_rss_mb(pid), 1),
         "readings_db_mb": round(file_mb(data / "readings.db", data / "readings.db-wal"), 1)}
    if prev is not None:
        dt = now - prev["t"]
        s["cores"] = round((cpu - prev["cpu_s"]) / dt, 3)
        s["stored_per_s"] = round((s["stored"] - prev["stored"]) / dt)
        s["evaluated_per_s"] = round((s["evaluated"] - prev["evaluated"]) / dt)
    return s


def wait_for_api(http: httpx.Client, gateway: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.poll() is not None:
            raise RuntimeError(f"gridgate run exited ({gateway.returncode}); see {log}")
        try:
            if http.get("/api/v1/metrics", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the gateway's API did not answer in {timeout} s; see {log}")


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    rated = [s for s in samples if "cores" in s]
    later = rated[1:] or rated  # the first interval includes start-up
    return {
        "samples": len(samples),
        "stored_per_s_mean": round(sum(s["stored_per_s"] for s in later) / max(len(later), 1)),
        "evaluated_per_s_mean": round(sum(s["evaluated_per_s"] for s in later) / max(len(later), 1)),
        "backlog_s_max": max((s["backlog_s"] for s in samples), default=0.0),
        "cores_mean": round(sum(s["cores"] for s in later) / max(len(later), 1), 3),
        "cores_max": max((s["cores"] for s in later), default=0.0),
        "rss_mb_first": samples[0]["rss_mb"] if samples else None,
        "rss_mb_max": max((s["rss_mb"] for s in samples), default=0.0),
        "rss_mb_last": samples[-1]["rss_mb"] if samples else None,
        "readings_db_mb": samples[-1]["readings_db_mb"] if samples else None,
        "bytes_per_reading": round(samples[-1]["readings_db_mb"] * 2**20 / max(samples[-1]["stored"], 1), 2)
        if samples else None,
        "dropped": samples[-1]["dropped"] if samples else 0,
    }


def run(args: argparse.Namespace) -> int:
    if args.devices < 1 or args.points < 1 or args.interval <= 0 or args.minutes <= 0 or args.every <= 0:
        raise SystemExit("--devices, --points, --interval, --minutes and --every must be positive")
    raise_nofile_limit()  # inherited by both processes
    with tempfile.TemporaryDirectory(prefix="gridgate-soak-") as tmp:
        root = Path(args.data_dir or tmp)
        data = root / "data"
        data.mkdir(parents=True, exist_ok=True)
        api_port = free_port()
        cfg = bench_config(args.devices, args.points, args.interval, reserve_ports(args.endpoints or args.devices))
        token = secrets.token_hex(16)
        cfg = {"gateway": {"id": "soak", "data_dir": str(data)},
               "api": {"listen": f"127.0.0.1:{api_port}", "metrics_token": token}, **cfg}
        cfg_path = root / "gridgate.toml"
        cfg_path.write_text(toml_text(cfg), encoding="utf-8")
        cli = [sys.executable, "-m", "gateway.root.cli"]
        farm_log, gw_log = root / "farm.log", root / "gateway.log"
        with open(farm_log, "wb") as flog, open(gw_log, "wb") as glog:
            farm = subprocess.Popen([*cli, "sim", "modbus", "-c", str(cfg_path)], stdout=flog, stderr=subprocess.STDOUT)
            gateway = None
            try:
                deadline = time.monotonic() + 180
                while b"scenario" not in farm_log.read_bytes():
                    if farm.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the farm did not start; see {farm_log}")
                    time.sleep(0.5)
                gateway = subprocess.Popen([*cli, "run", "-c", str(cfg_path)], stdout=glog, stderr=subprocess.STDOUT)
                result = soak(args, gateway, data, api_port, token, gw_log, farm.pid)
            finally:
                if gateway is not None and gateway.poll() is None:
                    gateway.send_signal(2)  # SIGINT: the gateway stops in order
                    try:
                        gateway.wait(60)
                    except subprocess.TimeoutExpired:
                        stop_process(gateway)
                stop_process(farm)
        result["data_dir"] = str(root) if args.data_dir else None
    print(json.dumps(result))
    s = result["summary"]
    ok = (s["backlog_s_max"] < BACKLOG_BUDGET_S and s["cores_mean"] < CORE_BUDGET
          and s["rss_mb_max"] < RSS_BUDGET_MB and s["dropped"] == 0)
    return 0 if ok else 1


def soak(args: argparse.Namespace, gateway: subprocess.Popen, data: Path, api_port: int, token: str, log: Path,
         farm_pid: int) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as http, Progress("bench soak") as progress:
        progress.phase("bench soak: waiting for the gateway's API")
        progress.show()
        wait_for_api(http, gateway, log)
        progress.phase("bench soak", args.minutes * 60)
        t0 = time.monotonic()
        farm0 = _proc_cpu(farm_pid)
        prev = sample(http, gateway.pid, data, None, t0)
        end = t0 + args.minutes * 60
        while (now := time.monotonic()) < end - 1e-3:
            progress.sleep(min(args.every, end - now), lambda: f"{len(samples)} samples")
            if gateway.poll() is not None:
                raise RuntimeError(f"gridgate run exited ({gateway.returncode}); see {log}")
            s = sample(http, gateway.pid, data, prev, t0)
            samples.append({k: v for k, v in s.items() if k not in ("t", "cpu_s")})
            prev = s
            progress.clear()
            if not args.json:
                print(f"min {s['minute']:6.2f}  stored {s['stored_per_s']:>7,}/s"
                      f"  evaluated {s['evaluated_per_s']:>7,}/s"
                      f"  backlog {s['backlog_readings']:>9,} ({s['backlog_s']:6.2f} s)  {s['cores']:.3f} cores"
                      f"  RSS {s['rss_mb']:6.1f} MB  readings.db {s['readings_db_mb']:8.1f} MB", flush=True)
        farm_cores = (_proc_cpu(farm_pid) - farm0) / (time.monotonic() - t0)
    return {"devices": args.devices, "points": args.points, "interval_s": args.interval,
            "readings_per_s_expected": round(args.devices * args.points / args.interval),
            "minutes": args.minutes, "every_s": args.every, "farm_cores": round(farm_cores, 3),
            "summary": summarize(samples), "per_sample": samples}
