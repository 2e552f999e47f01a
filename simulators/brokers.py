"""Brokers for simulations and benchmarks: a Mosquitto process, or the embedded amqtt broker.

Mosquitto (Debian package ``mosquitto``) is the real broker of the tests and benchmarks; amqtt runs
in-process for ``gridgate demo`` so that the demo needs nothing beyond the Python package. amqtt
does not queue messages for offline persistent sessions (see DESIGN.md), so it is for the demo only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    """The mosquitto executable; a clear error saying what to install when it is missing."""
    sbin = Path("/usr/sbin/mosquitto")
    path = shutil.which("mosquitto") or (str(sbin) if sbin.exists() else None)
    if path is None:
        raise FileNotFoundError("mosquitto not found: install the Debian package 'mosquitto' "
                                "(apt-get install mosquitto)")
    return path


def wait_port(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on port {port} after {timeout} s")


def start_mosquitto(folder: Path, port: int, extra: str = "") -> subprocess.Popen:
    """Start Mosquitto on 127.0.0.1:``port`` with persistence in ``folder``; wait until it listens.

    ``extra`` is appended to the configuration: more listeners, or settings that override the
    defaults above (a later ``allow_anonymous false`` wins)."""
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {folder}/\nmax_queued_messages 1000000\n"
        "max_inflight_messages 100\nlog_dest none\nuser root\n"  # as root, 2.0 drops to 'mosquitto': no save
        + extra
    )
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port, proc=proc)
    return proc


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# InfluxDB 1.x (Debian ``influxdb``) on loopback: both listeners on given ports, every directory
# under one folder, no usage reporting, no _internal statistics, quiet logs.
INFLUXD_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{folder}/meta"
  logging-enabled = false

[data]
  dir = "{folder}/data"
  wal-dir = "{folder}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "error"
  suppress-logo = true

[continuous_queries]
  enabled = false
"""


def start_influxd(folder: Path, http_port: int, rpc_port: int, timeout: float = 20.0) -> subprocess.Popen:
    """Start ``influxd`` with its config, data and log in ``folder``; wait until ``/ping`` answers."""
    import urllib.request

    sbin = Path("/usr/bin/influxd")
    binary = shutil.which("influxd") or (str(sbin) if sbin.exists() else None)
    if binary is None:
        raise FileNotFoundError("influxd not found: install the Debian package 'influxdb' (apt-get install influxdb)")
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "influxdb.conf"
    conf.write_text(INFLUXD_CONFIG.format(folder=folder, http_port=http_port, rpc_port=rpc_port))
    with open(folder / "influxd.log", "ab") as log:
        proc = subprocess.Popen([binary, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"influxd exited with {proc.returncode}; see {folder / 'influxd.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/ping", timeout=0.5) as r:
                if r.status == 204:
                    return proc
        except OSError:
            pass
        time.sleep(0.05)
    stop_process(proc)
    raise TimeoutError(f"influxd did not answer /ping on port {http_port} within {timeout} s")


async def start_amqtt(port: int, host: str = "127.0.0.1") -> Any:
    """Start the embedded amqtt broker (anonymous) in this event loop; returns it (``await b.shutdown()``)."""
    from amqtt.broker import Broker

    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    return broker
