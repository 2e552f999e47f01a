"""The Modbus register codec and request planner: pure functions, no I/O.

A point's raw value lives in one to four 16-bit registers (or in one coil or discrete input, or in
one bit of a register word). ``decode`` turns registers into an engineering value
(``raw * scale + offset``) and ``encode`` does the inverse for the simulator. Byte orders follow
DESIGN.md: with the value's bytes A B C D ... (A most significant), ``ABCD`` is big-endian
throughout, ``CDAB`` reverses the order of the words, ``BADC`` swaps the two bytes of every word and
``DCBA`` does both (fully little-endian); a one-register value is byte-swapped by ``BADC`` and
``DCBA``. ``plan_reads`` coalesces a device's points into as few requests as the protocol allows
(at most 125 registers or 2000 bits each); every :class:`ReadRequest` decodes its whole response at
once into a float64 array aligned with the sensor indexes it serves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gateway.config import REGISTER_COUNT, Point

MAX_REGISTERS = 125  # per read of holding or input registers (function codes 3, 4)
MAX_BITS = 2000  # per read of coils or discrete inputs (function codes 1, 2)
DEFAULT_MAX_GAP = 32  # unused registers (or bits) a request may read through to save a request
BIT_TABLES = frozenset({"coil", "discrete"})
WORD_TABLES = frozenset({"holding", "input"})

# dtype -> numpy big-endian type of the raw value
_NUMPY_TYPE: dict[str, str] = {
    "int16": ">i2",
    "uint16": ">u2",
    "int32": ">i4",
    "uint32": ">u4",
    "float32": ">f4",
    "int64": ">i8",
    "uint64": ">u8",
    "float64": ">f8",
}
def register_count(dtype: str) -> int:
    """How many 16-bit registers a value of ``dtype`` occupies (a bool bit takes one word)."""
    return REGISTER_COUNT[dtype]


def byte_positions(nbytes: int, order: str) -> list[int]:
    """For each byte of the value (most significant first), its index in the register byte stream.

    The register byte stream is the registers in address order, each high byte first, as they
    travel on the wire.
    """
    words = nbytes // 2
    swap_words = order in ("CDAB", "DCBA")
    swap_bytes = order in ("BADC", "DCBA")
    out = []
    for j in range(nbytes):
        word, byte = divmod(j, 2)
        reg = words - 1 - word if swap_words else word
        out.append(2 * reg + (1 - byte if swap_bytes else byte))
    return out


def _check_order(order: str) -> None:
    if order not in ("ABCD", "DCBA", "BADC", "CDAB"):
        raise ValueError(f"unknown byte order {order!r}")


def decode(
    data: Sequence[int] | Sequence[bool],
    dtype: str,
    order: str = "ABCD",
    bit: int | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
) -> float:
    """One point's engineering value from its registers (or its one coil / discrete bit).

    ``data`` holds exactly the point's registers, or for a bool one register word (with ``bit``)
    or one bit value.
    """
    _check_order(order)
    if dtype == "bool":
        raw = (int(data[0]) >> bit) & 1 if bit is not None else int(bool(data[0]))
        return raw * scale + offset
    n = register_count(dtype)
    if len(data) != n:
        raise ValueError(f"{dtype} takes {n} register(s), got {len(data)}")
    stream = np.asarray(data, dtype=">u2").view(np.uint8)
    raw = stream[byte_positions(2 * n, order)].view(_NUMPY_TYPE[dtype])[0]
    return float(raw) * scale + offset


@dataclass(frozen=True, slots=True)
class PointRead:
    """One point served by a request: its sensor index and where it sits in the response."""

    sensor: int
    key: str
    offset: int  # registers (or bits) from the request's start address
    dtype: str
    order: str
    bit: int | None
    scale: float
    offset_value: float

    @property
    def width(self) -> int:
        return 1 if self.dtype == "bool" else register_count(self.dtype)


@dataclass(frozen=True, slots=True)
class _Group:
    """Points of one request decoded together: same dtype (and, for words, same byte order)."""

    out: np.ndarray  # positions in the request's result array
    gather: np.ndarray  # word tables: (n, nbytes) byte indexes; bits: (n,) bit or word indexes
    bits: np.ndarray | None  # bit of a word: the bit numbers
    numpy_type: str | None
    scale: np.ndarray
    offset: np.ndarray


@dataclass(frozen=True)
class ReadRequest:
    """One Modbus read (``count`` registers or bits of ``table`` from ``address``) and its points."""

    table: str
    address: int
    count: int
    points: tuple[PointRead, ...]

    sensors: np.ndarray = field(init=False, repr=False, compare=False)  # int32, one per point
    _groups: tuple[_Group, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensors", np.array([p.sensor for p in self.points], dtype=np.int32))
        object.__setattr__(self, "_groups", _build_groups(self.table, self.points))

    def decode(self, data: Sequence[int] | Sequence[bool]) -> np.ndarray:
        """Every point's value from the response's registers (or bits), aligned with ``sensors``.

        ``data`` may be longer than ``count`` (pymodbus pads bits to a multiple of 8).
        """
        if len(data) < self.count:
            raise ValueError(f"response holds {len(data)} values, the request asked for {self.count}")
        out = np.empty(len(self.points), dtype=np.float64)
        if self.table in BIT_TABLES:
            bits = np.asarray(data[: self.count], dtype=np.uint8)
            for g in self._groups:
                out[g.out] = bits[g.gather] * g.scale + g.offset
            return out
        words = np.asarray(data[: self.count], dtype=">u2")
        stream = words.view(np.uint8)
        for g in self._groups:
            if g.bits is not None:
                raw = (words[g.gather].astype(np.uint16) >> g.bits) & 1
                out[g.out] = raw * g.scale + g.offset
            else:
                raw = stream[g.gather].view(g.numpy_type).ravel()
                out[g.out] = raw.astype(np.float64) * g.scale + g.offset
        return out


def _build_groups(table: str, points: Sequence[PointRead]) -> tuple[_Group, ...]:
    keyed: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(points):
        if table in BIT_TABLES:
            key = ("bits", "")
        elif p.dtype == "bool":
            key = ("word_bits", "")
        else:
            key = (p.dtype, p.order)
        keyed.setdefault(key, []).append(i)
    groups = []
    for (kind, order), idx in keyed.items():
        members = [points[i] for i in idx]
        scale = np.array([p.scale for p in members], dtype=np.float64)
        offset = np.array([p.offset_value for p in members], dtype=np.float64)
        out = np.array(idx, dtype=np.intp)
        if kind in ("bits", "word_bits"):
            gather = np.array([p.offset for p in members], dtype=np.intp)
            bits = np.array([p.bit for p in members], dtype=np.uint16) if kind == "word_bits" else None
            groups.append(_Group(out, gather, bits, None, scale, offset))
            continue
        pos = np.array(byte_positions(2 * register_count(kind), order), dtype=np.intp)
        gather = np.array([2 * p.offset for p in members], dtype=np.intp)[:, None] + pos[None, :]
        groups.append(_Group(out, gather, None, _NUMPY_TYPE[kind], scale, offset))
    return tuple(groups)


def plan_reads(
    points: Iterable[tuple[int, Point]], max_gap: int | None = DEFAULT_MAX_GAP
) -> list[ReadRequest]:
    """Coalesce one device's points, given as ``(sensor index, Point)``, into read requests.

    Points are grouped by register table and sorted by address; a request grows while it stays
    within the protocol's limit (125 registers, 2000 bits) and the hole before the next point is
    at most ``max_gap`` registers or bits (``None``: any hole). Greedy growth from the lowest
    address gives the fewest requests for those two constraints.
    """
    by_table: dict[str, list[tuple[int, Point]]] = {}
    for sensor, p in points:
        if p.register_type is None or p.address is None:
            raise ValueError(f"point {p.key!r} has no Modbus register")
        by_table.setdefault(p.register_type, []).append((sensor, p))
    requests: list[ReadRequest] = []
    for table in ("holding", "input", "coil", "discrete"):
        members = by_table.get(table)
        if not members:
            continue
        limit = MAX_BITS if table in BIT_TABLES else MAX_REGISTERS
        width = 1 if table in BIT_TABLES else None
        members.sort(key=lambda sp: (sp[1].address, sp[0]))
        current: list[tuple[int, Point]] = []
        start = end = 0
        for sensor, p in members:
            w = width or register_count(p.modbus_dtype)
            p_end = p.address + w
            fits = current and max(end, p_end) - start <= limit
            near = max_gap is None or p.address - end <= max_gap
            if fits and near:
                current.append((sensor, p))
                end = max(end, p_end)
                continue
            if current:
                requests.append(_request(table, start, end, current))
            current, start, end = [(sensor, p)], p.address, p_end
        requests.append(_request(table, start, end, current))
    return requests


def _request(table: str, start: int, end: int, members: list[tuple[int, Point]]) -> ReadRequest:
    reads = tuple(
        PointRead(sensor, p.key, p.address - start, p.modbus_dtype, p.order, p.bit, p.scale, p.offset)
        for sensor, p in members
    )
    return ReadRequest(table, start, end - start, reads)
