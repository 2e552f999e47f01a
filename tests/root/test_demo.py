"""`gridgate demo` as a newcomer runs it, for 120 s: a subprocess, the logins' live streams, the steps
the README's demo section promises, and the summary.

Promised (README, "The demo"): from the 10th second the CH4 of 恒源化工's gas controller ramps up and a
first-level (high) then a second-level (high-high) alarm reach officer1 live; left unacknowledged, the
high-high alarm escalates to the station chief after 20 s and to the lead department (yjj) after 40 s;
the alarm clears when the gas falls back; the spike at 龙岭烟花 at 20 s raises nothing; an MQTT device
in grid 3 drops out at 45 s and raises a communication alarm; nothing in grid 2 alarms. Then, as the
console would: officer1 acknowledges and dispatches the case to the cooperating department (fire),
which sees it and reports back, and officer1 closes it once the gas is gone. The banner points at the
console and at the API docs, both served.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from tests.peers import free_port

ROOT = Path(__file__).resolve().parents[2]
LEAK = "hengyuan-chem/gas-ctrl-1/ch4"
DROPOUT = "xinyu-mining/tank-farm"
RUN_S = 120
Events = list[tuple[float, dict[str, Any]]]


async def token(http: httpx.AsyncClient, user: str) -> str:
    r = await http.post("auth/token", data={"username": user, "password": user})
    r.raise_for_status()
    return r.json()["access_token"]


async def watch(port: int, user: str, until: float) -> Events:
    """Log in as ``user`` and collect live events with their arrival time (monotonic) until ``until``."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1/") as http:
        access = await token(http, user)
    got: Events = []
    url = f"ws://127.0.0.1:{port}/api/v1/alarms/live?access_token={access}"
    async with websockets.connect(url) as ws:
        while (left := until - time.monotonic()) > 0:
            try:
                msg = await asyncio.wait_for(ws.recv(), timeout=left)
            except TimeoutError:
                break
            got.append((time.monotonic(), json.loads(msg)))
    return got


async def handle_the_case(port: int, until: float) -> list[str]:
    """Once the leak has cleared: officer1 acknowledges and dispatches to fire, fire finds the case and
    reports back, officer1 closes. The steps done, in order."""
    done: list[str] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1/", timeout=10) as http:
        officer = {"Authorization": f"Bearer {await token(http, 'officer1')}"}
        fire = {"Authorization": f"Bearer {await token(http, 'fire')}"}
        alarm = None
        while time.monotonic() < until - 10:
            leak = (await http.get("alarms", params={"sensor": LEAK}, headers=officer)).json()
            if leak and leak[0]["state"] == "rtn_unacknowledged":
                alarm = leak[0]
                break
            await asyncio.sleep(0.5)
        assert alarm is not None, "the leak alarm never cleared"
        path = f"alarms/{alarm['id']}"
        r = await http.post(f"{path}/ack", json={"note": "gas gone, going to verify"}, headers=officer)
        assert r.status_code == 200, r.text
        done.append("acknowledged")
        r = await http.post(f"{path}/dispatch", json={"department": "fire", "note": "check the valve"}, headers=officer)
        assert r.status_code == 200, r.text
        done.append("dispatched")
        cases = (await http.get("alarms", params={"case": "dispatched"}, headers=fire)).json()
        assert [a["id"] for a in cases] == [alarm["id"]]
        r = await http.post(f"{path}/resolve", json={"note": "valve resealed"}, headers=fire)
        assert r.status_code == 200, r.text
        done.append("resolved")
        r = await http.post(f"{path}/close", json={"note": "verified"}, headers=officer)
        assert r.status_code == 200, r.text
        assert r.json()["alarm"]["case"] == "closed"
        done.append("closed")
    return done


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


def test_the_demo_does_what_the_readme_says(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.root.cli", "demo", "--for", str(RUN_S), "--port", str(port),
         "--data-dir", str(tmp_path / "demo")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_api(port, proc)
        root = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{root}/").status_code == 200
        assert httpx.get(f"{root}/api/v1/docs").status_code == 200
        assert httpx.get(f"{root}/favicon.ico").status_code == 200
        until = started + RUN_S - 2

        async def everyone() -> tuple[Any, ...]:
            return await asyncio.gather(*(watch(port, u, until) for u in ("officer1", "officer2", "officer3", "chief",
                                                                          "yjj")), handle_the_case(port, until))

        officer1, officer2, officer3, chief, yjj, handled = asyncio.run(everyone())
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
    assert "officer1/officer1" in out and f"http://127.0.0.1:{port}/" in out
    assert f"http://127.0.0.1:{port}/api/v1/docs" in out

    leak = [(t - started, e) for t, e in officer1 if e["alarm"]["sensor_id"] == LEAK]
    steps = [(e["type"], e["alarm"]["level"]) for _, e in leak]
    assert steps[:2] == [("raised", "high"), ("rose", "high_high")], steps
    assert leak[0][0] < 30, f"the leak alarm reached officer1 only after {leak[0][0]:.1f} s"
    rose = leak[1][0]
    escalations = [(t - rose, e["recipients"], e["alarm"]["level"]) for t, e in leak if e["type"] == "escalated"]
    assert [(r, lv) for _, r, lv in escalations] == [(["chief"], "high_high"), (["department:yjj"], "high_high")], \
        escalations
    assert 18 <= escalations[0][0] <= 25 and 38 <= escalations[1][0] <= 45, escalations
    assert ("cleared", "high") in steps, steps  # the gas fell back: lowered to high, then cleared
    assert steps.index(("lowered", "high")) > steps.index(("escalated", "high_high"))
    assert [e["type"] for _, e in chief if e["type"] == "escalated" and e["alarm"]["sensor_id"] == LEAK] == \
        ["escalated", "escalated"]
    assert any(e["type"] == "escalated" and "department:yjj" in e["recipients"] for _, e in yjj)
    assert not [e for _, e in officer1 if e["alarm"]["enterprise"] == "longling-fireworks"]  # the spike: nothing
    dropout = [(t - started, e) for t, e in officer3 if e["alarm"]["device"] == "tank-farm"
               and e["alarm"]["enterprise"] == "xinyu-mining" and e["type"] == "raised"]
    assert dropout and dropout[0][1]["alarm"]["kind"] == "communication", officer3
    assert dropout[0][0] > 45, dropout
    assert officer2 == []  # nothing in officer2's grid alarms
    assert handled == ["acknowledged", "dispatched", "resolved", "closed"]

    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["alarms_raised"] >= 2 and summary["readings_stored"] > 1000
    assert summary["events_delivered"] >= 6
