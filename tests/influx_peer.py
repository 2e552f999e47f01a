"""A real InfluxDB 1.x server for tests: ``/usr/bin/influxd`` with a temporary config on free ports.

:class:`InfluxD` writes a config that puts both listeners (HTTP and the RPC ``bind-address``) on
free ports and every directory (meta, data, wal) under its own folder, turns off usage reporting,
the ``_internal`` statistics store and request logging, and waits for ``GET /ping`` to answer 204.
``stop()`` / ``kill()`` and then ``start()`` again reuse the same ports and folder, so a restarted
server keeps its data. The ``influxd`` fixture gives each test a fresh, running server. A missing
binary fails the test with what to install; it never skips.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simulators.brokers import INFLUXD_CONFIG as CONFIG
from tests.peers import free_port, need_binary

__all__ = ["InfluxD", "influxd"]



class InfluxD:
    """One ``influxd`` process with its config, data and log in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.http_port = 0
        self.rpc_port = 0
        self.proc: subprocess.Popen | None = None
        self._http = httpx.Client(timeout=10.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server (on the ports and folder of a previous start, if any) and wait for /ping."""
        binary = need_binary("influxd", "influxdb")
        if not self.http_port:
            self.http_port, self.rpc_port = free_port(), free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "influxdb.conf"
        conf.write_text(CONFIG.format(folder=self.folder, http_port=self.http_port, rpc_port=self.rpc_port))
        with open(self.folder / "influxd.log", "ab") as log:
            self.proc = subprocess.Popen([binary, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        self._wait_ping(timeout)

    def _wait_ping(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.folder / "influxd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"influxd exited with {self.proc.returncode}:\n{log}")
            try:
                if self._http.get(f"{self.url}/ping", timeout=0.5).status_code == 204:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"influxd did not answer /ping on {self.url} within {timeout} s")

    def stop(self) -> None:
        """Stop with SIGTERM (a clean shutdown), waiting for the process to exit."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Stop with SIGKILL: what a crash or an OOM kill looks like."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._http.close()

    def query(self, q: str, db: str | None = None, epoch: str = "ns") -> dict:
        """Run InfluxQL with POST /query; the decoded JSON answer (raises on an HTTP error)."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        r = self._http.post(f"{self.url}/query", params=params)
        r.raise_for_status()
        return r.json()

    def create_database(self, name: str) -> None:
        answer = self.query(f'CREATE DATABASE "{name}"')
        errors = [s["error"] for s in answer.get("results", []) if "error" in s]
        if errors:
            raise RuntimeError(f"CREATE DATABASE {name}: {errors}")

    def write(self, db: str, body: str, precision: str = "ns") -> httpx.Response:
        """A raw POST /write of line protocol; the response, whatever its status."""
        return self._http.post(f"{self.url}/write", params={"db": db, "precision": precision},
                               content=body.encode())

    def count(self, db: str, measurement: str | None = None) -> int:
        """Points in a measurement, or in every measurement of the database, counted by ``value``.

        Each measurement is counted on its own: a ``FROM /.*/`` count leaves out measurements whose
        ``value`` has another type than the first one's (seen on 1.6.7).
        """
        if measurement is None:
            answer = self.query("SHOW MEASUREMENTS", db=db)
            names = [row[0] for s in answer["results"][0].get("series", []) for row in s["values"]]
            return sum(self.count(db, name) for name in names)
        ident = '"' + measurement.replace("\\", "\\\\").replace('"', '\\"') + '"'
        answer = self.query(f'SELECT COUNT("value") FROM {ident}', db=db)
        total = 0
        for result in answer.get("results", []):
            if "error" in result:
                raise RuntimeError(result["error"])
            for series in result.get("series", []):
                total += sum(int(row[1]) for row in series["values"])
        return total


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[InfluxD]:
    """A running InfluxDB 1.x (Debian package ``influxdb``) on free ports, stopped after the test."""
    server = InfluxD(tmp_path / "influxd")
    server.start()
    try:
        yield server
    finally:
        server.close()
