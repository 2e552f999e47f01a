"""Readings as packed arrays: the head blocks and per-sensor chunks of the embedded store, in numpy.

The store keeps readings in two shapes, both packed arrays rather than one row per reading:

- a **head block** is one sink write's readings of one group of sensors, sorted by (sensor, ts):
  the stored sensor keys (int32), timestamps (int64 ns), values (float64), qualities (uint8);
- a **chunk** is one sensor's readings in one window of time, sorted by ts and without duplicate
  timestamps: ts as deltas from the window start, values byte-shuffled (the eight bytes of every
  float64 grouped by position, which is what makes them compress) and qualities, compressed
  together with zlib at level 1.

Nothing here does I/O: the functions turn arrays into bytes and back, merge readings keeping the
first one of each (sensor, ts), and aggregate a series into buckets. :mod:`sqlite_store` stores them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from gateway.batch import Quality

SID = np.dtype(np.int32)
TS = np.dtype(np.int64)
VALUE = np.dtype(np.float64)
QUALITY = np.dtype(np.uint8)
BYTES_PER_READING = SID.itemsize + TS.itemsize + VALUE.itemsize + QUALITY.itemsize


@dataclass(frozen=True, slots=True)
class Readings:
    """Readings of stored sensor keys as parallel arrays (the store's own keys, not registry indexes)."""

    sid: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray | slice) -> Readings:
        return Readings(self.sid[index], self.ts[index], self.value[index], self.quality[index])

    @classmethod
    def concat(cls, parts: list[Readings]) -> Readings:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls(np.empty(0, SID), np.empty(0, TS), np.empty(0, VALUE), np.empty(0, QUALITY))
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("sid", "ts", "value", "quality")))


def first_of_each(r: Readings) -> Readings:
    """Sorted by (sid, ts), one reading per (sid, ts): the first of them in ``r``'s order.

    ``lexsort`` is stable, so among equal keys the earlier reading stays first: callers put what was
    stored before ahead of what comes now, and a replayed write changes nothing.
    """
    if len(r) == 0:
        return r
    order = np.lexsort((r.ts, r.sid))
    s = r.take(order)
    keep = np.ones(len(s), dtype=bool)
    keep[1:] = (s.sid[1:] != s.sid[:-1]) | (s.ts[1:] != s.ts[:-1])
    return s if keep.all() else s.take(keep)


def encode_block(r: Readings) -> bytes:
    """A head block: ``r`` (sorted by sid, ts) as four packed arrays."""
    return b"".join((r.sid.astype(SID, copy=False).tobytes(), r.ts.astype(TS, copy=False).tobytes(),
                     r.value.astype(VALUE, copy=False).tobytes(), r.quality.astype(QUALITY, copy=False).tobytes()))


def decode_block(payload: bytes, n: int) -> Readings:
    buf = memoryview(payload)
    a, b, c = 4 * n, 12 * n, 20 * n
    return Readings(np.frombuffer(buf[:a], SID), np.frombuffer(buf[a:b], TS),
                    np.frombuffer(buf[b:c], VALUE), np.frombuffer(buf[c:c + n], QUALITY))


def block_slice(block: Readings, sid: int) -> Readings:
    """One sensor's readings of a head block (sorted by sid, so two binary searches)."""
    lo, hi = np.searchsorted(block.sid, [sid, sid + 1])
    return block.take(slice(int(lo), int(hi)))


def encode_chunk(t0: int, ts: np.ndarray, value: np.ndarray, quality: np.ndarray) -> bytes:
    """One sensor's readings of a window starting at ``t0`` (ts sorted, unique) as a chunk payload."""
    n = len(ts)
    r = Readings(np.zeros(n, SID), ts, value, quality)
    return encode_chunks(r, np.array([0]), np.array([n]), np.array([t0], TS))[0]


def encode_chunks(r: Readings, starts: np.ndarray, ends: np.ndarray, t0: np.ndarray) -> list[bytes]:
    """Payloads of the chunks ``r[starts[i]:ends[i]]`` (each one sensor's, in window ``t0[i]``).

    The deltas and the byte shuffle are computed for all chunks at once; only the slicing and
    zlib run per chunk (zlib is most of the cost: about 25 µs for a chunk of 60 readings).
    """
    deltas = np.empty(len(r), TS)
    deltas[1:] = r.ts[1:] - r.ts[:-1]
    deltas[starts] = r.ts[starts] - t0
    d = deltas.tobytes()
    v = np.ascontiguousarray(r.value, VALUE).view(np.uint8).reshape(-1, 8)
    q = np.ascontiguousarray(r.quality, QUALITY).tobytes()
    compress = zlib.compress
    return [compress(b"".join((d[8 * a:8 * b], v[a:b].T.tobytes(), q[a:b])), 1)
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def decode_chunk(t0: int, n: int, payload: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raw = zlib.decompress(payload)
    ts = np.cumsum(np.frombuffer(raw, TS, n)) + t0
    value = np.frombuffer(raw, np.uint8, 8 * n, 8 * n).reshape(8, n).T.copy().view(VALUE).ravel()
    quality = np.frombuffer(raw, QUALITY, n, 16 * n)
    return ts, value, quality


def chunk_bounds(r: Readings, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where ``r`` (sorted by sid, ts; unique) changes sensor or window: (starts, ends, window starts)."""
    t0 = r.ts // width * width
    cut = np.flatnonzero((r.sid[1:] != r.sid[:-1]) | (t0[1:] != t0[:-1])) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [len(r)]))
    return starts, ends, t0[starts]


def aggregate(ts: np.ndarray, value: np.ndarray, quality: np.ndarray, every: int, agg: str,
              limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Buckets of ``every`` ns (starting at multiples of it since the epoch) of a series sorted by ts.

    Fault readings are left out. The bucket's value is the mean, min, max or last value; its quality
    the highest among the readings aggregated (for ``last``: that of the last reading).
    """
    ok = quality < Quality.FAULT
    ts, value, quality = ts[ok], value[ok], quality[ok]
    if not len(ts):
        return ts, value, quality
    bucket = ts // every * every
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))[:limit]
    end = int(np.searchsorted(bucket, bucket[starts[-1]], side="right"))
    value, quality = value[:end], quality[:end]
    if agg == "last":
        last = np.concatenate((starts[1:], [end])) - 1
        return bucket[starts], value[last], quality[last]
    ufunc = {"mean": np.add, "min": np.minimum, "max": np.maximum}[agg]
    out = ufunc.reduceat(value, starts)
    if agg == "mean":
        out = out / np.diff(np.concatenate((starts, [end])))
    return bucket[starts], out, np.maximum.reduceat(quality, starts)
