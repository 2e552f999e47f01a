"""The login throttle: failed logins counted per username and per client address.

A few failures are free; past them each failure doubles the wait before the next try (1 s, 2 s,
4 s ... up to ``max_delay_s``), and at ``lock_after`` failures the name (or address) is locked for
``lock_s`` seconds. A try made during a wait or a lock is refused before any password work
(:class:`~gateway.errors.LoginThrottled`, a 429 with ``Retry-After``) and does not count. The
failures of a key are forgotten ``lock_s`` after its last one, and a good login clears its
username's (never its address's: one good account must not buy guesses at others). Unknown names
are counted like known ones. Both tables are LRU-bounded (``max_keys``), so no stream of made-up
names or addresses grows memory without bound; the keys pushed out are the least recently failed.
Time comes from the gateway's clock, so tests move it by hand.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.errors import LoginThrottled


@dataclass(frozen=True, slots=True)
class Rule:
    """``free`` failures without delay; locked at ``lock_after``."""

    free: int
    lock_after: int


@dataclass(slots=True)
class _Failures:
    count: int
    last_s: float


class FailureTable:
    """Failures per key under one :class:`Rule`, at most ``max_keys`` keys (least recent dropped)."""

    def __init__(self, rule: Rule, lock_s: float, max_delay_s: float, max_keys: int) -> None:
        self.rule = rule
        self.lock_s = lock_s
        self.max_delay_s = max_delay_s
        self.max_keys = max_keys
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def _live(self, key: str, now_s: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and now_s - entry.last_s >= self.lock_s:
            del self._keys[key]
            return None
        return entry

    def wait_s(self, key: str, now_s: float) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        entry = self._live(key, now_s)
        if entry is None or entry.count < self.rule.free:
            return 0.0
        if entry.count >= self.rule.lock_after:
            delay = self.lock_s
        else:
            delay = min(2.0 ** (entry.count - self.rule.free), self.max_delay_s)
        return max(0.0, entry.last_s + delay - now_s)

    def locked(self, key: str, now_s: float) -> bool:
        entry = self._live(key, now_s)
        return entry is not None and entry.count >= self.rule.lock_after

    def fail(self, key: str, now_s: float) -> None:
        entry = self._live(key, now_s)
        if entry is None:
            self._keys[key] = _Failures(1, now_s)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            entry.count += 1
            entry.last_s = now_s
            self._keys.move_to_end(key)

    def clear(self, key: str) -> None:
        self._keys.pop(key, None)


class LoginThrottle:
    """Failed logins per username and per client address (see the module)."""

    def __init__(self, clock: Clock, *, lock_after: int = 20, lock_s: float = 900, free: int = 5,
                 address_factor: int = 5, max_delay_s: float = 60, max_keys: int = 10_000) -> None:
        self.clock = clock
        self.users = FailureTable(Rule(free, lock_after), lock_s, max_delay_s, max_keys)
        # an address may be shared (a NAT, a proxy): it gets more room than a single name
        self.addresses = FailureTable(Rule(free * address_factor, lock_after * address_factor), lock_s,
                                      max_delay_s, max_keys)

    def _now(self) -> float:
        return self.clock.now_ns() / 1e9

    def check(self, username: str, address: str) -> None:
        """Raise LoginThrottled if this name or address must wait; do nothing otherwise."""
        now = self._now()
        wait = max(self.users.wait_s(username, now), self.addresses.wait_s(address, now))
        if wait > 0:
            locked = self.users.locked(username, now) or self.addresses.locked(address, now)
            what = "locked after too many failed logins" if locked else "too many failed logins"
            raise LoginThrottled(f"{what}: try again in {math.ceil(wait)} s", math.ceil(wait))

    def failed(self, username: str, address: str) -> None:
        now = self._now()
        self.users.fail(username, now)
        self.addresses.fail(address, now)

    def succeeded(self, username: str) -> None:
        self.users.clear(username)
