"""Retrying a peer that is away: one backoff with jitter and one ``Retry-After`` parser for all.

Every component that talks to a peer (a Modbus device, the MQTT broker, InfluxDB, a webhook
receiver) waits between attempts with :class:`Backoff`: capped exponential growth with "equal
jitter" (half the delay fixed, half random), so a herd of gateways does not retry in step and a
peer that comes back is not hit by all of them at once. A peer's own hint wins: HTTP
``Retry-After`` (delta-seconds or an HTTP date) is read by :func:`parse_retry_after`.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

RETRY_AFTER_MAX = 3600.0  # a Retry-After beyond an hour is a peer's bug, not a plan


class Backoff:
    """Delays ``first``, ``2 × first``, … up to ``cap``, each with equal jitter; :meth:`reset` on success."""

    def __init__(self, first: float, cap: float) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"backoff must be 0 < first <= cap, got ({first}, {cap})")
        self.first = first
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt, counting one more failure."""
        delay = min(self.cap, self.first * 2 ** min(self.failures, 62))
        self.failures += 1
        return delay / 2 + random.uniform(0, delay / 2)

    def reset(self) -> None:
        self.failures = 0


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header; None if absent or unreadable.

    Delta-seconds or an HTTP date (seconds from ``now_s``, by default the wall clock), clipped to
    0 … :data:`RETRY_AFTER_MAX`.
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - (time.time() if now_s is None else now_s)
        except (TypeError, ValueError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)
