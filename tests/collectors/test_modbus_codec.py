"""The register codec and the request planner, table-driven: hand-computed words, round trips, limits."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from collectors.codec import (
    MAX_BITS,
    MAX_REGISTERS,
    byte_positions,
    decode,
    plan_reads,
    register_count,
)
from gateway.config import Point
from simulators.devices import NUMERIC_DTYPES, ORDERS, coverage_points
from simulators.registers import encode, set_bit


def point(key: str = "p", **kw) -> Point:
    kw.setdefault("kind", "temperature")
    kw.setdefault("register", "holding")
    return Point.model_validate({"key": key, **kw})


# (dtype, order, value, registers as they travel, most significant byte of each word first)
KNOWN = [
    ("float32", "ABCD", 1.0, [0x3F80, 0x0000]),
    ("float32", "CDAB", 1.0, [0x0000, 0x3F80]),
    ("float32", "BADC", 1.0, [0x803F, 0x0000]),
    ("float32", "DCBA", 1.0, [0x0000, 0x803F]),
    ("float32", "ABCD", -12.5, [0xC148, 0x0000]),
    ("uint32", "ABCD", 0x01020304, [0x0102, 0x0304]),
    ("uint32", "CDAB", 0x01020304, [0x0304, 0x0102]),
    ("uint32", "BADC", 0x01020304, [0x0201, 0x0403]),
    ("uint32", "DCBA", 0x01020304, [0x0403, 0x0201]),
    ("int32", "ABCD", -2, [0xFFFF, 0xFFFE]),
    ("int32", "CDAB", -2, [0xFFFE, 0xFFFF]),
    ("int32", "BADC", -2, [0xFFFF, 0xFEFF]),
    ("int32", "DCBA", -2, [0xFEFF, 0xFFFF]),
    ("int16", "ABCD", -2, [0xFFFE]),
    ("int16", "CDAB", -2, [0xFFFE]),
    ("int16", "BADC", -2, [0xFEFF]),
    ("int16", "DCBA", -2, [0xFEFF]),
    ("uint16", "ABCD", 0x1234, [0x1234]),
    ("uint16", "BADC", 0x1234, [0x3412]),
    ("uint64", "ABCD", 0x0102030405060708, [0x0102, 0x0304, 0x0506, 0x0708]),
    ("uint64", "CDAB", 0x0102030405060708, [0x0708, 0x0506, 0x0304, 0x0102]),
    ("uint64", "BADC", 0x0102030405060708, [0x0201, 0x0403, 0x0605, 0x0807]),
    ("uint64", "DCBA", 0x0102030405060708, [0x0807, 0x0605, 0x0403, 0x0201]),
    ("int64", "ABCD", -2, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE]),
    ("int64", "DCBA", -2, [0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF]),
    ("float64", "ABCD", 1.0, [0x3FF0, 0, 0, 0]),
    ("float64", "CDAB", 1.0, [0, 0, 0, 0x3FF0]),
    ("float64", "BADC", 1.0, [0xF03F, 0, 0, 0]),
    ("float64", "DCBA", 1.0, [0, 0, 0, 0xF03F]),
]


@pytest.mark.parametrize(("dtype", "order", "value", "words"), KNOWN)
def test_known_words(dtype, order, value, words):
    assert encode(value, dtype, order) == words
    assert decode(words, dtype, order) == float(value)


def test_byte_positions_follow_the_design():
    # value bytes A B C D -> where each sits in the register byte stream
    assert byte_positions(4, "ABCD") == [0, 1, 2, 3]
    assert byte_positions(4, "CDAB") == [2, 3, 0, 1]
    assert byte_positions(4, "BADC") == [1, 0, 3, 2]
    assert byte_positions(4, "DCBA") == [3, 2, 1, 0]
    assert byte_positions(8, "CDAB") == [6, 7, 4, 5, 2, 3, 0, 1]
    assert byte_positions(8, "DCBA") == list(range(7, -1, -1))


INT_EDGES = {
    "int16": [-(2**15), -1, 0, 1, 2**15 - 1],
    "uint16": [0, 1, 0x8000, 2**16 - 1],
    "int32": [-(2**31), -1, 0, 123456, 2**31 - 1],
    "uint32": [0, 2**31, 2**32 - 1],
    "int64": [-(2**63), -1, 0, 2**53, 2**62],
    "uint64": [0, 2**63, 2**53 + 2],
    "float32": [0.0, -0.0, 1.5, -3.0517578125e-05, 2.0**127],  # exactly representable
    "float64": [0.0, math.pi, -1.0e300, 5e-324],
}


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_round_trip_every_dtype_and_order(dtype, order):
    for value in INT_EDGES[dtype]:
        words = encode(value, dtype, order)
        assert len(words) == register_count(dtype)
        assert all(0 <= w <= 0xFFFF for w in words)
        assert decode(words, dtype, order) == float(value)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_orders_permute_the_same_bytes(dtype, order):
    """Every order holds the ABCD bytes, rearranged exactly as byte_positions says."""
    value = 0x0102030405060708 % (2 ** (16 * register_count(dtype) - 1))
    ref = np.array(encode(value, dtype, "ABCD"), dtype=">u2").view(np.uint8)
    got = np.array(encode(value, dtype, order), dtype=">u2").view(np.uint8)
    assert list(got[byte_positions(len(ref), order)]) == list(ref)


SCALED = [
    # dtype, scale, offset, words, engineering value
    ("uint16", 0.1, -10.0, [2345], 224.5),
    ("int16", 0.01, 0.0, [0xFF9C], -1.0),
    ("int16", 0.5, 100.0, [0x0002], 101.0),
    ("uint32", 0.001, 0.0, [0x0001, 0x86A0], 100.0),
    ("float32", 2.0, 1.0, [0x3F80, 0x0000], 3.0),
]


@pytest.mark.parametrize(("dtype", "scale", "offset", "words", "value"), SCALED)
def test_scale_and_offset(dtype, scale, offset, words, value):
    assert decode(words, dtype, scale=scale, offset=offset) == pytest.approx(value)
    assert encode(value, dtype, scale=scale, offset=offset) == words


def test_integer_encoding_rounds_and_saturates():
    assert encode(20.93, "int16", scale=0.01) == [2093]
    assert encode(-5.0, "uint16") == [0]
    assert encode(40000.0, "int16") == [0x7FFF]
    assert encode(-1e12, "int32") == [0x8000, 0x0000]
    with pytest.raises(ValueError):
        encode(float("nan"), "int16")


def test_non_finite_floats_decode_as_such():
    assert math.isnan(decode([0x7FC0, 0x0000], "float32"))
    assert decode([0x7F80, 0x0000], "float32") == math.inf
    assert math.isnan(decode(encode(float("nan"), "float64", "DCBA"), "float64", "DCBA"))


@pytest.mark.parametrize(("bit", "expected"), [(0, 1), (1, 0), (2, 1), (13, 1), (14, 0), (15, 1)])
def test_bits_of_a_word(bit, expected):
    assert decode([0xA005], "bool", bit=bit) == expected
    assert decode([0xA005], "bool", bit=bit, scale=-1.0, offset=1.0) == 1 - expected


def test_set_bit():
    assert set_bit(0, 15, True) == 0x8000
    assert set_bit(0xFFFF, 0, False) == 0xFFFE
    assert set_bit(0xA005, 2, True) == 0xA005


@pytest.mark.parametrize(("bits", "expected"), [([True], 1.0), ([False], 0.0), ([1], 1.0)])
def test_coils_and_discrete_inputs(bits, expected):
    assert decode(bits, "bool") == expected
    assert encode(expected, "bool") == [int(expected)]


def test_wrong_length_is_refused():
    with pytest.raises(ValueError):
        decode([1], "float32")
    with pytest.raises(ValueError):
        decode([1, 2], "int16", order="ABDC")


# ---- the planner


def spans(requests):
    return [(r.table, r.address, r.count) for r in requests]


def assert_plan_serves(requests, points):
    """Every point sits wholly inside exactly one request of its table, within the limits."""
    served = {}
    for r in requests:
        assert r.count <= (MAX_BITS if r.table in ("coil", "discrete") else MAX_REGISTERS)
        assert len(r.sensors) == len(r.points)
        for pr in r.points:
            assert pr.sensor not in served
            served[pr.sensor] = (r, pr)
    assert set(served) == {s for s, _ in points}
    for sensor, p in points:
        r, pr = served[sensor]
        assert r.table == p.register_type
        assert r.address + pr.offset == p.address
        width = 1 if r.table in ("coil", "discrete") else register_count(p.modbus_dtype)
        assert pr.offset + width <= r.count


def test_contiguous_registers_split_at_125():
    pts = [(i, point(f"p{i}", address=i, dtype="uint16")) for i in range(200)]
    reqs = plan_reads(pts)
    assert spans(reqs) == [("holding", 0, 125), ("holding", 125, 75)]
    assert_plan_serves(reqs, pts)


def test_a_value_is_never_split_across_requests():
    pts = [(i, point(f"p{i}", address=2 * i, dtype="float32")) for i in range(125)]
    reqs = plan_reads(pts)
    assert spans(reqs) == [("holding", 0, 124), ("holding", 124, 124), ("holding", 248, 2)]
    assert_plan_serves(reqs, pts)


def test_coils_split_at_2000():
    pts = [(i, point(f"c{i}", kind="status", register="coil", address=i)) for i in range(3000)]
    reqs = plan_reads(pts)
    assert spans(reqs) == [("coil", 0, 2000), ("coil", 2000, 1000)]
    assert_plan_serves(reqs, pts)


def test_small_gaps_are_read_through_large_ones_split():
    near = [(0, point("a", address=0, dtype="uint16")), (1, point("b", address=20, dtype="float32"))]
    assert spans(plan_reads(near)) == [("holding", 0, 22)]
    far = [(0, point("a", address=0, dtype="uint16")), (1, point("b", address=100, dtype="uint16"))]
    assert spans(plan_reads(far)) == [("holding", 0, 1), ("holding", 100, 1)]
    assert spans(plan_reads(far, max_gap=None)) == [("holding", 0, 101)]


def test_tables_are_separate_and_shared_words_read_once():
    pts = [
        (0, point("w", address=5, dtype="uint16", kind="status")),
        (1, point("b0", address=5, dtype="bool", bit=0, kind="status")),
        (2, point("b9", address=5, dtype="bool", bit=9, kind="status")),
        (3, point("i", register="input", address=5, dtype="int16")),
        (4, point("c", register="coil", address=5, kind="status")),
        (5, point("d", register="discrete", address=5, kind="status")),
    ]
    reqs = plan_reads(pts)
    assert spans(reqs) == [("holding", 5, 1), ("input", 5, 1), ("coil", 5, 1), ("discrete", 5, 1)]
    assert list(reqs[0].decode([0x0201])) == [0x0201, 1.0, 1.0]


def min_requests(layout, limit, max_gap):
    """Fewest requests for non-overlapping sorted (address, width) points, by dynamic programming."""
    n = len(layout)
    best = [0] + [math.inf] * n
    for end in range(1, n + 1):
        for start in range(end - 1, -1, -1):
            if start < end - 1 and layout[start + 1][0] - sum(layout[start]) > max_gap:
                break
            if sum(layout[end - 1]) - layout[start][0] > limit:
                break
            best[end] = min(best[end], best[start] + 1)
    return best[n]


@pytest.mark.parametrize("seed", range(20))
def test_planner_is_minimal_on_random_layouts(seed):
    rng = random.Random(seed)
    pts, address = [], rng.randrange(50)
    for i in range(rng.randrange(1, 150)):
        dtype = rng.choice(NUMERIC_DTYPES)
        pts.append((i, point(f"p{i}", address=address, dtype=dtype)))
        address += register_count(dtype) + rng.choice([0, 0, 0, 1, 5, 31, 32, 33, 200])
    rng.shuffle(pts)
    reqs = plan_reads(pts)
    assert_plan_serves(reqs, pts)
    layout = sorted((p.address, register_count(p.modbus_dtype)) for _, p in pts)
    assert len(reqs) == min_requests(layout, MAX_REGISTERS, 32)


def test_request_decodes_like_point_by_point():
    """The vectorised per-request decode agrees with decoding each point's own registers."""
    pts = [(i, Point.model_validate(d)) for i, d in enumerate(coverage_points())]
    reqs = plan_reads(pts)
    assert spans(reqs) == [("holding", 0, 85), ("holding", 1000, 4), ("input", 10, 6), ("coil", 0, 22),
                           ("discrete", 0, 22)]
    assert_plan_serves(reqs, pts)
    rng = np.random.default_rng(3)
    for r in reqs:
        if r.table in ("coil", "discrete"):
            data = [bool(b) for b in rng.integers(0, 2, r.count + 7)]  # pymodbus pads to whole bytes
        else:
            data = [int(w) for w in rng.integers(0, 0x10000, r.count)]
        got = r.decode(data)
        for value, pr in zip(got, r.points, strict=True):
            own = data[pr.offset:pr.offset + pr.width]
            want = decode(own, pr.dtype, pr.order, pr.bit, pr.scale, pr.offset_value)
            assert value == pytest.approx(want, nan_ok=True, rel=1e-12), pr.key
        with pytest.raises(ValueError):
            r.decode(data[: r.count - 1])
