"""The MQTT telemetry payload codec: JSON bytes in, numpy parts of a ReadingBatch out; no I/O.

A payload is one object ``{"ts": <epoch ms, optional>, "values": {"<point>": <number>, ...}}`` or a
non-empty array of them; a value may be ``{"v": <number>, "q": "<quality>"}``. orjson decodes it;
plain numbers for known points go through a C-level fast path (``np.fromiter``), everything else
through a per-value path that records why a reading was refused. Refused readings do not spoil
the good ones of the same message: :func:`decode_telemetry` raises :class:`PayloadError` only when
nothing of the message is usable, and otherwise returns the readings with their problems.

A timestamp must also be plausible against the gateway's clock (:class:`Window`): an object stamped
more than the allowed clock skew ahead (``ts_future``) or older than the stores keep (``ts_too_old``,
beyond the retention) is refused with all its values; the other objects of the message are kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from gateway.batch import QUALITY_DTYPE, SENSOR_DTYPE, TS_DTYPE, VALUE_DTYPE, Quality, ReadingBatch
from gateway.errors import PayloadError

TS_MIN_MS = 946_684_800_000  # 2000-01-01: anything earlier is seconds sent as milliseconds, or junk
TS_MAX_MS = 4_102_444_800_000  # 2100-01-01
_NUMBERS = frozenset({int, float})
_OBJECT_KEYS = frozenset({"ts", "values"})
_VALUE_KEYS = frozenset({"v", "q"})

# One decoded object of a payload: sensor indexes, one timestamp (ns), values, qualities (None: good).
Part = tuple[np.ndarray, int, np.ndarray, np.ndarray | None]


@dataclass(slots=True)
class Decoded:
    """What a telemetry payload yielded: readings in parts, and problems by reason."""

    parts: list[Part] = field(default_factory=list)
    problems: dict[str, list[Any]] = field(default_factory=dict)  # reason -> [count, first detail]
    readings: int = 0

    def problem(self, reason: str, detail: str, n: int = 1) -> None:
        entry = self.problems.get(reason)
        if entry is None:
            self.problems[reason] = [n, detail]
        else:
            entry[0] += n


@dataclass(frozen=True, slots=True)
class Window:
    """The timestamps accepted now: ``[now - max_age, now + max_ahead]`` (ns, on the gateway's clock)."""

    now_ns: int
    max_ahead_ns: int
    max_age_ns: int

    def refuse(self, ts_ns: int) -> tuple[str, str] | None:
        """Why a reading stamped ``ts_ns`` is refused (reason, detail), or None."""
        ahead = ts_ns - self.now_ns
        if ahead > self.max_ahead_ns:
            return "ts_future", (f"ts is {ahead / 1e9:.0f} s ahead of the gateway's clock"
                                 f" (max_clock_skew {self.max_ahead_ns / 1e9:g} s)")
        if -ahead > self.max_age_ns:
            return "ts_too_old", (f"ts is {-ahead / 86_400e9:.1f} days old, beyond the retention"
                                  f" ({self.max_age_ns / 86_400e9:g} days)")
        return None


def _ts_ns(ts: object) -> int:
    if type(ts) not in _NUMBERS or not math.isfinite(ts) or not TS_MIN_MS <= ts < TS_MAX_MS:  # type: ignore[arg-type]
        raise PayloadError("bad_ts", f"ts must be epoch milliseconds (2000..2100), not {ts!r:.40}")
    whole = int(ts)  # type: ignore[call-overload]
    return whole * 1_000_000 + (0 if type(ts) is int else round((ts - whole) * 1_000_000))  # type: ignore[operator]


def _decode_values(values: dict, points: Mapping[str, int], ts_ns: int, out: Decoded, finite: bool) -> None:
    n = len(values)
    if _NUMBERS.issuperset(map(type, values.values())):
        # Fast path: plain numbers for known points, converted in C. ``finite``: orjson refuses
        # NaN, Infinity and overflowing numbers, so only the json fallback needs the check.
        try:
            sensors_a = np.fromiter(map(points.__getitem__, values), SENSOR_DTYPE, n)
        except KeyError:
            pass
        else:
            vals = np.fromiter(values.values(), VALUE_DTYPE, n)
            if finite or np.isfinite(vals).all():
                out.parts.append((sensors_a, ts_ns, vals, None))
                out.readings += n
                return
    sensors: list[int] = []
    vals_l: list[float] = []
    quals: list[int] = []
    for key, raw in values.items():
        idx = points.get(key)
        if idx is None:
            out.problem("unknown_point", f"point {key!r:.70} is not configured for this device")
            continue
        q = Quality.GOOD
        if type(raw) is dict:
            if not _VALUE_KEYS.issuperset(raw) or "v" not in raw:
                out.problem("bad_shape", f"{key}: a value object is {{\"v\": number, \"q\": quality}}")
                continue
            word = raw.get("q", "good")
            try:
                if type(word) is not str:
                    raise ValueError(word)
                q = Quality.parse(word)
            except ValueError:
                out.problem("bad_quality", f"{key}: unknown quality {word!r:.30} (good, uncertain, bad)")
                continue
            raw = raw["v"]
        if type(raw) not in _NUMBERS:
            out.problem("not_number", f"{key}: value {raw!r:.40} is not a number")
            continue
        if not math.isfinite(raw):
            out.problem("non_finite", f"{key}: value {raw!r} is not finite")
            continue
        sensors.append(idx)
        vals_l.append(raw)
        quals.append(q)
    if sensors:
        out.parts.append((np.array(sensors, SENSOR_DTYPE), ts_ns, np.array(vals_l, VALUE_DTYPE),
                          np.array(quals, QUALITY_DTYPE) if any(quals) else None))
        out.readings += len(sensors)


def decode_telemetry(payload: bytes, points: Mapping[str, int], window: Window) -> Decoded:
    """Decode a telemetry payload for a device whose points map key → sensor index.

    An object without ``ts`` is stamped ``window.now_ns``; one whose ``ts`` lies outside the window
    is refused. Raises PayloadError when nothing of the message can be used; otherwise returns the
    readings with the problems of the parts that were refused.
    """
    finite = True
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:  # the stdlib accepts NaN, Infinity and 1e999: parse again to keep the good readings
            doc = json.loads(payload)
            finite = False
        except ValueError:
            raise PayloadError("not_json", str(exc)[:120]) from exc
    if type(doc) is dict:
        objects: list = [doc]
    elif type(doc) is list and doc:
        objects = doc
    else:
        raise PayloadError("bad_shape", "payload must be an object {ts, values} or a non-empty array of them")
    out = Decoded()
    for i, obj in enumerate(objects):
        where = f"[{i}] " if len(objects) > 1 else ""
        values = obj.get("values") if type(obj) is dict else None
        if type(values) is not dict or not values:
            out.problem("bad_shape", f"{where}needs \"values\": a non-empty object of point: number")
            continue
        if not _OBJECT_KEYS.issuperset(obj):
            extra = sorted(set(obj) - _OBJECT_KEYS)[0]
            out.problem("bad_shape", f"{where}unknown key {extra!r:.40} (allowed: ts, values)", len(values))
            continue
        ts = obj.get("ts")
        if ts is None:
            ts_ns = window.now_ns
        else:
            try:
                ts_ns = _ts_ns(ts)
            except PayloadError as exc:
                out.problem(exc.reason, where + exc.detail, len(values))
                continue
            refused = window.refuse(ts_ns)
            if refused is not None:
                out.problem(refused[0], where + refused[1], len(values))
                continue
        _decode_values(values, points, ts_ns, out, finite)
    return out


def batch_of(parts: list[Part]) -> ReadingBatch:
    """Join decoded parts into one ReadingBatch."""
    lengths = [len(p[0]) for p in parts]
    if any(p[3] is not None for p in parts):
        quality = np.concatenate([np.zeros(n, QUALITY_DTYPE) if p[3] is None else p[3]
                                  for p, n in zip(parts, lengths, strict=True)])
    else:
        quality = np.zeros(sum(lengths), QUALITY_DTYPE)
    ts = np.repeat(np.fromiter((p[1] for p in parts), TS_DTYPE, len(parts)), lengths)
    if len(parts) == 1:
        return ReadingBatch(parts[0][0], ts, parts[0][2], quality)
    return ReadingBatch(np.concatenate([p[0] for p in parts]), ts, np.concatenate([p[2] for p in parts]),
                        quality)
