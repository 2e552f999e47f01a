"""Parsing of query parameters that FastAPI's types do not cover: times and bucket widths.

Times are ISO 8601 with an explicit offset (``2024-05-01T08:00:00+08:00``, ``...Z``) or epoch
milliseconds; a time without an offset is refused rather than guessed. Every time lies between 1970
and 2262-01-01 (:data:`MAX_MS`): the stores keep nanoseconds in SQLite's signed 64-bit integer,
which ends in April 2262. Bucket widths are seconds (``10``) or a number with a unit (``500ms``,
``10s``, ``5m``, ``1h``, ``1d``), at most 12 digits. A malformed or out-of-range value is a 422
naming the parameter; a well-formed but unacceptable request (end before start) is a 400 raised
by the route.
"""

from __future__ import annotations

import re
from datetime import datetime

from fastapi import HTTPException, status

MAX_MS = 9_214_646_400_000  # 2262-01-01T00:00:00Z: in ns, SQLite's int64 ends on 2262-04-11
MAX_MINUTES = 366 * 24 * 60  # the longest duration a request may ask for (a year)
_EVERY = re.compile(r"^\s*(\d{1,12}(?:\.\d{1,9})?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
            "d": 86_400_000_000_000}


def bad_param(name: str, message: str, where: str = "query") -> HTTPException:
    """A 422 for the parameter ``name`` (in the query, or the ``body``), in FastAPI's shape."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                         [{"loc": [where, name], "msg": message, "type": "value_error"}])


def parse_time_ms(name: str, text: str, where: str = "query") -> int:
    """Epoch milliseconds from ISO 8601 (with an offset) or epoch ms; 422 otherwise."""
    text = text.strip()
    if len(text) > 64:
        raise bad_param(name, "not ISO 8601 or epoch milliseconds", where)
    if re.fullmatch(r"\d{1,15}", text):
        ms = int(text)
    else:
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise bad_param(name, "not ISO 8601 or epoch milliseconds", where) from None
        if dt.tzinfo is None:
            raise bad_param(name, "an ISO 8601 time needs an offset, e.g. +08:00 or Z", where)
        try:
            ms = int(dt.timestamp() * 1000)
        except (OverflowError, ValueError):  # year 1 with a positive offset
            raise bad_param(name, "time out of range (1970 to 2262)", where) from None
    if not 0 <= ms <= MAX_MS:
        raise bad_param(name, "time out of range (1970 to 2262)", where)
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
    """When something asked for "for ``minutes``" or "``until`` a time" ends (None: neither given).

    ``minutes`` must be finite and at most :data:`MAX_MINUTES` (the body models say so too), and
    ``until`` a time :func:`parse_time_ms` accepts; otherwise a 422 naming the field.
    """
    if minutes is not None:
        if not 0 < minutes <= MAX_MINUTES:  # also false for NaN
            raise bad_param("minutes", f"minutes must be more than 0 and at most {MAX_MINUTES}", "body")
        return now_ms + int(minutes * 60_000)
    if isinstance(until, int) and not 0 <= until <= MAX_MS:  # before str(): a huge int is slow to print
        raise bad_param("until", "time out of range (1970 to 2262)", "body")
    if until is not None:
        return parse_time_ms("until", str(until), "body")
    return None
