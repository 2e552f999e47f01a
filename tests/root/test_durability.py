"""Fault tests with real processes, counting exactly: no accepted reading is ever lost (issue 3).

Each test runs ``gridgate run -c FILE`` as a subprocess against a real Mosquitto (persistence on)
and a real InfluxDB 1.x (``[storage] backend = "influxdb"``, v1 ``/write``), streams a known set
of readings over MQTT QoS 1 with a publisher that waits for every PUBACK (so the sent set is exactly
known), injects one fault mid-stream, and then waits (with deadlines) until the counts settle:

1. InfluxDB SIGKILLed for 20 s and restarted on the same ports and folder;
2. the gateway SIGKILLed and restarted on the same data_dir while the publisher keeps going;
3. the MQTT broker restarted;
4. the outbox quota (1 MB) reached while InfluxDB is down.

Every reading is a distinct (sensor, ts): one device with 10 points (two measurements, so two
InfluxDB measurements are counted), one message per unique, increasing millisecond timestamp,
and the value encodes the message index, so the checks compare the exact sets of (ts, value) per
sensor in SQLite and in InfluxDB, not only their sizes.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.storage.chunk_tables import count_readings, every_series, layout_width
from tests.helpers import wait_for
from tests.influx_peer import InfluxD
from tests.peers import Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[2]
ENT, DEV = "hengyuan-chem", "tank-farm"
TOPIC = f"gridgate/v1/{ENT}/{DEV}/telemetry"
DB = "gridgate"
# 5 temperature and 5 pressure points: two InfluxDB measurements, each counted on its own
POINTS = [(f"t{j}", "temperature", "°C") for j in range(5)] + [(f"p{j}", "pressure", "kPa") for j in range(5)]
KINDS = ("temperature", "pressure")
ADMIN, PASSWORD = "root", "durable"


def value_of(i: int, j: int) -> float:
    """The value point ``j`` carries in message ``i``: exact in binary, so it round-trips everywhere."""
    return float(i % 4096) + j / 8


# -- the gateway process ------------------------------------------------------------------------

def config_text(mqtt_url: str, influx_url: str, api_port: int, data_dir: Path, outbox_max_mb: int) -> str:
    from argon2 import PasswordHasher

    h = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)  # a cheap test login
    points = "\n".join(f'[[devices.points]]\nkey = "{k}"\nkind = "{kind}"\nunit = "{unit}"\n'
                       for k, kind, unit in POINTS)
    return f"""
[gateway]
id = "durability"
data_dir = "{data_dir}"

[mqtt]
url = "{mqtt_url}"
client_id = "gridgate-durability"

[api]
listen = "127.0.0.1:{api_port}"

[storage]
backend = "influxdb"
outbox_max_mb = {outbox_max_mb}

[storage.influxdb]
url = "{influx_url}"
api = "v1"
bucket = "{DB}"

[[users]]
username = "{ADMIN}"
password_hash = "{h}"
role = "admin"

[[departments]]
id = "yjj"
name = "应急管理局"

[[officers]]
id = "zhang"
name = "张伟"

[[grids]]
id = "43090300100201"
name = "龙岭村网格"
area = "430903001002"
officers = ["zhang"]

[[enterprises]]
id = "{ENT}"
name = "恒源化工"
grid = "43090300100201"
lead_department = "yjj"

[[devices]]
enterprise = "{ENT}"
id = "{DEV}"
protocol = "mqtt"

