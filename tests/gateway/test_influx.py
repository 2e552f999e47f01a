"""The InfluxDB sink: line-protocol escaping, v1 against a real influxd 1.6.7, v2 against a local server.

The v1 write path and every query are tested against the real ``influxd`` of the Debian package
``influxdb`` (1.6.7), started by the ``influxd`` fixture. The v2 write path (influxdb-client's
async API) is tested against a local recording HTTP server only, which checks what the sink sends
(path, org/bucket/precision, token, the exact body, batching) and how it reacts to 204, 429, 503
and 400 answers: no real InfluxDB 2.x or 3.x server was available here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from gateway.batch import Quality, ReadingBatch
from gateway.config import InfluxSection
from gateway.errors import SinkUnavailable, UnknownSensor
from gateway.registry import Registry
from gateway.storage.influx import (
    InfluxSink,
    escape_measurement,
    escape_tag,
    influxql_string,
    line_protocol,
    series_prefix,
)
from gateway.storage.sqlite_store import SqliteStore
from tests.helpers import CH4, district, mqtt_device
from tests.influx_peer import InfluxD

S = 1_000_000_000
T0 = 1_700_000_003 * S + 123_456  # not aligned to any bucket, with sub-ms digits
DB = "gridgate"
GRID1 = "43090300100201"


@pytest.fixture
def reg() -> Registry:
    return Registry(district([
        mqtt_device("e1", "gas", [CH4, {"key": "o2", "kind": "oxygen", "unit": "%VOL"}]),
        mqtt_device("e1", "tank", [{"key": "t1", "kind": "temperature", "unit": "°C"},
                                   {"key": "p1", "kind": "pressure", "unit": "MPa"}]),
        mqtt_device("e2", "gas", [CH4]),
    ]))


def mixed_batch(n_per_sensor: int = 60, sensors: int = 5) -> ReadingBatch:
    """Readings 1 s apart for each sensor, every quality, values that need all digits of repr."""
    rng = np.random.default_rng(7)
    sensor = np.repeat(np.arange(sensors), n_per_sensor)
    ts = T0 + np.tile(np.arange(n_per_sensor), sensors) * S
    value = rng.normal(10.0, 5.0, len(sensor)) / 3.0
    value[:4] = [-0.0, 1e16, 5e-324, 0.1]
    quality = rng.choice([0, 0, 0, 1, 2], len(sensor))
    if n_per_sensor >= 30:
        quality[7:17] = Quality.FAULT  # sensor 0's bucket [T0 + 7 s, T0 + 17 s) has faults only
        value[25] = 1e6  # a fault that would dominate max/mean if it were counted
        quality[25] = Quality.FAULT
    return ReadingBatch.of(sensor, ts, value, quality)


def v1(url: str, bucket: str = DB, token: str = "") -> InfluxSection:
    return InfluxSection(url=url, api="v1", bucket=bucket, token=token)


# -- line protocol ------------------------------------------------------------------------------

ESCAPES = [  # (tag value, as written in line protocol)
    ("plain", "plain"),
    ("with space", r"with\ space"),
    ("a,b", r"a\,b"),
    ("k=v", r"k\=v"),
    ("恒源化工 一号罐", r"恒源化工\ 一号罐"),
    (r"C:\temp", r"C:\temp"),  # a backslash before an ordinary character stays literal
    ("a\\,b", "a\\\\,b"),  # backslash then comma: the comma is escaped, the backslash kept
    ("a\\ b=c", "a\\\\ b\\=c"),
]


@pytest.mark.parametrize(("raw", "escaped"), ESCAPES)
def test_tag_escaping(raw: str, escaped: str) -> None:
    assert escape_tag(raw) == escaped


def test_measurement_prefix_and_line() -> None:
    assert escape_measurement("gas reading,x=1") == r"gas\ reading\,x=1"  # '=' is fine in a measurement
    prefix = series_prefix("combustible_gas", {"point": "ch4", "enterprise": "恒源 化工", "device": "d=1"})
    assert prefix == r"combustible_gas,device=d\=1,enterprise=恒源\ 化工,point=ch4 value="
    batch = ReadingBatch.of([0, 0], [5, 6], [0.1, 1e16], [0, 2])
    assert line_protocol([prefix], batch) == [f"{prefix}0.1,quality=0i 5", f"{prefix}1e+16,quality=2i 6"]
    for bad in ("ends\\", "", "two\nlines"):
        with pytest.raises(ValueError):
            escape_tag(bad)


def test_escaped_lines_round_trip_on_influxd(influxd: InfluxD) -> None:
    influxd.create_database(DB)
    measurement = "odd kind,1"
    lines = [line_protocol([series_prefix(measurement, {"site": raw, "k y": "v"})],
                           ReadingBatch.of([0], [i + 1], [float(i)], [0]))[0] for i, (raw, _) in enumerate(ESCAPES)]
    assert influxd.write(DB, "\n".join(lines)).status_code == 204
    shown = influxd.query('SHOW MEASUREMENTS', db=DB)["results"][0]["series"][0]["values"]
    assert [measurement] in shown
    rows = influxd.query('SELECT "site","k y","value" FROM "odd kind,1"', db=DB)["results"][0]["series"][0]["values"]
    assert [(r[1], r[2], r[3]) for r in rows] == [(raw, "v", i) for i, (raw, _) in enumerate(ESCAPES)]
    for i, (raw, _) in enumerate(ESCAPES):  # the InfluxQL literal escaping finds each one again
        one = influxd.query(f'SELECT "value" FROM "odd kind,1" WHERE "site"={influxql_string(raw)}', db=DB)
        assert one["results"][0]["series"][0]["values"] == [[i + 1, i]], raw


# -- v1 against influxd 1.6.7 -------------------------------------------------------------------

def test_v1_write_and_query_match_sqlite(influxd: InfluxD, reg: Registry, tmp_path: Path) -> None:
    influxd.create_database(DB)
    batch = mixed_batch()
    sqlite = SqliteStore(tmp_path / "r.db", reg)
    sqlite.write(batch)

    async def run() -> None:
        sink = InfluxSink(v1(influxd.url), reg, max_lines=70)  # 300 readings: 5 requests
        assert await sink.ping()
        first = await sink.write(batch)
        again = await sink.write(batch)  # a replay overwrites the same points
        assert first == again and (first.accepted, first.rejected) == (len(batch), 0)
        start, end = T0 + 3 * S, T0 + 47 * S  # both ends are reading timestamps: inclusive
        for s in reg.sensors:
            raw = await sink.query(s.sensor_id, start, end)
            assert raw == sqlite.query(s.sensor_id, start, end) and len(raw) == 45
            for agg in ("mean", "min", "max", "last"):
                got = await sink.query(s.sensor_id, start, end, every_ns=10 * S, agg=agg)
                want = sqlite.query(s.sensor_id, start, end, every_ns=10 * S, agg=agg)
                assert [(p.ts, p.quality) for p in got] == [(p.ts, p.quality) for p in want], (s.sensor_id, agg)
                assert [p.value for p in got] == pytest.approx([p.value for p in want], rel=1e-12, abs=0)
            assert len(await sink.query(s.sensor_id, start, end, limit=7)) == 7
        means = await sink.query("e1/gas/ch4", start, end, every_ns=10 * S)
        assert [p.ts // 1000 for p in means] == [1_700_000_000, 1_700_000_020, 1_700_000_030, 1_700_000_040]
        await sink.close()

    asyncio.run(run())
    assert influxd.count(DB) == len(batch)  # written twice, stored once
    # exact values and ns timestamps, as stored
    rows = influxd.query('SELECT "value","quality","device","enterprise","grid","point" FROM "combustible_gas"'
                         ' WHERE "enterprise"=\'e1\'', db=DB)["results"][0]["series"][0]["values"]
    first = batch.take(batch.sensor == 0)
    assert [r[0] for r in rows] == first.ts.tolist()
    assert [repr(float(r[1])) for r in rows[1:]] == [repr(v) for v in first.value.tolist()[1:]]
    assert [r[2:] for r in rows[:1]] == [[int(first.quality[0]), "gas", "e1", GRID1, "ch4"]]
    sqlite.close()


def test_v1_minus_zero_keeps_its_sign(influxd: InfluxD, reg: Registry) -> None:
    influxd.create_database(DB)

    async def run() -> list[float]:
        sink = InfluxSink(v1(influxd.url), reg)
        await sink.write(ReadingBatch.of([0], [T0], [-0.0]))
        points = await sink.query("e1/gas/ch4", T0, T0)
        await sink.close()
        return [p.value for p in points]

    assert [repr(v) for v in asyncio.run(run())] == ["-0.0"]


def test_v1_rejects_only_the_bad_lines(influxd: InfluxD, reg: Registry) -> None:
    influxd.create_database(DB)
    # "value" becomes a string in the pressure measurement (same shard): every p1 line now conflicts
    assert influxd.write(DB, f'pressure,device=x,enterprise=e9,grid=g,point=y value="oops" {T0}').status_code == 204
    batch = mixed_batch(n_per_sensor=10)
    value = batch.value.copy()
    value[[1, 2]] = [np.nan, np.inf]
    batch = ReadingBatch(batch.sensor, batch.ts, value, batch.quality)
    p1 = reg.sensor_index("e1/tank/p1")  # the pressure sensor

    async def run() -> object:
        sink = InfluxSink(v1(influxd.url), reg)
        try:
            return await sink.write(batch)
        finally:
            await sink.close()

    result = asyncio.run(run())
    assert result.rejected == 2 + 10 and result.accepted == len(batch) - 12
    assert "non_finite (2)" in result.reason and "field_type_conflict" in result.reason
    assert "already exists as type string" in result.reason
    assert int((batch.sensor == p1).sum()) == 10
    assert influxd.count(DB) == len(batch) - 12 + 1  # and the string point written above


def test_v1_down_restarted_and_wrong_database(influxd: InfluxD, reg: Registry) -> None:
    influxd.create_database(DB)
    batch = mixed_batch(n_per_sensor=20)

    async def run() -> None:
        sink = InfluxSink(v1(influxd.url), reg, timeout=2.0)
        assert (await sink.write(batch.take(slice(0, 50)))).accepted == 50
        influxd.kill()
        with pytest.raises(SinkUnavailable, match="unreachable"):
            await sink.write(batch)
        assert not await sink.ping()
        influxd.start()  # same ports, same folder
        assert (await sink.write(batch)).accepted == len(batch)
        influxd.stop()
        with pytest.raises(SinkUnavailable):
            await sink.query("e1/gas/ch4", T0, T0 + 100 * S)
        influxd.start()
        assert len(await sink.query("e1/gas/ch4", T0, T0 + 100 * S)) == 20
        await sink.close()
        wrong = InfluxSink(v1(influxd.url, bucket="nosuchdb"), reg)
        with pytest.raises(SinkUnavailable, match=r"404.*database not found.*check \[storage.influxdb\]"):
            await wrong.write(batch)
        await wrong.close()

    asyncio.run(run())
    assert influxd.count(DB) == len(batch)


# -- against a local recording server (v1 auth, and the whole v2 path) ---------------------------

@dataclass
class Seen:
    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Responder = Callable[[Seen], tuple[int, dict[str, str], bytes]]


class RecordingServer:
    """An HTTP/1.1 server in a thread that records each request and answers with ``responder``."""

    def __init__(self, responder: Responder) -> None:
        self.requests: list[Seen] = []
        self.responder = responder
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = urlsplit(self.path)
                seen = Seen("POST", parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
                outer.requests.append(seen)
                status, headers, payload = outer.responder(seen)
                self.send_response(status)
                for k, v in {"Content-Length": str(len(payload)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def local() -> Iterator[Callable[[Responder], RecordingServer]]:
    servers: list[RecordingServer] = []

    def start(responder: Responder) -> RecordingServer:
        servers.append(RecordingServer(responder))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def ok(_: Seen) -> tuple[int, dict[str, str], bytes]:
    return 204, {}, b""


def v2(url: str) -> InfluxSection:
    return InfluxSection(url=url, api="v2", org="safety", bucket="sensors", token="tok-123")


def write(section: InfluxSection, reg: Registry, batch: ReadingBatch, max_lines: int = 5000) -> object:
    async def run() -> object:
        sink = InfluxSink(section, reg, max_lines=max_lines)
        try:
            return await sink.write(batch)
        finally:
            await sink.close()

    return asyncio.run(run())


def test_v1_request_shape_and_basic_auth(local, reg: Registry) -> None:
    server = local(ok)
    batch = mixed_batch(n_per_sensor=2)
    assert write(v1(server.url, bucket="db1/rp7", token="user:pa:ss"), reg, batch).accepted == len(batch)
    (req,) = server.requests
    assert req.path == "/write" and req.params == {"db": ["db1"], "rp": ["rp7"], "precision": ["ns"]}
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"user:pa:ss").decode()


def test_v2_request_shape_body_and_batching(local, reg: Registry) -> None:
    server = local(ok)
    batch = mixed_batch(n_per_sensor=5)  # 25 readings
    assert write(v2(server.url), reg, batch, max_lines=10).accepted == 25
    assert [len(r.body.split(b"\n")) for r in server.requests] == [10, 10, 5]
    for r in server.requests:
        assert r.path == "/api/v2/write"
        assert r.params == {"org": ["safety"], "bucket": ["sensors"], "precision": ["ns"]}
        assert r.headers["Authorization"] == "Token tok-123"
    want = "\n".join(InfluxSink(v2(server.url), reg).lines(batch)).encode()
    assert b"\n".join(r.body for r in server.requests) == want
    first = server.requests[0].body.decode().split("\n")[0]
    q = int(batch.quality[0])
    assert first == f"combustible_gas,device=gas,enterprise=e1,grid={GRID1},point=ch4 value=-0.0,quality={q}i {T0}"


def test_v2_query_goes_to_influxql_with_the_token(local, reg: Registry) -> None:
    answer = {"results": [{"statement_id": 0, "series": [
        {"name": "temperature", "columns": ["time", "value", "quality"], "values": [[T0, 21.5, 1]]}]}]}
    server = local(lambda _: (200, {"Content-Type": "application/json"}, json.dumps(answer).encode()))

    async def run() -> list:
        sink = InfluxSink(v2(server.url), reg)
        try:
            with pytest.raises(UnknownSensor):
                await sink.query("e1/tank/nope", T0, T0 + S)
            return await sink.query("e1/tank/t1", T0, T0 + S)
        finally:
            await sink.close()

    assert [(p.ts, p.value, p.quality) for p in asyncio.run(run())] == [(T0 // 1_000_000, 21.5, 1)]
    (req,) = server.requests
    assert req.path == "/query" and req.params == {"db": ["sensors"], "epoch": ["ns"]}
    assert req.headers["Authorization"] == "Token tok-123"
    assert parse_qs(req.body.decode())["q"] == [
        'SELECT "value","quality" FROM "temperature" WHERE "enterprise"=\'e1\' AND "device"=\'tank\''
        f' AND "point"=\'t1\' AND time >= {T0}ns AND time <= {T0 + S}ns ORDER BY time ASC LIMIT 100000']


def test_v2_retryable_answers(local, reg: Registry) -> None:
    answers = iter([(429, {"Retry-After": "1"}, b'{"code":"too many requests","message":"slow down"}'),
                    (204, {}, b""),
                    (503, {}, b'{"code":"unavailable","message":"service unavailable"}')])
    server = local(lambda _: next(answers))
    batch = mixed_batch(n_per_sensor=2)
    with pytest.raises(SinkUnavailable, match="429.*slow down") as busy:
        write(v2(server.url), reg, batch)
    assert busy.value.retry_after == 1.0
    assert write(v2(server.url), reg, batch).accepted == len(batch)  # the caller's retry goes through
    with pytest.raises(SinkUnavailable, match="503") as down:
        write(v2(server.url), reg, batch)
    assert down.value.retry_after is None
    assert len(server.requests) == 3


def test_v2_unreachable_and_unauthorized(local, reg: Registry) -> None:
    server = local(lambda _: (401, {}, b'{"code":"unauthorized","message":"unauthorized access"}'))
    with pytest.raises(SinkUnavailable, match=r"401.*unauthorized access.*token"):
        write(v2(server.url), reg, mixed_batch(2))
    url = server.url
    server.close()
    with pytest.raises(SinkUnavailable, match="unreachable"):
        write(v2(url), reg, mixed_batch(2))


def test_v2_bad_line_is_bisected_out(local, reg: Registry) -> None:
    batch = mixed_batch(n_per_sensor=20)  # 100 lines
    bad_ts = str(int(batch.ts[37])).encode()

    def refuse_bad(req: Seen) -> tuple[int, dict[str, str], bytes]:
        # a 2.x-style answer that rejects the whole request and names no count
        if any(line.endswith(b" " + bad_ts) and b"point=o2" in line for line in req.body.split(b"\n")):
            return 400, {"Content-Type": "application/json"}, json.dumps(
                {"code": "invalid", "message": "unable to parse line: bad timestamp"}).encode()
        return 204, {}, b""

    server = local(refuse_bad)
    result = write(v2(server.url), reg, batch, max_lines=60)
    assert (result.accepted, result.rejected) == (99, 1)
    assert result.reason == "unparsable: unable to parse line: bad timestamp (1)"
    stored = [line for r in server.requests if refuse_bad(r)[0] == 204 for line in r.body.split(b"\n")]
    assert len(stored) == 99 and len(set(stored)) == 99
    assert len(server.requests) <= 16  # bisection: about 2 log2(60) requests
