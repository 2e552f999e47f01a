"""Parsing of query parameters that FastAPI's types do not cover: times and bucket widths.

Times are ISO 8601 with an explicit offset (``2024-05-01T08:00:00+08:00``, ``...Z``) or epoch
milliseconds; a time without an offset is refused rather than guessed. Bucket widths are seconds
(``10``) or a number with a unit (``500ms``, ``10s``, ``5m``, ``1h``, ``1d``). A malformed value
is a 422 naming the parameter; a well-formed but unacceptable request (end before start) is a 400
raised by the route.
"""

from __future__ import annotations

import re
from datetime import datetime

from fastapi import HTTPException, status

MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: beyond it SQLite's int64 ns overflow
_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
            "d": 86_400_000_000_000}


def bad_param(name: str, message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                         [{"loc": ["query", name], "msg": message, "type": "value_error"}])


def parse_time_ms(name: str, text: str) -> int:
    """Epoch milliseconds from ISO 8601 (with an offset) or epoch ms; 422 otherwise."""
    text = text.strip()
    if re.fullmatch(r"\d{1,15}", text):
        ms = int(text)
    else:
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise bad_param(name, "not ISO 8601 or epoch milliseconds") from None
        if dt.tzinfo is None:
            raise bad_param(name, "an ISO 8601 time needs an offset, e.g. +08:00 or Z")
        ms = int(dt.timestamp() * 1000)
    if not 0 <= ms <= MAX_MS:
        raise bad_param(name, "time out of range")
    return ms


def parse_every_ns(name: str, text: str) -> int:
    """A bucket width in ns from ``10``, ``10s``, ``5m``...: 1 ms to 366 days; 422 otherwise."""
    m = _EVERY.match(text)
    if m is None:
        raise bad_param(name, "a duration like 10, 10s, 5m or 1h")
    ns = int(float(m.group(1)) * _UNIT_NS[m.group(2) or "s"])
    if not _UNIT_NS["ms"] <= ns <= 366 * _UNIT_NS["d"]:
        raise bad_param(name, "duration out of range (1 ms to 366 d)")
    return ns


def end_ms(now_ms: int, minutes: float | None, until: str | int | None) -> int | None:
    """When something asked for "for ``minutes``" or "``until`` a time" ends (None: neither given)."""
    if minutes is not None:
        return now_ms + int(minutes * 60_000)
    if until is not None:
        return parse_time_ms("until", str(until))
    return None
