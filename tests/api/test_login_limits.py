"""What a login may cost the gateway (issue 10 item 2): the throttle per username and client address,
the lock and its ``Retry-After``, the bounded argon2 pool under a burst (memory and the latency of
other requests), the same work for an unknown name as for a wrong password, and token expiry on
the gateway's clock. Time is moved by hand (:class:`~gateway.clock.ManualClock`) where the throttle
or the tokens read it."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from gateway.accounts.passwords import HashParams, PasswordPool
from gateway.accounts.throttle import FailureTable, Rule
from gateway.clock import ManualClock
from tests.server import LOGINS, ApiServer, make_config

OWASP = HashParams(19 * 1024, 2, 1)


def login(server: ApiServer, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.base}/auth/token", data={"username": username, "password": password})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time_ns())


@pytest.fixture
def manual(tmp_path: Path, clock: ManualClock) -> Any:
    with ApiServer(tmp_path / "gw", make_config(), clock=clock) as server:
        yield server


def test_twenty_wrong_passwords_lock_the_login(manual: ApiServer, clock: ManualClock) -> None:
    pool = manual.gw.accounts.pool
    for i in range(1, 21):
        clock.advance(61)  # past the longest wait between failures (60 s)
        assert login(manual, "zhang", f"wrong-{i}").status_code == 401
        if i == 7:  # past the 5 free failures each one doubles the wait: a try during it is refused, unworked
            verified = pool.verified
            r = login(manual, "zhang", "zhang")
            assert r.status_code == 429 and r.headers["retry-after"] == "4", r.text
            assert "too many failed logins" in r.json()["detail"] and pool.verified == verified
    r = login(manual, "zhang", "zhang")  # the right password, during the lock
    assert r.status_code == 429 and r.headers["retry-after"] == "900", r.text
    assert r.json()["detail"] == "locked after too many failed logins: try again in 900 s"
    assert login(manual, "wang", "wang").status_code == 200  # the lock is zhang's, not the address's
    clock.advance(600)
    r = login(manual, "zhang", "zhang")
    assert r.status_code == 429 and r.headers["retry-after"] == "300"
    clock.advance(300)
    assert login(manual, "zhang", "zhang").status_code == 200
    assert login(manual, "zhang", "wrong").status_code == 401  # the slate is clean: no wait after one failure
    assert login(manual, "zhang", "zhang").status_code == 200


def test_tokens_expire_on_the_gateways_clock(manual: ApiServer, clock: ManualClock) -> None:
    tokens = login(manual, "zhang", "zhang").json()
    me = f"{manual.base}/me"
    clock.advance(899)
    assert httpx.get(me, headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
    clock.advance(1)
    r = httpx.get(me, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 401 and r.json()["detail"] == "invalid token: token expired"
    r = httpx.post(f"{manual.base}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200
    clock.advance(12 * 3600 - 900 - 10)  # the session ends 12 h after the login, refreshed or not
    late = r.json()
    assert late["refresh_expires_in"] == 12 * 3600 - 900
    last = httpx.post(f"{manual.base}/auth/refresh", json={"refresh_token": late["refresh_token"]}).json()
    assert last["expires_in"] == 10 and last["refresh_expires_in"] == 10
    clock.advance(10)
    assert httpx.post(f"{manual.base}/auth/refresh", json={"refresh_token": last["refresh_token"]}).status_code == 401


def test_the_wait_doubles_after_the_free_failures_then_locks() -> None:
    table = FailureTable(Rule(5, 20), lock_s=900, max_delay_s=60, max_keys=10)
    waits = []
    for _ in range(21):
        table.fail("zhang", 0.0)
        waits.append(table.wait_s("zhang", 0.0))
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60, 60, 60, 60, 900, 900]
    assert table.wait_s("zhang", 899.5) == 0.5 and table.wait_s("zhang", 900.0) == 0.0
    assert len(table) == 0  # forgotten lock_s after the last failure


def test_one_address_guessing_many_names_is_slowed_too(manual: ApiServer, clock: ManualClock) -> None:
    for i in range(25):  # a name each: no name is slowed, the address has five times a name's room
        assert login(manual, f"ghost-{i}", "guess").status_code == 401
    r = login(manual, "zhang", "zhang")
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    clock.advance(1)
    assert login(manual, "zhang", "zhang").status_code == 200


def test_failure_tables_are_bounded() -> None:
    table = FailureTable(Rule(5, 20), lock_s=900, max_delay_s=60, max_keys=100)
    for i in range(10_000):
        table.fail(f"made-up-{i}", 1000.0)
    assert len(table) == 100
    assert table.wait_s("made-up-9999", 1000.0) == 0.0 and table.wait_s("made-up-0", 1000.0) == 0.0


def test_an_unknown_name_costs_what_a_wrong_password_costs() -> None:
    stored = OWASP.hasher().hash("the password")
    pool = PasswordPool(HashParams(1024, 1), workers=1, queue=0)  # new hashes differ: the dummy follows the stored
    pool.dummy_params = HashParams.of(stored)
    pool.prepare()
    assert HashParams.of(pool._dummy(pool.dummy_params)) == HashParams.of(stored) == OWASP

    async def timed(password_hash: str | None) -> float:
        t = time.perf_counter()
        assert await pool.verify(password_hash, "a wrong password") is False
        return time.perf_counter() - t

    async def run() -> tuple[float, float]:
        unknown = [await timed(None) for _ in range(7)]
        wrong = [await timed(stored) for _ in range(7)]
        return statistics.median(unknown), statistics.median(wrong)

    unknown, wrong = asyncio.run(run())
    pool.close()
    assert 0.7 < unknown / wrong < 1.4, (unknown, wrong)


@pytest.fixture
def server_config() -> dict[str, Any]:
    """Logins hashed with the real (OWASP) parameters, so that the dummy hash costs as much."""
    cfg = make_config()
    hasher = OWASP.hasher()
    for user in cfg["users"]:
        user["password_hash"] = hasher.hash(user["username"])
    assert {u["username"] for u in cfg["users"]} == set(LOGINS)
    return cfg


BURST = """
import asyncio, json, sys
import httpx

