"""The one in-process server of the tests: a real gateway (no collectors unless asked) with its API
under uvicorn on a free port, run in a background thread's event loop. Tests feed readings through
the intake as a collector would and talk to the API over HTTP (httpx) and WebSocket. The ``server``
fixture (conftest) starts one on :func:`make_config`'s district, or on a module's own
``server_config`` fixture.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher

from api.server import serve_api
from gateway.batch import ReadingBatch
from gateway.clock import Clock
from gateway.config import parse_config
from gateway.root.runtime import Gateway
from tests.helpers import wait_for
from tests.peers import free_port

G1, G2, G3 = "43090300100201", "43090300100301", "43090400100101"
# username -> (role, acts-as keys); the password of each login is its username
LOGINS: dict[str, tuple[str, dict[str, str]]] = {
    "admin": ("admin", {}),
    "zhang": ("officer", {"officer": "zhang"}),
    "wang": ("officer", {"officer": "wang"}),
    "town": ("supervisor", {"area": "430903"}),
    "fire": ("department", {"department": "fire"}),
    "shimen": ("enterprise", {"enterprise": "shimen"}),
}
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
HASHES = {name: FAST_HASHER.hash(name) for name in LOGINS}


def make_config() -> dict[str, Any]:
    gas = ("ch4", "ch4b", "ch4c", "ch4d", "ch4e")
    points: list[dict[str, Any]] = [{"key": k, "kind": "combustible_gas", "unit": "%LEL"} for k in gas]
    points.append({"key": "t1", "kind": "temperature", "unit": "°C", "high": 60.0})
    return {
        "gateway": {"id": "test-gw"},
        "users": [{"username": n, "password_hash": HASHES[n], "role": r, **acts}
                  for n, (r, acts) in LOGINS.items()],
        "departments": [{"id": d, "name": d} for d in ("yjj", "fire", "market")],
        "officers": [{"id": o, "name": o} for o in ("zhang", "wang", "li")],
        "grids": [
            {"id": G1, "name": "龙岭村网格", "area": "430903001002", "officers": ["zhang"]},
            {"id": G2, "name": "石门村网格", "area": "430903001003", "officers": ["wang"]},
            {"id": G3, "name": "far grid", "area": "430904001001", "officers": ["li"]},
        ],
        "enterprises": [
            {"id": "hengyuan", "name": "恒源化工", "grid": G1, "lead_department": "yjj",
             "cooperating_departments": ["fire"]},
            {"id": "shimen", "name": "石门建材", "grid": G2, "lead_department": "market"},
            {"id": "far", "name": "far works", "grid": G3, "lead_department": "market",
             "cooperating_departments": ["fire"]},
        ],
        "devices": [{"enterprise": e, "id": "gas", "protocol": "mqtt", "points": points}
                    for e in ("hengyuan", "shimen", "far")],
    }


class ApiServer:
    """A gateway with its API on a free port, run in a background thread's event loop."""

    def __init__(self, data_dir: Path, config: dict[str, Any] | None = None, collectors: bool = False,
                 clock: Clock | None = None) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.config = config if config is not None else make_config()
        self.collectors = collectors
        self.port = free_port()
        self.gw: Gateway
        self.loop: asyncio.AbstractEventLoop
        self.task: asyncio.Task
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-server", daemon=True)
        self._ts = time.time_ns()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1"

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10) or self.error is not None:
            raise RuntimeError(f"API server did not start: {self.error!r}")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.gw = Gateway(parse_config(self.config), data_dir=self.data_dir, collectors=self.collectors,
                          clock=self.clock)
        started = asyncio.Event()
        self.task = asyncio.create_task(
            self.gw.run(api=lambda gw: serve_api(gw, "127.0.0.1", self.port, started)))
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self.task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        self._ready.set()
        waiter.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.task.cancel)
            self._thread.join(15)
            assert not self._thread.is_alive(), "the gateway did not stop within 15 s"

    def submit(self, values: dict[str, float], ts_ns: int | None = None) -> None:
        """Feed one reading per sensor id through the intake, as a collector would."""
        if ts_ns is None:
            self._ts = max(self._ts + 1_000_000, time.time_ns())
            ts_ns = self._ts
        reg = self.gw.registry
        batch = ReadingBatch.of([reg.sensor_index(s) for s in values], [ts_ns] * len(values),
                                list(values.values()))
        asyncio.run_coroutine_threadsafe(self.gw.intake.submit(batch), self.loop).result(5)

    def submit_series(self, sensor_id: str, ts_ns: list[int], values: list[float]) -> None:
        idx = self.gw.registry.sensor_index(sensor_id)
        batch = ReadingBatch.of([idx] * len(values), ts_ns, values)
        asyncio.run_coroutine_threadsafe(self.gw.intake.submit(batch), self.loop).result(5)

    def raise_alarm(self, sensor_id: str, value: float = 30.0) -> dict[str, Any]:
        """Push a sensor over its limit; the alarm as the book holds it once raised."""
        before = self.gw.book.last_event_id()
        self.submit({sensor_id: value})
        def raised() -> list:
            return [e for e in self.gw.book.events_since(before, None) if e.alarm.sensor_id == sensor_id]

        ev = wait_for(raised, what=f"an alarm event of {sensor_id}")
        return ev[-1].alarm.to_dict()

    def token(self, username: str, password: str | None = None) -> str:
        form = {"username": username, "password": password or username}
        r = httpx.post(f"{self.base}/auth/token", data=form)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def client(self, username: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.token(username)}"},
                            timeout=10)
