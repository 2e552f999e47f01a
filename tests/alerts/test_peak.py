"""An active alarm's peak (and its latest value) follow the readings: the detector hands over, once
per batch, the extremes of the sensors in alarm; the book updates one row per alarm, without an
event; the API shows the current peak."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np

from alerts.detector import PROCESS, RATE, Detector, Extremes
from alerts.evaluation import CONSUMER
from gateway.batch import Quality, ReadingBatch
from gateway.registry import Registry
from gateway.root.runtime import Gateway
from tests.helpers import CH4, district, mqtt_device, wait_for
from tests.server import ApiServer

S = 1_000_000_000
O2 = {"key": "o2", "kind": "oxygen", "unit": "%VOL"}
T_RATE = {"key": "t1", "kind": "temperature", "unit": "°C", "rate_of_change": 30.0, "rate_window": 10.0}


def make() -> tuple[Registry, Detector]:
    reg = Registry(district([mqtt_device("e1", "d1", [CH4, O2, T_RATE])]))
    return reg, Detector(reg)


def rows(ex: Extremes) -> list[tuple[int, int, float, float]]:
    return sorted(zip(ex.sensor.tolist(), ex.condition.tolist(), ex.value.tolist(), ex.peak.tolist(),
                      strict=True))


def test_extremes_follow_a_high_alarm_then_stop_at_the_clear() -> None:
    _, det = make()
    assert len(det.take_extremes()) == 0
    det.evaluate(ReadingBatch.of([0], [S], [10.0]))
    assert len(det.take_extremes()) == 0  # normal: nothing to follow
    det.evaluate(ReadingBatch.of([0], [2 * S], [30.0]))  # high raised
    assert rows(det.take_extremes()) == [(0, PROCESS, 30.0, 30.0)]
    # several readings of one sensor in one batch: one entry, the latest value and the highest
    det.evaluate(ReadingBatch.of([0, 0, 0], [3 * S, 4 * S, 5 * S], [41.0, 47.0, 44.0]))
    assert rows(det.take_extremes()) == [(0, PROCESS, 44.0, 47.0)]
    assert len(det.take_extremes()) == 0  # taken: nothing new
    # into high-high and back: the peak stays the highest of the whole alarm
    det.evaluate(ReadingBatch.of([0, 0], [6 * S, 7 * S], [62.0, 35.0]))
    assert rows(det.take_extremes()) == [(0, PROCESS, 35.0, 62.0)]
    # a fault reading is no process value: neither value nor peak move
    det.evaluate(ReadingBatch.of([0], [8 * S], [20.0], [Quality.FAULT]))
    assert len(det.take_extremes()) == 0
    det.evaluate(ReadingBatch.of([0], [9 * S], [5.0]))  # cleared: its clear carries its value
    assert len(det.take_extremes()) == 0


def test_extremes_of_a_low_alarm_are_the_lowest_and_of_a_rate_alarm_the_fastest() -> None:
    reg, det = make()
    o2, ch4r = reg.sensor_index("e1/d1/o2"), reg.sensor_index("e1/d1/t1")
    det.evaluate(ReadingBatch.of([o2, ch4r], [S, S], [20.9, 5.0]))
    det.evaluate(ReadingBatch.of([o2, ch4r], [2 * S, 2 * S], [19.0, 12.5]))  # low; rising 45 %LEL/min
    assert det.level[o2] == -1 and det.rate_on[ch4r]
    assert rows(det.take_extremes()) == [(o2, PROCESS, 19.0, 19.0), (ch4r, RATE, 12.5, 45.0)]
    det.evaluate(ReadingBatch.of([o2, o2, ch4r, ch4r], [3 * S, 4 * S, 3 * S, 4 * S], [18.2, 18.6, 16.0, 17.0]))
    assert rows(det.take_extremes()) == [(o2, PROCESS, 18.6, 18.2), (ch4r, RATE, 17.0, 72.0)]


def test_extremes_in_one_batch_equal_those_read_one_by_one() -> None:
    """The rounds of a batch and one reading per batch agree on the value and peak handed over."""
    rng = np.random.default_rng(5)
    n = 600
    sensor = rng.integers(0, 3, n).astype(np.int32)
    value = np.abs(np.cumsum(rng.normal(0, 4, n)) % 60)
    ts = np.arange(1, n + 1, dtype=np.int64) * S
    _, many = make()
    _, one = make()
    followed = 0
    for lo in range(0, n, 40):
        hi = lo + 40
        many.evaluate(ReadingBatch.of(sensor[lo:hi].tolist(), ts[lo:hi].tolist(), value[lo:hi].tolist()))
        got = {(s, c): (v, p) for s, c, v, p in rows(many.take_extremes())}
        want: dict[tuple[int, int], tuple[float, float]] = {}
        for i in range(lo, hi):
            one.evaluate(ReadingBatch.of([int(sensor[i])], [int(ts[i])], [float(value[i])]))
            want.update({(s, c): (v, p) for s, c, v, p in rows(one.take_extremes())})
        active = {(s, PROCESS) for s in range(3) if one.level[s]} | {(s, RATE) for s in range(3) if one.rate_on[s]}
        assert got == {k: want[k] for k in active if k in want}, lo
        followed += len(got)
    assert followed > 10


def test_the_book_follows_the_peak_without_events(tmp_path: Path) -> None:
    cfg = district([mqtt_device("e1", "d1", [CH4, O2])])
    gw = Gateway(cfg, data_dir=tmp_path, collectors=False)
    ob = gw.storage.outbox
    t = time.time_ns()

    def evaluate(sensor: list[int], values: list[float]) -> list:
        nonlocal t
        t += S
        batch = ReadingBatch.of(sensor, [t] * len(sensor), values)
        ob.append(batch)
        before = gw.book.last_event_id()
        gw.evaluation.evaluate(batch, ob.last_seq)
        return [(e.type, e.alarm.level) for e in gw.book.events_since(before, None)]

    assert evaluate([0], [30.0]) == [("raised", "high")]
    alarm_id = gw.book.open_alarms()[0].id
    assert evaluate([0], [38.0]) == []  # no event: a new peak is no step of the alarm
    assert evaluate([0, 1], [44.5, 20.9]) == []
    a = gw.book.get(alarm_id)
    assert (a.value, a.peak, a.level) == (44.5, 44.5, "high")
    assert evaluate([0], [41.0]) == []
    a = gw.book.get(alarm_id)
    assert (a.value, a.peak) == (41.0, 44.5)
    assert gw.book.cursor(CONSUMER) == ob.last_seq  # in the evaluation's transaction
    assert evaluate([0], [3.0]) == [("cleared", "high")]
    a = gw.book.get(alarm_id)
    assert (a.value, a.peak, a.in_alarm) == (3.0, 44.5, False)
    assert evaluate([0], [26.0]) == [("raised", "high")]  # back while the case is open: a new peak
    a = gw.book.get(alarm_id)
    assert (a.value, a.peak) == (26.0, 26.0)
    gw.book.close()
    ob.close()


def test_the_api_shows_the_peak_of_a_rising_gas(server: ApiServer) -> None:
    sid = "hengyuan/gas/ch4"
    alarm = server.raise_alarm(sid, 27.0)
    assert (alarm["level"], alarm["peak"]) == ("high", 27.0)
    with server.client("zhang") as c:
        for v in (31.0, 36.5, 44.0, 42.0):
            server.submit({sid: v})

        def seen() -> dict | None:
            r = c.get(f"/alarms/{alarm['id']}")
            assert r.status_code == 200, r.text
            body = r.json()
            return body if body["value"] == 42.0 else None

        body = wait_for(seen, what="the alarm's latest value")
        assert body["peak"] == 44.0 and body["level"] == "high"
        assert [h["type"] for h in body["history"]] == ["raised"]  # followed, not pushed
        listed = [a for a in c.get("/alarms").json() if a["id"] == alarm["id"]]
        assert listed[0]["peak"] == 44.0
    assert httpx.get(f"{server.base}/healthz").status_code == 200
