"""`gridgate demo` as a newcomer runs it: a subprocess, the officers' live streams, the summary."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import websockets

from tests.peers import free_port

ROOT = Path(__file__).resolve().parents[2]
LEAK = "hengyuan-chem/gas-ctrl-1/ch4"


async def watch(port: int, user: str, seconds: float) -> list[tuple[float, dict]]:
    """Log in as ``user`` and collect live events with their arrival time."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        r = await http.post("/api/v1/auth/token", data={"username": user, "password": user})
        r.raise_for_status()
        token = r.json()["access_token"]
    got: list[tuple[float, dict]] = []
    url = f"ws://127.0.0.1:{port}/api/v1/alarms/live?access_token={token}"
    async with websockets.connect(url) as ws:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await asyncio.wait_for(ws.recv(), timeout=left)
            except TimeoutError:
                break
            got.append((time.monotonic(), json.loads(msg)))
    return got


def wait_api(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited early: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the demo's API did not come up")


def test_demo_officer1_gets_the_leak_officer2_nothing(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.root.cli", "demo", "--for", "36", "--port", str(port),
         "--data-dir", str(tmp_path / "demo")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_api(port, proc)

        async def both() -> tuple[list, list]:
            left = 34 - (time.monotonic() - started)
            return await asyncio.gather(watch(port, "officer1", left), watch(port, "officer2", left))

        officer1, officer2 = asyncio.run(both())
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
    assert "officer1/officer1" in out and f"http://127.0.0.1:{port}" in out
    leak = [(t - started, e["type"], e["alarm"]["level"]) for t, e in officer1 if e["alarm"]["sensor_id"] == LEAK]
    assert [x[1:] for x in leak[:2]] == [("raised", "high"), ("rose", "high_high")], leak
    assert leak[0][0] < 30, f"the leak alarm reached officer1 only after {leak[0][0]:.1f} s"
    assert officer2 == []  # nothing in officer2's grid alarms during the first minute
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["alarms_raised"] >= 1 and summary["readings_stored"] > 1000
    assert summary["events_delivered"] >= 2
