"""Notifiers read the book's event log at their own durable cursor (issue 8): a webhook receiver
that is down for 30 s while 20 alarms are raised, with the gateway restarted in between, receives
every one of them, in order, none missing; a duplicate only for the delivery in flight at the
restart, with the same event id."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.batch import ReadingBatch
from gateway.root.runtime import Gateway
from tests.helpers import CH4, district, mqtt_device, until
from tests.peers import free_port
from tests.receiver import Receiver

POINTS = [{**CH4, "key": f"ch{i}"} for i in range(20)]
DOWN_FOR = 30.0  # seconds, half before the restart and half after


async def raise_alarms(gw: Gateway, sensors: range, seconds: float) -> list[int]:
    """Run ``gw`` for ``seconds``, raising one high-high alarm per sensor; the events booked."""
    runner = asyncio.create_task(gw.run())
    await gw.started.wait()
    before = gw.book.last_event_id()
    for i in sensors:
        await gw.intake.submit(ReadingBatch.of([i], [time.time_ns()], [80.0]))
    await asyncio.sleep(seconds)
    ids = [e.id for e in gw.book.events_since(before, None)]
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    return ids


def test_a_webhook_down_across_a_restart_gets_every_alarm_in_order(tmp_path: Path) -> None:
    rx = Receiver("json", secret="k", port=free_port())  # not started: the port is closed
    cfg = district([mqtt_device("e1", "d1", POINTS)],
                   alarms={"flood": {"alarms": 100}},  # 20 alarms in a grid is a flood by default
                   notifiers=[{"type": "webhook", "name": "town", "url": rx.url, "format": "json", "secret": "k"}])
    first = asyncio.run(raise_alarms(Gateway(cfg, data_dir=tmp_path, collectors=False), range(10), DOWN_FOR / 2))
    assert len(first) == 10 and rx.got == []

    async def second_run() -> tuple[list[int], dict]:
        gw = Gateway(cfg, data_dir=tmp_path, collectors=False)
        runner = asyncio.create_task(gw.run())
        await gw.started.wait()
        before = gw.book.last_event_id()
        for i in range(10, 20):
            await gw.intake.submit(ReadingBatch.of([i], [time.time_ns()], [80.0]))
        await asyncio.sleep(DOWN_FOR / 2)
        ids = [e.id for e in gw.book.events_since(before, None)]
        rx.start()
        # the receiver records a request before it answers: wait for the notifier to hear every 2xx too
        await until(lambda: len(set(rx.ids())) >= 20 and gw.notifiers["town"].lag() == 0, 60, "every delivery")
        health = gw.health()["notifiers"]["town"]
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return ids, health

    try:
        second, health = asyncio.run(second_run())
    finally:
        rx.stop()
    want = first + second
    got = rx.ids()
    assert all(r.verified for r in rx.got)
    assert sorted(set(got)) == want  # every alarm event, none missing
    assert [i for k, i in enumerate(got) if i not in got[:k]] == want  # first deliveries in order
    assert len(got) - len(set(got)) <= 1  # at most the one in flight at the restart went twice
    assert [r.json["id"] for r in rx.got] == got  # the event id in the body too: the idempotency key
    assert {r.json["alarm"]["sensor_id"] for r in rx.got} == {f"e1/d1/ch{i}" for i in range(20)}
    assert health["cursor"] == want[-1] and health["lag_events"] == 0
