"""The one backoff and the one Retry-After parser every peer-facing component uses."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from gateway.retry import RETRY_AFTER_MAX, Backoff, parse_retry_after


def test_retry_after_forms():
    now = time.time()
    assert parse_retry_after("2", now) == 2.0
    assert parse_retry_after("0.25", now) == 0.25
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30, abs=1.5)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0.0  # a date in the past: now
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after("-5", now) == 0.0
    assert parse_retry_after("1e308", now) == RETRY_AFTER_MAX
    assert parse_retry_after("Fri, 31 Dec 99999 23:59:59 GMT", now) is None  # year out of range


def test_backoff_doubles_with_equal_jitter_up_to_its_cap_and_resets():
    b = Backoff(0.5, 4.0)
    delays = [b.next() for _ in range(8)]
    for delay, nominal in zip(delays, [0.5, 1, 2, 4, 4, 4, 4, 4], strict=True):
        assert nominal / 2 <= delay <= nominal
    b.reset()
    assert 0.25 <= b.next() <= 0.5


def test_backoff_jitter_spreads_a_herd():
    firsts = {round(Backoff(1.0, 1.0).next(), 6) for _ in range(50)}
    assert len(firsts) > 40


@pytest.mark.parametrize("first,cap", [(0, 1), (-1, 1), (2, 1)])
def test_backoff_refuses_nonsense(first, cap):
    with pytest.raises(ValueError, match="backoff"):
        Backoff(first, cap)


def test_backoff_survives_a_very_long_outage():
    b = Backoff(0.5, 30.0)
    b.failures = 10_000
    assert 15 <= b.next() <= 30
