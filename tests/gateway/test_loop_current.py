"""4-20 mA loop points: conversion at the intake (NAMUR NE 43), the 4 s loop fault, config checks."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from alerts.detector import FAULT, PROCESS, Detector
from gateway.batch import Quality, ReadingBatch
from gateway.errors import ConfigError
from gateway.ingest.intake import Intake, LoopConversion
from gateway.registry import Registry
from tests.helpers import CH4, district, mqtt_device

S = 1_000_000_000
G, U, F = Quality.GOOD, Quality.UNCERTAIN, Quality.FAULT
LOOP_CH4 = {**CH4, "signal": "4-20mA"}  # default range 0-100 %LEL
LOOP_O2 = {"key": "o2", "kind": "oxygen", "unit": "%VOL", "signal": "4-20mA"}  # 0-25 %VOL, low 19.5
LOOP_H2S = {"key": "h2s", "kind": "toxic_gas", "gas": "h2s", "unit": "ppm", "signal": "4-20mA",
            "range_low": 0.0, "range_high": 50.0}
PLAIN = {**CH4, "key": "plain"}


def registry(points: list[dict]) -> Registry:
    return Registry(district([mqtt_device("e1", "d1", points)]))


CONVERSIONS = [
    # mA, quality from the collector, expected value, expected quality
    (4.0, G, 0.0, G),
    (12.0, G, 50.0, G),
    (20.0, G, 100.0, G),
    (8.0, G, 25.0, G),
    (3.9, G, 0.0, U),  # saturated low: still a measurement, clamped
    (3.7, G, 0.0, U),
    (3.6, G, 0.0, U),
    (20.3, G, 100.0, U),  # saturated high
    (20.8, G, 100.0, U),
    (21.0, G, 100.0, U),
    (3.5, G, -3.125, F),  # loop failure: linear, out of range, never a reading of zero
    (2.0, G, -12.5, F),
    (0.0, G, -25.0, F),
    (21.5, G, 109.375, F),
    (12.0, U, 50.0, U),  # a collector's worse quality is kept
    (12.0, F, 50.0, F),
    (3.9, F, 0.0, F),
]


@pytest.mark.parametrize("ma,q_in,value,quality", CONVERSIONS, ids=[f"{c[0]}mA-q{int(c[1])}" for c in CONVERSIONS])
def test_conversion(ma: float, q_in: int, value: float, quality: int) -> None:
    conv = LoopConversion.from_registry(registry([LOOP_CH4]))
    out = conv.convert(ReadingBatch.of([0], [S], [ma], [q_in]))
    assert out.value[0] == pytest.approx(value)
    assert out.quality[0] == quality


def test_conversion_uses_each_points_range_and_leaves_other_points_alone() -> None:
    conv = LoopConversion.from_registry(registry([LOOP_H2S, PLAIN, LOOP_O2]))
    batch = ReadingBatch.of([0, 1, 2, 1, 0], [S] * 5, [12.0, 12.0, 20.0, 3.0, 4.0], [G, U, G, G, G])
    out = conv.convert(batch)
    assert out.value.tolist() == [25.0, 12.0, 25.0, 3.0, 0.0]
    assert out.quality.tolist() == [G, U, G, G, G]
    assert batch.value.tolist() == [12.0, 12.0, 20.0, 3.0, 4.0]  # the collector's arrays are not changed


def test_no_loop_points_pass_through_unchanged() -> None:
    conv = LoopConversion.from_registry(registry([PLAIN]))
    batch = ReadingBatch.of([0], [S], [12.0])
    assert conv.convert(batch) is batch


def test_intake_converts_before_the_durable_step() -> None:
    accepted: list[ReadingBatch] = []

    async def accept(batch: ReadingBatch) -> None:
        accepted.append(batch)

    async def main() -> tuple[bool, ReadingBatch]:
        intake = Intake(accept=accept, loop=LoopConversion.from_registry(registry([LOOP_CH4])))
        await intake.submit(ReadingBatch.of([0, 0], [S, 2 * S], [12.0, 2.0]))
        plain = Intake()
        await plain.submit(ReadingBatch.of([0], [S], [12.0]))
        # the outbox's group commit settles what it commits itself: once per commit, not per batch
        grouped = Intake(accept=accept, loop=LoopConversion.from_registry(registry([LOOP_CH4])),
                         accept_settles=True)
        await grouped.submit(ReadingBatch.of([0], [S], [12.0]))
        accepted.append(grouped.settle(accepted[-1]))
        return intake.readings.empty(), await plain.readings.get()

    nothing_queued, untouched = asyncio.run(main())
    assert accepted[0].value.tolist() == [50.0, -12.5] and accepted[0].quality.tolist() == [G, F]
    assert accepted[1].value.tolist() == [12.0] and accepted[2].value.tolist() == [50.0]
    assert nothing_queued  # with a durable step, every consumer reads the batch back from the outbox
    assert untouched.value.tolist() == [12.0]  # an Intake without a conversion leaves values as they are


def run(points: list[dict], currents: list[float], sensor: int = 0) -> list[tuple[int, int, int, int]]:
    """Convert and evaluate one loop current a second; return (second, condition, old, new)."""
    reg = registry(points)
    conv, det = LoopConversion.from_registry(reg), Detector(reg)
    out = []
    for i, ma in enumerate(currents):
        tr = det.evaluate(conv.convert(ReadingBatch.of([sensor], [(10 + i) * S], [ma])))
        out += [(i, int(tr.condition[k]), int(tr.old[k]), int(tr.new[k])) for k in range(len(tr))]
    return out


CALM = 6.0  # 12.5 %LEL on the CH4 loop: no alarm

FAULT_CASES = [
    # name, currents (one a second), expected (second, condition, old, new)
    ("2 mA for 3 s: no fault", [CALM] + [2.0] * 4 + [CALM], []),
    ("2 mA for 5 s: fault at the 4 s mark, a good reading clears it", [CALM] + [2.0] * 6 + [CALM],
     [(5, FAULT, 0, 1), (7, FAULT, 1, 0)]),
    ("a good reading cancels the pending fault", [CALM] + [2.0] * 3 + [CALM] + [2.0] * 5 + [CALM],
     [(9, FAULT, 0, 1), (10, FAULT, 1, 0)]),
    ("above 21 mA is a failure too", [CALM] + [22.5] * 5, [(5, FAULT, 0, 1)]),
    ("saturated is a measurement, not a fault", [CALM] + [3.7] * 8 + [20.3] * 2,
     [(9, PROCESS, 0, 2)]),
    ("a fault from the first reading", [2.0] * 5, [(4, FAULT, 0, 1)]),
]


@pytest.mark.parametrize("name,currents,expected", FAULT_CASES, ids=[c[0] for c in FAULT_CASES])
def test_loop_fault_lasts_4_s(name: str, currents: list[float], expected: list) -> None:
    assert run([LOOP_CH4], currents) == expected


def test_value_point_faults_at_once() -> None:
    reg = registry([PLAIN])
    det = Detector(reg)
    tr = det.evaluate(ReadingBatch.of([0], [S], [5.0], [F]))
    assert tr.condition.tolist() == [FAULT] and tr.new.tolist() == [1]


def test_loop_fault_is_never_a_low_oxygen_alarm() -> None:
    o2_ok = 4 + 20.9 / 25 * 16  # 20.9 %VOL
    got = run([LOOP_O2], [o2_ok] + [2.0] * 10 + [0.0] * 3 + [o2_ok])
    assert got == [(5, FAULT, 0, 1), (14, FAULT, 1, 0)]


def test_loop_fault_in_one_batch_equals_one_by_one() -> None:
    reg = registry([LOOP_CH4, LOOP_O2, PLAIN])
    conv = LoopConversion.from_registry(reg)
    rng = np.random.default_rng(3)
    n = 600
    sensor = rng.integers(0, 3, n)
    ts = np.arange(n, dtype=np.int64) * (S // 4) + S
    # runs of failed current long and short enough to both commit and be cancelled
    current = np.where((np.arange(n) // 40) % 3 == 1, 2.0, rng.uniform(3.7, 20.3, n))
    current[sensor == 2] = rng.uniform(0, 30, np.count_nonzero(sensor == 2))
    batch = conv.convert(ReadingBatch.of(sensor, ts, current))
    one = Detector(reg)
    expected = []
    for i in range(n):
        t = one.evaluate(batch.take(np.array([i])))
        expected += list(zip(t.sensor.tolist(), t.ts.tolist(), t.condition.tolist(), t.new.tolist(), strict=True))
    tr = Detector(reg).evaluate(batch)
    got = list(zip(tr.sensor.tolist(), tr.ts.tolist(), tr.condition.tolist(), tr.new.tolist(), strict=True))
    assert sum(1 for r in expected if r[2] == FAULT and r[0] != 2) >= 4
    assert sorted(got) == sorted(expected)


def test_good_readings_in_a_calm_batch_cancel_a_pending_loop_fault() -> None:
    """A multi-reading batch of good readings must not take the quiet path past a pending fault."""
    reg = registry([LOOP_CH4, PLAIN])
    conv, det = LoopConversion.from_registry(reg), Detector(reg)
    assert len(det.evaluate(conv.convert(ReadingBatch.of([0], [1 * S], [2.0])))) == 0  # pending
    calm = ReadingBatch.of([0, 1, 0, 1], [2 * S, 2 * S, 3 * S, 3 * S], [CALM, 5.0, CALM, 5.0])
    assert len(det.evaluate(conv.convert(calm))) == 0
    tr = det.evaluate(conv.convert(ReadingBatch.of([0], [5 * S], [2.0])))
    assert len(tr) == 0  # 4 s after the first failed reading, but the fault restarted at 5 s
    assert det.evaluate(conv.convert(ReadingBatch.of([0], [9 * S], [2.0]))).ts.tolist() == [9 * S]


@pytest.mark.parametrize("point,msg", [
    ({"key": "lvl", "kind": "level", "unit": "m", "signal": "4-20mA"},
     "signal = '4-20mA' needs a measuring range to scale the loop current: set range_low and range_high"),
    ({"key": "lvl", "kind": "level", "unit": "m", "signal": "4-20mA", "range_low": 0.0},
     "needs a measuring range"),
    ({"key": "run", "kind": "status", "signal": "4-20mA", "range_low": 0.0, "range_high": 1.0},
     "signal = '4-20mA' is not for kind = 'status'"),
    ({**CH4, "signal": "4-20 mA"}, "Input should be 'value' or '4-20mA'"),
])
def test_config_refusals(point: dict, msg: str) -> None:
    with pytest.raises(ConfigError) as exc:
        registry([point])
    assert any(p.startswith("devices[0] (e1/d1).points[0] (") and msg in m for p, m in exc.value.problems), \
        exc.value.problems


def test_config_accepts_loop_with_range() -> None:
    reg = registry([{"key": "lvl", "kind": "level", "unit": "m", "signal": "4-20mA", "range_low": 0.0,
                     "range_high": 8.0}, LOOP_CH4])
    assert [s.point.effective_range() for s in reg.sensors] == [(0.0, 8.0), (0.0, 100.0)]