{points}
"""


class Gateway:
    """``gridgate run -c FILE`` as a subprocess, with its API and its SQLite files."""

    def __init__(self, folder: Path, mosquitto: Mosquitto, influxd: InfluxD, outbox_max_mb: int = 1024) -> None:
        self.folder = folder
        self.data_dir = folder / "data"
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}/api/v1"
        self.cfg = folder / "gridgate.toml"
        self.cfg.write_text(config_text(mosquitto.url, influxd.url, self.api_port, self.data_dir, outbox_max_mb),
                            encoding="utf-8")
        self.log = folder / "gridgate.log"
        self.proc: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.api, timeout=5)
        self.token = ""

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway.root.cli", "run", "-c", str(self.cfg)],
                                         cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.token = wait_for(self._login, 30, "the gateway's API and login")
        # The broker must know the gateway's persistent session before anything is published.
        wait_for(lambda: self.health()["collectors"]["mqtt"]["subscribed"], 20, "the MQTT collector's subscription")

    def _login(self) -> str | None:
        assert self.proc is not None and self.proc.poll() is None, f"gridgate run exited; see {self.log}"
        try:
            r = self.http.post("/auth/token", data={"username": ADMIN, "password": PASSWORD}, timeout=1)
        except httpx.HTTPError:
            return None
        return r.json()["access_token"] if r.status_code == 200 else None

    def health(self) -> dict:
        r = self.http.get("/healthz", headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        return r.json()

    def sink(self, name: str) -> dict:
        return self.health()["storage"]["sinks"][name]

    def get(self, path: str, **params: Any) -> httpx.Response:
        r = self.http.get(path, params=params, headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        return r

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM: the gateway drains and exits 0."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0, f"gridgate run did not exit cleanly; see {self.log}"
        self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.http.close()

    # -- what SQLite holds (read on the side: WAL lets us read while the gateway writes) --------

    def _sqlite(self) -> contextlib.closing[sqlite3.Connection]:
        return contextlib.closing(sqlite3.connect(f"file:{self.data_dir / 'readings.db'}?mode=ro", uri=True,
                                                  timeout=5))

    def sqlite_count(self) -> int:
        if not (self.data_dir / "readings.db").exists():
            return 0
        with self._sqlite() as db:
            try:
                return count_readings(db, layout_width(db))
            except sqlite3.OperationalError:  # the schema is not there yet
                return 0

    def sqlite_series(self) -> dict[str, dict[int, float]]:
        """Per point key: {ts in ms: value}, everything SQLite holds."""
        out: dict[str, dict[int, float]] = {}
        with self._sqlite() as db:
            rows = [(sensor_id, ts, value) for sensor_id, r in every_series(db).items()
                    for ts, value in zip(r.ts.tolist(), r.value.tolist(), strict=True)]
            for sensor_id, ts, value in rows:
                ent, dev, key = sensor_id.split("/")
                assert (ent, dev) == (ENT, DEV), sensor_id
                assert ts % 1_000_000 == 0, ts
                out.setdefault(key, {})[ts // 1_000_000] = value
        return out


# -- InfluxDB counts --------------------------------------------------------------------------

def influx_counts(influxd: InfluxD) -> dict[tuple[str, str], int]:
    """Points per (measurement, field) in the gridgate database."""
    out: dict[tuple[str, str], int] = {}
    for m in KINDS:
        answer = influxd.query(f'SELECT COUNT("value"), COUNT("quality") FROM "{m}"', db=DB)
        series = answer["results"][0].get("series", [])
        row = series[0]["values"][0] if series else [0, 0, 0]
        out[(m, "value")], out[(m, "quality")] = int(row[1]), int(row[2])
    return out


def influx_total(influxd: InfluxD) -> int:
    """Points in InfluxDB, the smallest count over every (measurement, field) scaled to the whole set.

    Each measurement holds half of the points; the minimum over fields is what is surely there.
    """
    counts = influx_counts(influxd)
    return sum(min(counts[(m, "value")], counts[(m, "quality")]) for m in KINDS)


def influx_series(influxd: InfluxD) -> dict[str, dict[int, float]]:
    """Per point key: {ts in ms: value}, everything InfluxDB holds (every field checked for presence)."""
    out: dict[str, dict[int, float]] = {}
    for m in KINDS:
        answer = influxd.query(f'SELECT "value", "quality", "enterprise", "device" FROM "{m}" GROUP BY "point"',
                               db=DB, epoch="ms")
        for series in answer["results"][0].get("series", []):
            key = series["tags"]["point"]
            assert series["columns"] == ["time", "value", "quality", "enterprise", "device"]
            for ts, value, quality, ent, dev in series["values"]:
                assert (ent, dev, quality) == (ENT, DEV, 0), (ent, dev, quality)
                assert ts not in out.setdefault(key, {}), f"{key} at {ts} twice"
                out[key][ts] = value
    return out


def expected_series(base_ms: int, indexes: range) -> dict[str, dict[int, float]]:
    return {k: {base_ms + i: value_of(i, j) for i in indexes} for j, (k, _, _) in enumerate(POINTS)}


def assert_same_series(what: str, got: dict[str, dict[int, float]], want: dict[str, dict[int, float]]) -> None:
    assert sorted(got) == sorted(want), f"{what}: points {sorted(got)} != {sorted(want)}"
    for key in want:
        g, w = got[key], want[key]
        if g != w:
            missing, extra = sorted(set(w) - set(g)), sorted(set(g) - set(w))
            wrong = [ts for ts in set(g) & set(w) if g[ts] != w[ts]][:5]
            raise AssertionError(f"{what} {key}: {len(g)} readings, want {len(w)}; missing {len(missing)}"
                                 f" {missing[:5]}, unexpected {len(extra)} {extra[:5]}, wrong values at {wrong}")


# -- the publisher ----------------------------------------------------------------------------

@dataclass
class Publisher:
    """Publishes messages 0..n-1 at ``rate``/s, QoS 1, each one only after the previous one's PUBACK.

    A persistent session (``clean_session=False``, fixed client id): paho keeps an unacknowledged
    message across a reconnect and resends it, so each message is waited for until the broker
    acknowledged it; ``acked`` is then exactly the sent set. Runs in its own thread.
    """

    port: int
    n: int
    rate: float
    base_ms: int
    client_id: str
    acked: int = 0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    ack_timeout: float = 60.0

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._acks: set[int] = set()
        self.thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: Any, props: Any) -> None:
        with self._cond:
            self._acks.add(mid)
            self._cond.notify_all()

    @property
    def readings(self) -> int:
        return self.acked * len(POINTS)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False,
                             protocol=mqtt.MQTTv311)
        client.on_publish = self._on_publish
        client.reconnect_delay_set(0.1, 1.0)
        client.max_inflight_messages_set(1)
        try:
            client.connect_async("127.0.0.1", self.port, keepalive=10)
            client.loop_start()
            t0 = time.monotonic()
            for i in range(self.n):
                if self.stop.is_set():
                    return
                delay = t0 + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # the stream's pace
                payload = orjson.dumps({"ts": self.base_ms + i,
                                        "values": {k: value_of(i, j) for j, (k, _, _) in enumerate(POINTS)}})
                info = client.publish(TOPIC, payload, qos=1)  # queued even while disconnected
                deadline = time.monotonic() + self.ack_timeout
                with self._cond:
                    while info.mid not in self._acks:
                        if time.monotonic() > deadline or self.stop.is_set():
                            raise TimeoutError(f"message {i} not acknowledged within {self.ack_timeout} s")
                        self._cond.wait(0.1)
                    self._acks.discard(info.mid)
                self.acked = i + 1
        except BaseException as exc:
            self.error = exc
        finally:
            client.disconnect()
            client.loop_stop()
            self.done.set()

    def join(self, timeout: float) -> None:
        assert self.done.wait(timeout), f"publisher did not finish in {timeout} s ({self.acked}/{self.n} acked)"
        self.thread.join(5)
        assert self.error is None, f"publisher failed: {self.error!r}"
        assert self.acked == self.n

    def wait_acked(self, count: int, timeout: float) -> None:
        wait_for(lambda: self.acked >= count or self.done.is_set(), timeout, f"{count} messages acknowledged")
        assert self.error is None, f"publisher failed: {self.error!r}"

    def close(self) -> None:
        self.stop.set()
        self.done.wait(10)
        self.thread.join(5)


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxD) -> Iterator[Callable[..., Gateway]]:
    """Makes the gateway (not started) on a fresh InfluxDB database; closes it after the test."""
    made: list[Gateway] = []

    def make(outbox_max_mb: int = 1024) -> Gateway:
        influxd.create_database(DB)
        gw = Gateway(tmp_path, mosquitto, influxd, outbox_max_mb)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()


@pytest.fixture
def publishers() -> Iterator[Callable[..., Publisher]]:
    made: list[Publisher] = []

    def make(port: int, n: int, rate: float) -> Publisher:
        pub = Publisher(port, n, rate, base_ms=int(time.time() * 1000) - n, client_id=f"durability-pub-{len(made)}")
        made.append(pub)
        return pub

    yield make
    for pub in made:
        pub.close()


def settle(gw: Gateway, influxd: InfluxD, n_sqlite: int, n_influx: int, timeout: float) -> None:
    """Wait until both stores hold their expected counts and no sink has a backlog."""
    wait_for(lambda: gw.sqlite_count() >= n_sqlite, timeout, f"{n_sqlite} readings in SQLite")
    wait_for(lambda: influx_total(influxd) >= n_influx, timeout, f"{n_influx} points in InfluxDB", interval=0.5)

    def drained() -> bool:
        sinks = gw.health()["storage"]["sinks"]
        return all(s["state"] == "ok" and s["backlog_readings"] == 0 for s in sinks.values())

    wait_for(drained, timeout, "every sink ok with no backlog")


def check_all_once(gw: Gateway, influxd: InfluxD, pub: Publisher) -> None:
    want = expected_series(pub.base_ms, range(pub.n))
    n = pub.n * len(POINTS)
    assert gw.sqlite_count() == n
    assert_same_series("SQLite", gw.sqlite_series(), want)
    half = n // 2
    assert influx_counts(influxd) == {(m, f): half for m in KINDS for f in ("value", "quality")}
    assert_same_series("InfluxDB", influx_series(influxd), want)


# -- the tests --------------------------------------------------------------------------------

def test_influxdb_killed_for_20s_and_restarted(rig: Callable[..., Gateway], mosquitto: Mosquitto,
                                               influxd: InfluxD, publishers: Callable[..., Publisher]) -> None:
    gw = rig()
    gw.start()
    pub = publishers(mosquitto.port, n=10_500, rate=300)  # 35 s of stream, 105,000 readings
    pub.start()
    pub.wait_acked(1500, 30)
    wait_for(lambda: influx_total(influxd) > 0, 10, "points in InfluxDB before the kill")

    influxd.kill()
    killed_at = time.monotonic()
    sqlite_at_kill, acked_at_kill = gw.sqlite_count(), pub.readings
    failing = wait_for(lambda: (s := gw.sink("influxdb"))["state"] == "failing" and s["backlog_readings"] > 0 and s,
                       15, "the influxdb sink failing with a backlog")
    assert failing["last_error"] and failing["failures"] >= 1
    assert gw.sink("sqlite")["state"] == "ok"
    time.sleep(max(0.0, 20 - (time.monotonic() - killed_at)))  # the outage lasts its 20 s
    sqlite_at_restart, acked_at_restart = gw.sqlite_count(), pub.readings
    during = gw.sink("influxdb")
    assert during["state"] == "failing"
    assert during["backlog_readings"] >= acked_at_restart - acked_at_kill - 3000 > 0
    # SQLite kept up: it stored (almost) everything published during the outage
    published = acked_at_restart - acked_at_kill
    assert sqlite_at_restart - sqlite_at_kill >= 0.9 * published, (sqlite_at_kill, sqlite_at_restart, published)
    # ... and is not behind: within 2 s of the publisher (3,000 readings/s). The sink commits in
    # groups, so its lag at an instant is up to about a second and a bit (the soak sees up to 1.3 s);
    # a sink held up by the outage would be 20 s (60,000 readings) behind.
    assert sqlite_at_restart >= acked_at_restart - 2 * 3000, (sqlite_at_restart, acked_at_restart)
    print(f"influx outage: {published} readings published, SQLite +{sqlite_at_restart - sqlite_at_kill},"
          f" InfluxDB backlog {during['backlog_readings']}, {during['failures']} failed writes")

    influxd.start()
    pub.join(60)
    n = pub.n * len(POINTS)
    settle(gw, influxd, n, n, 60)
    after = gw.sink("influxdb")
    assert after["state"] == "ok" and after["backlog_readings"] == 0
    check_all_once(gw, influxd, pub)
    assert gw.health()["storage"]["outbox"]["dropped_readings"] == 0
    gw.stop()


def test_gateway_sigkilled_and_restarted(rig: Callable[..., Gateway], mosquitto: Mosquitto, influxd: InfluxD,
                                         publishers: Callable[..., Publisher]) -> None:
    gw = rig()
    gw.start()
    pub = publishers(mosquitto.port, n=9_000, rate=300)  # 30 s of stream, 90,000 readings
    pub.start()
    pub.wait_acked(2400, 30)
    wait_for(lambda: gw.sqlite_count() > 0 and influx_total(influxd) > 0, 10, "readings in both stores before the kill")

    gw.kill()
    acked_at_kill = pub.acked
    time.sleep(5)  # the gateway stays down for 5 s
    assert pub.acked > acked_at_kill, "the publisher stopped while the gateway was down"
    gw.start()  # same data_dir, same MQTT client id: the broker hands over what it queued

    pub.join(60)
    n = pub.n * len(POINTS)
    settle(gw, influxd, n, n, 45)
    check_all_once(gw, influxd, pub)
    outbox = gw.health()["storage"]["outbox"]
    assert outbox["dropped_readings"] == 0 and outbox["readings"] == 0
    gw.stop()


def test_mqtt_broker_restarted(rig: Callable[..., Gateway], mosquitto: Mosquitto, influxd: InfluxD,
                               publishers: Callable[..., Publisher]) -> None:
    gw = rig()
    gw.start()
    pub = publishers(mosquitto.port, n=9_000, rate=300)  # 30 s of stream, 90,000 readings
    pub.start()
    pub.wait_acked(3000, 30)

    mosquitto.restart()  # SIGTERM (it saves its persistence file), then a start on the same port
    assert (mosquitto.folder / "mosquitto.db").exists(), "Mosquitto did not save its sessions"
    wait_for(lambda: (m := gw.health()["collectors"]["mqtt"])["reconnects"] >= 1 and m["subscribed"], 20,
             "the collector reconnected and subscribed")
    assert "(session present: True)" in gw.log.read_text(), "the broker forgot the gateway's session"

    pub.join(60)
    n = pub.n * len(POINTS)
    settle(gw, influxd, n, n, 45)
    check_all_once(gw, influxd, pub)
    assert gw.health()["storage"]["outbox"]["dropped_readings"] == 0
    gw.stop()


LOSS = re.compile(r"outbox quota \(1 MB\) reached: dropped (\d+) readings \(\d+ batches\) from (\S+) to (\S+); "
                  r"readings lost per sink: influxdb (\d+)(?:, sqlite \d+)?; "
                  r"(\d+) dropped since the outbox was created")


def test_outbox_quota_reached(rig: Callable[..., Gateway], mosquitto: Mosquitto, influxd: InfluxD,
                              publishers: Callable[..., Publisher]) -> None:
    gw = rig(outbox_max_mb=1)
    gw.start()
    influxd.kill()  # down from the start of the stream
    # 7,000 messages at 400/s: 70,000 readings, about 1.47 MB in the outbox (21 bytes each) against 1 MB
    pub = publishers(mosquitto.port, n=7_000, rate=400)
    pub.start()
    wait_for(lambda: gw.health()["storage"]["outbox"]["dropped_readings"] > 0, 40, "the outbox dropping")
    pub.join(40)
    n = pub.n * len(POINTS)
    # SQLite confirms within a fraction of a second, long before a batch becomes the oldest: it lost nothing
    wait_for(lambda: gw.sqlite_count() >= n, 20, f"{n} readings in SQLite")
    wait_for(lambda: gw.sink("sqlite")["backlog_readings"] == 0, 20, "the sqlite sink drained")

    outbox = gw.health()["storage"]["outbox"]
    dropped = outbox["dropped_readings"]
    assert outbox["dropped_batches"] >= 1
    # "losing" ends (and the alarm returns to normal) once a confirm finds the outbox under 90 % of the
    # quota; SQLite's last confirm came after the last append, and InfluxDB confirms nothing while down
    still_over = outbox["bytes"] >= 0.9 * outbox["max_bytes"]
    assert outbox["losing"] is still_over
    assert 0 < dropped < n and dropped % len(POINTS) == 0  # whole messages, whole batches
    assert outbox["bytes"] <= outbox["max_bytes"] == 2**20
    assert outbox["readings"] == n - dropped == gw.sink("influxdb")["backlog_readings"]
    metrics = gw.http.get("/metrics", headers={"Authorization": f"Bearer {gw.token}"}).text
    assert f"gridgate_outbox_dropped_readings_total {float(dropped)}" in metrics.splitlines()

    def loss_alarms() -> list[dict]:
        return [a for a in gw.get("/alarms").json() if a["kind"] == "system" and a["level"] == "data_loss"]

    # the alarm is raised at the first drop and its count brought up to date within a second
    wait_for(lambda: [a["value"] for a in loss_alarms()] == [dropped], 10, "the data_loss alarm counting every drop")
    alarms = loss_alarms()
    assert len(alarms) == 1, alarms
    alarm = alarms[0]
    state = "unacknowledged" if still_over else "rtn_unacknowledged"
    assert (alarm["sensor_id"], alarm["enterprise"], alarm["state"]) == ("gateway/outbox", "", state)
    assert alarm["value"] == dropped
    m = LOSS.fullmatch(alarm["reason"])
    assert m, alarm["reason"]
    # one episode: all that was dropped, and all of it lost by InfluxDB (SQLite had stored it already)
    assert int(m.group(1)) == int(m.group(4)) == int(m.group(5)) == dropped
    first_s, last_s = pub.base_ms // 1000, (pub.base_ms + pub.n - 1) // 1000
    span = [int(datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()) for t in m.groups()[1:3]]
    assert first_s <= span[0] <= span[1] <= last_s, (span, first_s, last_s)
    print(f"quota: {n} readings sent, {dropped} dropped in {outbox['dropped_batches']} batches, outbox"
          f" {outbox['bytes']} bytes, alarm {alarm['state']}: {alarm['reason']}")

    assert_same_series("SQLite", gw.sqlite_series(), expected_series(pub.base_ms, range(pub.n)))

    influxd.start()
    settle(gw, influxd, n, n - dropped, 60)
    # InfluxDB lost exactly the dropped readings, and they were the oldest messages: it holds the rest
    kept = range(dropped // len(POINTS), pub.n)
    assert influx_counts(influxd) == {(m_, f): (n - dropped) // 2 for m_ in KINDS for f in ("value", "quality")}
    assert_same_series("InfluxDB", influx_series(influxd), expected_series(pub.base_ms, kept))
    assert gw.sqlite_count() == n
    health = gw.health()["storage"]["outbox"]
    assert health["dropped_readings"] == dropped and health["readings"] == 0 and health["losing"] is False
    # back under the quota: the data_loss alarm returned to normal (still to be acknowledged)
    alarm = wait_for(lambda: next(a for a in gw.get("/alarms").json() if a["id"] == alarm["id"])["state"]
                     == "rtn_unacknowledged", 10, "the data_loss alarm cleared")
    gw.stop()
