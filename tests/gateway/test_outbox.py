"""The outbox: per-sink cursors, replay after a restart, the quota and its accounting."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from gateway.batch import ReadingBatch
from gateway.ingest.outbox import BYTES_PER_READING, Outbox
from gateway.root.runtime import Gateway
from tests.helpers import CH4, district, mqtt_device
from tests.peers import free_port

S = 1_000_000_000


def batch(start: int, n: int, sensor: int = 0) -> ReadingBatch:
    ts = (np.arange(n, dtype=np.int64) + start) * S
    return ReadingBatch.of(np.full(n, sensor), ts, np.arange(n, dtype=np.float64) + start)


def test_sinks_lag_independently_and_rows_go_when_all_confirmed(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", ["sqlite", "influxdb"], 10**9)
    for k in range(5):
        ob.append(batch(k * 10, 10))
    a = ob.read("sqlite", 25)
    assert a is not None and len(a.batch) == 20  # whole batches, up to about the size asked
    ob.confirm("sqlite", a.last_seq)
    assert ob.backlog("sqlite")[0] == 30 and ob.backlog("influxdb")[0] == 50
    assert ob.readings == 50  # nothing deleted: influxdb still needs all of it
    b = ob.read("influxdb", 1000)
    assert b is not None and b.batch.ts.tolist() == (np.arange(50) * S).tolist()  # in order
    ob.confirm("influxdb", b.last_seq)
    assert ob.readings == 30 and ob.backlog("influxdb") == (0, None)
    rest = ob.read("sqlite", 1000)
    assert rest is not None and rest.batch.value.tolist() == list(range(20, 50))
    ob.confirm("sqlite", rest.last_seq)
    assert ob.readings == 0 and ob.size == 0 and ob.read("sqlite", 10) is None


def test_unconfirmed_batches_replay_after_reopen(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", ["sqlite"], 10**9)
    ob.append(batch(0, 10))
    ob.append(batch(10, 10))
    first = ob.read("sqlite", 10)
    assert first is not None
    ob.confirm("sqlite", first.last_seq)
    ob.append(batch(20, 5))
    ob.close()  # a crash after this point loses nothing that was appended
    ob = Outbox(tmp_path / "o.db", ["sqlite"], 10**9)
    again = ob.read("sqlite", 1000)
    assert again is not None and again.batch.value.tolist() == list(range(10, 25))
    assert ob.readings == 15


def test_the_tail_in_memory_reads_as_the_file_and_falls_back_when_behind(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", ["sqlite"], 10**9, tail_readings=30)
    assert ob.read_tail(0, 100) is None  # nothing accepted yet
    for k in range(6):
        ob.append(batch(k * 10, 10))
    # 30 readings are kept: batches 4..6; a reader after 3 is served from memory, as from the file
    mem = ob.read_tail(3, 100)
    assert mem is not False and mem is not None and mem.last_seq == 6
    assert mem.batch.value.tolist() == list(range(30, 60))
    part = ob.read_tail(3, 20)
    assert part and (part.last_seq, len(part.batch)) == (5, 20)  # whole batches, as read() gives them
    last = ob.read_tail(5, 100)
    assert last and not last.batch.value.flags.writeable  # shared with every reader: nobody may change it
    mine = batch(60, 10)
    ob.append(mine)
    mine.value[:] = -1.0  # the caller's arrays are its own: the tail holds what was committed
    newest = ob.read_tail(6, 100)
    assert newest and newest.batch.value.tolist() == list(range(60, 70))
    assert ob.read_tail(7, 100) is None  # caught up
    assert ob.read_tail(1, 100) is False  # behind the tail: read the file
    older = ob.read("sqlite", 100, after=1)
    assert older is not None and older.batch.value.tolist() == list(range(10, 70))
    ob.close()
    reopened = Outbox(tmp_path / "o.db", ["sqlite"], 10**9)
    assert reopened.read_tail(3, 100) is False  # a new process has an empty tail: the file has it all
    again = reopened.read("sqlite", 100, after=3)
    assert again is not None and again.batch.value.tolist() == list(range(30, 70))


def test_a_quota_drop_leaves_the_tail_too(tmp_path: Path) -> None:
    per_batch = 100 * BYTES_PER_READING
    ob = Outbox(tmp_path / "o.db", ["sqlite"], 2 * per_batch + 10)
    for k in range(3):
        ob.append(batch(k * 100, 100))
    # the first batch went over the quota: neither the file nor the tail gives it again
    assert ob.read_tail(0, 10**6) is False
    rest = ob.read("sqlite", 10**6)
    assert rest is not None and rest.batch.ts[0] == 100 * S


def test_quota_drops_oldest_and_reports(tmp_path: Path) -> None:
    per_batch = 100 * BYTES_PER_READING
    ob = Outbox(tmp_path / "o.db", ["sqlite", "influxdb"], 3 * per_batch + 10)
    reports = [ob.append(batch(k * 100, 100)) for k in range(3)]
    assert reports == [None, None, None]
    drop = ob.append(batch(300, 100))
    assert drop is not None and (drop.batches, drop.readings) == (1, 100)
    assert (drop.t_min, drop.t_max) == (0, 99 * S)  # the time span that was lost
    assert ob.dropped_readings == 100 and ob.size <= ob.max_bytes
    pending = ob.read("influxdb", 10**6)
    assert pending is not None and pending.batch.ts[0] == 100 * S  # continues after the hole
    ob.close()
    assert Outbox(tmp_path / "o.db", ["sqlite", "influxdb"], 10**9).dropped_readings == 100


def test_quota_never_drops_the_batch_just_accepted(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", ["sqlite"], 10)  # smaller than one batch
    assert ob.append(batch(0, 100)) is None and ob.readings == 100  # alone over the quota, kept
    drop = ob.append(batch(100, 100))
    assert drop is not None and drop.readings == 100 and ob.readings == 100


def test_sqlite_keeps_up_while_influxdb_is_unreachable(tmp_path: Path) -> None:
    """A real InfluxSink at a closed port: it fails and keeps its backlog; SQLite does not wait."""
    cfg = district([mqtt_device("e1", "d1", [CH4])], storage={
        "backend": "influxdb", "influxdb": {"url": f"http://127.0.0.1:{free_port()}", "api": "v1", "bucket": "x"}})

    async def scenario() -> dict:
        gw = Gateway(cfg, data_dir=tmp_path, collectors=False)
        runner = asyncio.create_task(gw.run())
        await gw.started.wait()
        for k in range(20):
            await gw.intake.submit(batch(k * 50, 50))
        deadline = time.monotonic() + 10
        while (gw.stored < 1000 or gw.health()["storage"]["sinks"]["influxdb"]["state"] != "failing") \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        health = gw.health()["storage"]
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return health

    health = asyncio.run(scenario())
    assert health["sinks"]["sqlite"]["written"] == 1000 and health["sinks"]["sqlite"]["backlog_readings"] == 0
    influx = health["sinks"]["influxdb"]
    assert influx["state"] == "failing" and influx["backlog_readings"] == 1000 and influx["last_error"]
    # the backlog survives the stop: a later start replays it to InfluxDB
    assert Outbox(tmp_path / "outbox.db", ["sqlite", "influxdb"], 10**9).backlog("influxdb")[0] == 1000


def test_a_batch_that_cannot_be_settled_fails_its_submitter_only(tmp_path: Path) -> None:
    """The committer settles a group of batches at once; one bad batch among them (a sensor index
    the registry does not have: a collector's bug) is refused to its own submitter, the others are
    committed, evaluated and stored, and the pipeline goes on."""
    cfg = district([mqtt_device("e1", "d1", [CH4])])

    async def scenario() -> tuple[list, int, int]:
        gw = Gateway(cfg, data_dir=tmp_path, collectors=False)
        runner = asyncio.create_task(gw.run())
        await gw.started.wait()
        bad = ReadingBatch.of([99], [5 * S], [1.0])  # only sensor 0 exists
        results = await asyncio.wait_for(asyncio.gather(
            gw.intake.submit(batch(0, 3)), gw.intake.submit(bad), gw.intake.submit(batch(3, 3)),
            return_exceptions=True), 10)
        await asyncio.wait_for(gw.intake.submit(batch(6, 3)), 10)  # and later ones still go through
        deadline = time.monotonic() + 10
        while (gw.stored < 9 or gw.evaluated < 9) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stored, evaluated = gw.stored, gw.evaluated
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return results, stored, evaluated

    results, stored, evaluated = asyncio.run(scenario())
    assert results[0] is None and results[2] is None and isinstance(results[1], IndexError)
    assert (stored, evaluated) == (9, 9)
