"""Webhook notifiers configured in `[[notifiers]]` receive the gateway's alarm events, per grid."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.batch import ReadingBatch
from gateway.errors import ConfigError
from gateway.root.runtime import Gateway
from tests.helpers import CH4, district, mqtt_device, until
from tests.receiver import Receiver

G2 = "43090300100301"


def test_configured_webhooks_get_the_events_of_their_grids(tmp_path: Path) -> None:
    everything = Receiver("json", secret="k1").start()
    grid2 = Receiver("wecom").start()
    try:
        cfg = district([mqtt_device("e1", "d1", [CH4]), mqtt_device("e2", "d2", [CH4])], notifiers=[
            {"type": "webhook", "name": "town", "url": everything.url, "format": "json", "secret": "k1"},
            {"type": "webhook", "name": "g2-group", "url": grid2.url, "format": "wecom", "grids": [G2]},
        ])

        async def scenario() -> dict:
            gw = Gateway(cfg, data_dir=tmp_path, collectors=False)
            runner = asyncio.create_task(gw.run())
            await gw.started.wait()
            now = time.time_ns()
            await gw.intake.submit(ReadingBatch.of([0], [now], [30.0]))  # e1 (grid 1): high
            await gw.intake.submit(ReadingBatch.of([1], [now], [60.0]))  # e2 (grid 2): high-high
            # the receiver records a request before it answers: wait for the notifiers to hear the 2xx
            await until(lambda: gw.notifiers["town"].health()["delivered"] >= 2
                        and gw.notifiers["g2-group"].health()["delivered"] >= 1, 10, "the deliveries")
            health = gw.health()["notifiers"]
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            return health

        health = asyncio.run(scenario())
    finally:
        everything.stop()
        grid2.stop()
    assert [r.verified for r in everything.got] == [True, True]
    assert sorted(r.json["alarm"]["sensor_id"] for r in everything.got) == ["e1/d1/ch4", "e2/d2/ch4"]
    assert len(grid2.got) == 1 and "e2/d2/ch4" in grid2.got[0].json["markdown"]["content"]
    assert health["town"]["delivered"] == 2 and health["g2-group"]["delivered"] == 1


def test_notifier_config_refusals() -> None:
    with pytest.raises(ConfigError) as exc:
        district([], notifiers=[
            {"type": "webhook", "name": "a", "url": "http://127.0.0.1:1/x", "grids": ["nowhere"]},
            {"type": "webhook", "name": "a", "url": "ftp://x"},
            {"type": "sms", "name": "b", "url": "http://x"},
        ])
    paths = {p for p, _ in exc.value.problems}
    assert {"notifiers[1] (a).url", "notifiers[2] (b).type"} <= paths
    with pytest.raises(ConfigError) as exc:
        district([], notifiers=[
            {"type": "webhook", "name": "a", "url": "http://127.0.0.1:1/x", "grids": ["nowhere"]},
            {"type": "webhook", "name": "a", "url": "http://127.0.0.1:1/y"},
        ])
    assert ("notifiers[0] (a).grids[0]", "grid 'nowhere' does not exist") in exc.value.problems
    assert ("notifiers[1] (a).name", "duplicate or reserved notifier name 'a'") in exc.value.problems
