"""Real peers for tests: free ports, a Mosquitto broker in a temporary folder, a serial line (pty pair),
a pymodbus device farm in a thread of its own.

A missing binary fails the test with what to install; it never skips.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulators.brokers import free_port, start_mosquitto, stop_process, wait_port

__all__ = ["free_port", "wait_port", "need_binary", "Mosquitto", "SerialLine", "ThreadedFarm"]


def need_binary(name: str, package: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} not found: install the Debian package '{package}' (apt-get install {package})")
    return path


@dataclass
class Mosquitto:
    """A Mosquitto 2.x broker on a free port with persistence in its own folder; ``extra_config`` is
    appended to its configuration (logins and ACLs, TLS listeners)."""

    folder: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    extra_config: str = ""

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        need_binary("mosquitto", "mosquitto")
        if not self.port:
            self.port = free_port()
        self.proc = start_mosquitto(self.folder, self.port, self.extra_config)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class SerialLine:
    """A real serial line for tests: a pseudo-terminal pair joined by ``socat`` (Debian ``socat``);
    what is written on ``a`` is read on ``b`` and back, as on a null-modem cable."""

    folder: Path
    proc: subprocess.Popen | None = None

    @property
    def a(self) -> str:
        return str(self.folder / "tty-a")

    @property
    def b(self) -> str:
        return str(self.folder / "tty-b")

    def start(self) -> None:
        socat = need_binary("socat", "socat")
        self.proc = subprocess.Popen([socat, f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not (Path(self.a).exists() and Path(self.b).exists()):
            assert time.monotonic() < deadline and self.proc.poll() is None, "socat did not make the pty pair"
            time.sleep(0.01)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class ThreadedFarm:
    """``with ThreadedFarm(config):`` a pymodbus farm (:class:`simulators.modbus_farm.ModbusFarm`)
    serving the Modbus devices of ``config`` (a configuration dict) from its own thread and loop,
    beside a gateway running in another."""

    def __init__(self, config: dict[str, Any]) -> None:
        from gateway.config import parse_config
        from gateway.registry import Registry

        self.registry = Registry(parse_config(config))
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None

    async def _main(self) -> None:
        from simulators.modbus_farm import ModbusFarm

        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        async with ModbusFarm(self.registry):
            self.ready.set()
            await self.stop_event.wait()

    def __enter__(self) -> ThreadedFarm:
        self.thread.start()
        assert self.ready.wait(10), "the Modbus farm did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)
