"""The detector reads the outbox at its own durable cursor (issue 8): a batch accepted but not yet
evaluated when the process died is evaluated after the restart, one evaluated is not evaluated
again, and the quota never drops what the detector has not seen. The intake marks a reading outside
its measuring range as a fault before the commit, so every reader of the outbox sees the same one."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

from alerts.evaluation import CONSUMER
from gateway.batch import Quality, ReadingBatch
from gateway.ingest.outbox import Outbox
from gateway.root.runtime import Gateway
from gateway.storage.export import rows, write_csv
from tests.helpers import CH4, district, mqtt_device
from tests.influx_peer import InfluxD

S = 1_000_000_000
CFG = district([mqtt_device("e1", "d1", [CH4, {**CH4, "key": "ch4b"}])])


async def run_until_caught_up(gw: Gateway, batches: list[ReadingBatch] = ()) -> list[tuple[str, str, str]]:
    """Run the gateway, submit ``batches``, wait until the detector and the SQLite sink caught up
    with the outbox; the events booked meanwhile."""
    runner = asyncio.create_task(gw.run())
    await gw.started.wait()
    before = gw.book.last_event_id()
    for b in batches:
        await gw.intake.submit(b)
    deadline = time.monotonic() + 10
    while (not gw.evaluation.caught_up or gw.storage.drainers["sqlite"].outbox.backlog("sqlite")[0]) \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert gw.evaluation.caught_up, gw.evaluation.health()
    events = [(e.type, e.alarm.sensor_id, e.alarm.level) for e in gw.book.events_since(before, None)]
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    return events


def test_a_batch_committed_but_not_evaluated_is_evaluated_after_a_restart(tmp_path: Path) -> None:
    t = time.time_ns()
    # The process "died" right after the commit: the batch is in the outbox, the book has not seen it.
    gw = Gateway(CFG, data_dir=tmp_path, collectors=False)
    gw.storage.outbox.append(ReadingBatch.of([0, 1], [t, t], [62.0, 1.0]))
    assert gw.book.cursor(CONSUMER) is None
    gw.book.close()
    gw.storage.outbox.close()

    got = asyncio.run(run_until_caught_up(Gateway(CFG, data_dir=tmp_path, collectors=False)))
    assert got == [("raised", "e1/d1/ch4", "high_high")]
    gw = Gateway(CFG, data_dir=tmp_path, collectors=False)
    assert gw.book.cursor(CONSUMER) == gw.storage.outbox.last_seq  # the cursor was committed with the book
    assert gw.store.count("e1/d1/ch4") == 1  # and the sink stored it too
    # a third start evaluates nothing again: the same reading is not a second raise
    assert asyncio.run(run_until_caught_up(gw)) == []


def test_a_batch_evaluated_into_the_book_is_not_evaluated_again(tmp_path: Path) -> None:
    """The book's cursor is the authority: a crash between the book's commit and the outbox's copy
    of the cursor does not evaluate the batch twice."""
    t = time.time_ns()
    gw = Gateway(CFG, data_dir=tmp_path, collectors=False)
    gw.storage.outbox.append(ReadingBatch.of([0], [t], [62.0]))
    seq = gw.storage.outbox.last_seq
    gw.evaluation.evaluate(ReadingBatch.of([0], [t], [62.0]), seq)  # booked; the outbox never told
    assert gw.storage.outbox.cursor(CONSUMER) < seq
    gw.book.close()
    gw.storage.outbox.close()
    # after the restart the gas is gone: exactly one clear, no second raise of the replayed 62 %LEL
    got = asyncio.run(run_until_caught_up(Gateway(CFG, data_dir=tmp_path, collectors=False),
                                          [ReadingBatch.of([0], [t + S], [1.0])]))
    assert got == [("cleared", "e1/d1/ch4", "high_high")]


def test_the_quota_drops_for_the_sinks_never_for_the_detector(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "outbox.db", ["sqlite"], max_bytes=21 * 250, keep=[CONSUMER])
    t = time.time_ns()
    for i in range(4):  # 100 readings (2,100 bytes) each: the quota holds two of them
        ob.append(ReadingBatch.of(list(range(100)), [t + i] * 100, [float(i)] * 100))
    assert ob.dropped_batches == 0  # the detector has confirmed nothing: nothing may go
    ob.confirm(CONSUMER, 2)  # the detector evaluated the first two batches, the sink none
    report = ob.append(ReadingBatch.of(list(range(100)), [t + 4] * 100, [4.0] * 100))
    assert report is not None and report.batches == 2 and report.lost_by_sink == {"sqlite": 200}
    assert ob.read(CONSUMER, 10_000).batch.value[0] == 2.0  # the detector still has its next batch
    ob.close()


def test_a_reading_outside_its_range_is_stored_as_a_fault_everywhere(tmp_path: Path, influxd: InfluxD) -> None:
    influxd.create_database("range")
    cfg = district([mqtt_device("e1", "d1", [CH4])],
                   storage={"backend": "influxdb", "influxdb": {"url": influxd.url, "api": "v1", "bucket": "range"}})
    t0 = (time.time_ns() // (10 * S) - 10) * 10 * S  # one 10 s bucket holds all three
    values = [10.0, 130.0, 20.0]  # 130 %LEL on a 0-100 %LEL detector cannot be a measurement

    async def scenario() -> tuple[list, list, list]:
        gw = Gateway(cfg, data_dir=tmp_path, collectors=False)
        runner = asyncio.create_task(gw.run())
        await gw.started.wait()
        await gw.intake.submit(ReadingBatch.of([0, 0, 0], [t0, t0 + S, t0 + 2 * S], values))
        deadline = time.monotonic() + 15
        while min(d.written for d in gw.storage.drainers.values()) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        sqlite = [(p.value, p.quality) for p in gw.store.query("e1/d1/ch4", t0, t0 + 10 * S)]
        mean = [(p.ts, p.value) for p in gw.store.query("e1/d1/ch4", t0, t0 + 10 * S, every_ns=10 * S)]
        influx = [(p.value, p.quality) for p in await gw.storage.influx.query("e1/d1/ch4", t0, t0 + 10 * S)]
        influx_mean = [p.value for p in await gw.storage.influx.query("e1/d1/ch4", t0, t0 + 10 * S, 10 * S)]
        events = [(e.type, e.alarm.kind) for e in gw.book.events_since(0, None)]
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return [sqlite, influx, events], mean, influx_mean

    (sqlite, influx, events), mean, influx_mean = asyncio.run(scenario())
    stored = [(10.0, Quality.GOOD), (130.0, Quality.FAULT), (20.0, Quality.GOOD)]
    assert sqlite == stored and influx == stored
    assert [v for _, v in mean] == [15.0] and influx_mean == [15.0]  # the fault is not averaged in
    assert events == [("raised", "fault"), ("cleared", "fault")]  # the detector saw the same fault
    out = io.StringIO()
    write_csv(out, rows(tmp_path / "readings.db", "e1/d1/ch4", t0, t0 + 10 * S))
    assert [line.rsplit(",", 2)[1:] for line in out.getvalue().splitlines()[1:]] == [
        ["10.0", "good"], ["130.0", "fault"], ["20.0", "good"]]
