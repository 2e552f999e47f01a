from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import Mosquitto

pytest_plugins = ["tests.influx_peer"]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    broker = Mosquitto(folder)
    broker.start()
    yield broker
    broker.stop()
