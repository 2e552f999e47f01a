"""The numpy detector, table-driven: levels, deadband, delays, faults, masks, staleness, rate of change."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.detector import FAULT, PROCESS, RATE, Detector
from gateway.batch import Quality, ReadingBatch
from gateway.errors import ConfigError
from gateway.registry import Registry
from tests.helpers import CH4, district, mqtt_device

S = 1_000_000_000


def make(points: list[dict], **dev: object) -> tuple[Registry, Detector]:
    reg = Registry(district([mqtt_device("e1", "d1", points, **dev)]))
    return reg, Detector(reg)


def feed(det: Detector, values: list[float], sensor: int = 0, quality: list[int] | None = None,
         t0: int = 10 * S) -> list[tuple[int, int, int, int]]:
    """Evaluate one reading per second; return (second, condition, old, new) of each transition."""
    out = []
    for i, v in enumerate(values):
        q = [quality[i]] if quality else None
        tr = det.evaluate(ReadingBatch.of([sensor], [t0 + i * S], [v], q))
        out += [(i, int(tr.condition[k]), int(tr.old[k]), int(tr.new[k])) for k in range(len(tr))]
    return out


CASES = [
    # name, point overrides, values, expected (second, condition, old, new)
    ("below high", {}, [10, 20, 24.9], []),
    ("high then clear", {}, [10, 30, 10], [(1, PROCESS, 0, 1), (2, PROCESS, 1, 0)]),
    ("straight to high-high", {}, [10, 60, 10], [(1, PROCESS, 0, 2), (2, PROCESS, 2, 0)]),
    ("leak up and down", {}, [5, 30, 55, 30, 5],
     [(1, PROCESS, 0, 1), (2, PROCESS, 1, 2), (3, PROCESS, 2, 1), (4, PROCESS, 1, 0)]),
    ("deadband holds", {"deadband": 2.0}, [26, 24, 23.5, 22.9], [(0, PROCESS, 0, 1), (3, PROCESS, 1, 0)]),
    ("on-delay swallows a spike", {"on_delay": 2.0}, [5, 60, 5, 5], []),
    ("on-delay raises when it lasts", {"on_delay": 2.0}, [5, 30, 30, 30, 5],
     [(3, PROCESS, 0, 1), (4, PROCESS, 1, 0)]),
    ("off-delay holds the clear", {"off_delay": 2.0}, [30, 5, 5, 5],
     [(0, PROCESS, 0, 1), (3, PROCESS, 1, 0)]),
    ("stricter limits", {"high": 10.0, "high_high": 20.0}, [11, 21], [(0, PROCESS, 0, 1), (1, PROCESS, 1, 2)]),
    ("out of range is a fault, not a level", {}, [5, 130, 5],
     [(1, FAULT, 0, 1), (2, FAULT, 1, 0)]),
    ("nan is a fault", {}, [5, float("nan"), 5], [(1, FAULT, 0, 1), (2, FAULT, 1, 0)]),
]


@pytest.mark.parametrize("name,over,values,expected", CASES, ids=[c[0] for c in CASES])
def test_combustible_cases(name: str, over: dict, values: list[float], expected: list) -> None:
    _, det = make([{**CH4, **over}])
    assert feed(det, values) == expected


def test_fault_quality_keeps_process_level() -> None:
    _, det = make([CH4])
    got = feed(det, [30, 0, 0, 30], quality=[Quality.GOOD, Quality.FAULT, Quality.FAULT, Quality.GOOD])
    # the alarm stays raised while faulty: a dead transmitter's 0 is not a return to normal
    assert got == [(0, PROCESS, 0, 1), (1, FAULT, 0, 1), (3, FAULT, 1, 0)]
    assert det.level[0] == 1


def test_oxygen_low_and_high() -> None:
    _, det = make([{"key": "o2", "kind": "oxygen", "unit": "%VOL"}])
    assert feed(det, [20.9, 19.0, 20.9, 24.0, 20.9]) == [
        (1, PROCESS, 0, -1), (2, PROCESS, -1, 0), (3, PROCESS, 0, 1), (4, PROCESS, 1, 0)]


def test_low_low_and_flip_from_low_to_high() -> None:
    _, det = make([{"key": "p", "kind": "pressure", "unit": "MPa", "low_low": 0.1, "low": 0.2,
                    "high": 0.8, "high_high": 0.9}])
    assert feed(det, [0.5, 0.15, 0.05, 0.95]) == [
        (1, PROCESS, 0, -1), (2, PROCESS, -1, -2), (3, PROCESS, -2, 2)]


def test_status_mask() -> None:
    _, det = make([{"key": "run", "kind": "status", "alarm_mask": 0b0110}])
    assert feed(det, [0b0001, 0b0101, 0b1001, 0b0011, 0]) == [
        (1, PROCESS, 0, 1), (2, PROCESS, 1, 0), (3, PROCESS, 0, 1), (4, PROCESS, 1, 0)]


def test_peak_is_most_severe_value() -> None:
    _, det = make([CH4])
    peaks = []
    for i, v in enumerate([30, 45, 40, 10]):
        tr = det.evaluate(ReadingBatch.of([0], [(i + 1) * S], [v]))
        peaks += tr.peak.tolist()
    assert peaks == [30, 45]  # raised at 30, cleared with the peak 45 seen in between


@pytest.mark.parametrize("mean,spread", [(25, 15), (5, 3), (10, 12)])
def test_whole_batch_equals_one_by_one(mean: float, spread: float) -> None:
    """Many readings of many sensors in one batch give exactly the transitions of a loop.

    The mixes cover batches where most sensors stay quiet (the fast path) and where most alarm.
    """
    rng = np.random.default_rng(7)
    pts = [{**CH4, "key": f"g{i}", "deadband": 1.0, "on_delay": float(i % 3)} for i in range(20)]
    pts += [{"key": "o2", "kind": "oxygen", "unit": "%VOL"}, {"key": "st", "kind": "status", "alarm_mask": 4}]
    n = 2000
    sensor = rng.integers(0, 22, n)
    ts = np.arange(n, dtype=np.int64) * (S // 4) + S
    value = np.clip(rng.normal(mean, spread, n), 0, 100)
    value[sensor == 20] = rng.normal(20.5, 0.6, np.count_nonzero(sensor == 20))
    value[sensor == 21] = rng.integers(0, 8, np.count_nonzero(sensor == 21))
    _, batch_det = make(pts)
    tr = batch_det.evaluate(ReadingBatch.of(sensor, ts, value))
    _, loop_det = make(pts)
    rows = []
    for i in range(n):
        t = loop_det.evaluate(ReadingBatch.of([sensor[i]], [ts[i]], [value[i]]))
        rows += list(zip(t.sensor.tolist(), t.ts.tolist(), t.old.tolist(), t.new.tolist(), strict=True))
    got = sorted(zip(tr.sensor.tolist(), tr.ts.tolist(), tr.old.tolist(), tr.new.tolist(), strict=True))
    assert len(rows) > 10
    assert got == sorted(rows)
    assert np.array_equal(batch_det.level, loop_det.level)
    assert np.array_equal(batch_det.last_value, loop_det.last_value)
    assert np.array_equal(batch_det.last_ts, loop_det.last_ts)


def test_out_of_order_reading_not_evaluated() -> None:
    _, det = make([CH4])
    det.evaluate(ReadingBatch.of([0], [5 * S], [10.0]))
    tr = det.evaluate(ReadingBatch.of([0], [4 * S], [60.0]))
    assert len(tr) == 0 and det.out_of_order == 1


def test_stale_devices() -> None:
    _, det = make([CH4], stale_after=30)
    went, back = det.check_stale(100 * S)
    assert len(went) == 0  # never seen: nothing to call stale yet
    det.evaluate(ReadingBatch.of([0], [100 * S], [1.0]))
    assert det.check_stale(129 * S)[0].tolist() == []
    assert det.check_stale(131 * S)[0].tolist() == [0]
    assert det.check_stale(140 * S)[0].tolist() == []  # once
    det.evaluate(ReadingBatch.of([0], [141 * S], [1.0]))
    assert det.check_stale(142 * S)[1].tolist() == [0]


# Rate of change: limit 30 %LEL/min over a 10 s window, i.e. a rise of more than 5 %LEL within 10 s.
RATE_CH4 = {**CH4, "rate_of_change": 30.0, "rate_window": 10.0}
G, F = Quality.GOOD, Quality.FAULT

RATE_CASES = [
    # name, point overrides, values (one a second), qualities or None, expected (second, condition, old, new)
    ("rise raises, clears when the low leaves the window", {}, [5, 5, 5] + [11] * 12, None,
     [(3, RATE, 0, 1), (13, RATE, 1, 0)]),
    ("slow rise stays under the limit", {}, [5 + 0.4 * i for i in range(20)], None, []),
    ("falling does not count", {}, [20, 20, 20] + [5] * 12, None, []),
    ("steady high value: level alarm, no rate alarm", {}, [40] * 15, None, [(0, PROCESS, 0, 1)]),
    ("on-delay raises when it lasts", {"on_delay": 2.0}, [5, 5, 5] + [11] * 12, None,
     [(5, RATE, 0, 1), (13, RATE, 1, 0)]),
    ("on-delay swallows a spike", {"on_delay": 2.0}, [5, 5, 5, 11, 5, 5, 5], None, []),
    ("off-delay holds the clear", {"off_delay": 3.0}, [5, 5, 5] + [11] * 15, None,
     [(3, RATE, 0, 1), (16, RATE, 1, 0)]),
    ("fault readings do not feed the rate", {}, [11, 11, 0, 11, 11], [G, G, F, G, G],
     [(2, FAULT, 0, 1), (3, FAULT, 1, 0)]),
    ("out-of-range readings do not feed the rate", {}, [11, -5, 11], None,
     [(1, FAULT, 0, 1), (2, FAULT, 1, 0)]),
    ("a rise behind a fault still counts from the good readings", {}, [5, 0, 11], [G, F, G],
     [(1, FAULT, 0, 1), (2, FAULT, 1, 0), (2, RATE, 0, 1)]),
]


@pytest.mark.parametrize("name,over,values,quality,expected", RATE_CASES, ids=[c[0] for c in RATE_CASES])
def test_rate_cases(name: str, over: dict, values: list[float], quality: list[int] | None,
                    expected: list) -> None:
    _, det = make([{**RATE_CH4, **over}])
    assert feed(det, values, quality=quality) == expected


def test_rate_transition_carries_reading_and_rate() -> None:
    _, det = make([RATE_CH4])
    out = [det.evaluate(ReadingBatch.of([0], [(i + 1) * S], [v])) for i, v in enumerate([5, 5, 12.5])]
    tr = out[2]
    assert tr.condition.tolist() == [RATE] and tr.value.tolist() == [12.5]
    assert tr.peak[0] == pytest.approx(7.5 * 60 / 10)  # a rise of 7.5 in a 10 s window: 45 %LEL/min
    assert det.rate_on[0] and det.level[0] == 0


def rows(tr: object) -> list[tuple]:
    fields = ("sensor", "ts", "condition", "old", "new", "value", "peak")
    return sorted(zip(*(getattr(tr, f).tolist() for f in fields), strict=True))


@pytest.mark.parametrize("sizes", [[1], [2], [7], [1000]], ids=lambda s: f"batch-{s[0]}")
def test_rate_in_batches_equals_one_by_one(sizes: list[int]) -> None:
    """Rate, fault and level sensors fed in batches of any size give the transitions of one-by-one."""
    rng = np.random.default_rng(11)
    pts = [{**RATE_CH4, "key": f"r{i}", "on_delay": float(i % 3), "off_delay": float(i % 2)} for i in range(6)]
    pts += [{**CH4, "key": "plain"}]
    n = 1000
    sensor = rng.integers(0, len(pts), n)
    ts = np.arange(n, dtype=np.int64) * (S // 8) + S
    walk = np.zeros(len(pts))
    value = np.empty(n)
    for i, s in enumerate(sensor):  # a random walk per sensor: rises fast enough now and then
        walk[s] = np.clip(walk[s] + rng.normal(0, 2.5), 0, 45)
        value[i] = walk[s]
    quality = np.where(rng.random(n) < 0.03, Quality.FAULT, Quality.GOOD)
    _, one = make(pts)
    expected = []
    for i in range(n):
        expected += rows(one.evaluate(ReadingBatch.of([sensor[i]], [ts[i]], [value[i]], [quality[i]])))
    _, many = make(pts)
    got, start = [], 0
    while start < n:
        end = start + sizes[0]
        got += rows(many.evaluate(ReadingBatch.of(sensor[start:end], ts[start:end], value[start:end],
                                                  quality[start:end])))
        start = end
    assert sum(1 for r in expected if r[2] == RATE) > 10
    assert sorted(got) == sorted(expected)
    assert np.array_equal(many.rate_on, one.rate_on) and np.array_equal(many.rate, one.rate)


def test_rate_sensor_never_takes_the_quiet_path() -> None:
    """A calm reading of a rate sensor in a multi-reading batch still moves its window."""
    _, det = make([RATE_CH4, {**CH4, "key": "other"}])
    det.evaluate(ReadingBatch.of([0, 1, 0, 1], [S, S, 2 * S, 2 * S], [5, 5, 5, 5]))
    tr = det.evaluate(ReadingBatch.of([0, 1, 0, 1], [3 * S, 3 * S, 4 * S, 4 * S], [5, 5, 11, 5]))
    assert tr.condition.tolist() == [RATE] and tr.ts.tolist() == [4 * S]


@pytest.mark.parametrize("over,msg", [
    ({"rate_of_change": 0}, "greater than 0"),
    ({"rate_of_change": 5, "rate_window": 4000}, "less than or equal to 3600"),
    ({"rate_of_change": 5, "rate_window": 0}, "greater than 0"),
    ({"kind": "status", "unit": "", "rate_of_change": 5}, "rate_of_change is not for kind = 'status'"),
])
def test_rate_config_refusals(over: dict, msg: str) -> None:
    with pytest.raises(ConfigError) as exc:
        make([{**CH4, **over}])
    assert any(p.startswith("devices[0] (e1/d1).points[0] (ch4)") and msg in m for p, m in exc.value.problems), \
        exc.value.problems
