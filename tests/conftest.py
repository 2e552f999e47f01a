from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import Mosquitto, SerialLine
from tests.receiver import Receiver
from tests.server import ApiServer, make_config

pytest_plugins = ["tests.influx_peer"]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    broker = Mosquitto(folder)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def server_config() -> dict[str, Any]:
    """The configuration the ``server`` fixture runs; a module overrides it for a district of its own."""
    return make_config()


@pytest.fixture
def server(tmp_path: Path, server_config: dict[str, Any]) -> Iterator[ApiServer]:
    """A gateway with its API on a free port (:class:`tests.server.ApiServer`), stopped after the test."""
    with ApiServer(tmp_path / "gw", server_config) as srv:
        yield srv


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Make webhook receivers (:class:`tests.receiver.Receiver`); all are stopped after the test."""
    made: list[Receiver] = []

    def make(mode: str, secret: str | None = None, port: int | None = None) -> Receiver:
        made.append(Receiver(mode, secret, port))
        return made[-1]

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def serial_line(tmp_path: Path) -> Iterator[SerialLine]:
    """A pseudo-terminal pair joined by socat (:class:`tests.peers.SerialLine`)."""
    line = SerialLine(tmp_path)
    line.start()
    yield line
    line.stop()