async def main(base):
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        answers = await asyncio.gather(*(client.post("/auth/token", data={"username": f"ghost-{i}",
                                                                          "password": "guess-1234"})
                                         for i in range(100)))
    print(json.dumps([[r.status_code, r.headers.get("retry-after")] for r in answers]))

asyncio.run(main(sys.argv[1]))
"""


def test_a_burst_of_unknown_names_is_bounded_and_others_are_served(server: ApiServer) -> None:
    """100 parallel logins with unknown names, from another process, so that the RSS of this one (which
    hosts the gateway) is the gateway's; meanwhile an officer lists alarms."""
    officer = {"Authorization": f"Bearer {server.token('zhang')}"}
    assert httpx.get(f"{server.base}/alarms", headers=officer).status_code == 200  # warm
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak = baseline
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not sampling.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    latencies = []
    try:
        burst = subprocess.Popen([sys.executable, "-c", BURST, server.base], stdout=subprocess.PIPE, text=True)
        while burst.poll() is None:
            t = time.perf_counter()
            assert httpx.get(f"{server.base}/alarms", headers=officer).status_code == 200
            latencies.append(time.perf_counter() - t)
            time.sleep(0.02)
        out, _ = burst.communicate()
    finally:
        sampling.set()
        sampler.join()
    assert burst.returncode == 0
    answers = json.loads(out)
    statuses = Counter(code for code, _ in answers)
    grown_mb = (peak - baseline) / 2**20
    print(f"statuses {dict(statuses)}, RSS +{grown_mb:.1f} MB, GET /alarms max {max(latencies) * 1000:.0f} ms "
          f"over {len(latencies)} calls, argon2 verifications {server.gw.accounts.pool.verified}")
    assert set(statuses) <= {401, 429, 503} and statuses[401] >= 2
    assert all(retry_after for code, retry_after in answers if code in (429, 503))
    assert grown_mb < 100
    assert max(latencies) < 0.5
