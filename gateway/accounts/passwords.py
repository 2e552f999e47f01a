"""Password hashing: argon2id, done in a small bounded pool of threads.

argon2 is made to be costly in memory and time, so a burst of logins must not be able to take an
unbounded amount of either. Every hash and verification runs in one of ``workers`` threads, with
at most ``queue`` more waiting; one more is refused at once (:class:`~gateway.errors.HasherBusy`,
answered 503 with ``Retry-After``), never queued. The memory argon2 takes is therefore at most
``workers`` times the memory of the costliest hash (the configuration bounds it). The event loop
only awaits the result. A username that does not exist is verified against a dummy hash with the
same parameters as the stored hashes (those most of them share), so an unknown name and a wrong
password take the same time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.errors import HasherBusy

T = TypeVar("T")
BUSY_RETRY_S = 1


@dataclass(frozen=True, slots=True)
class HashParams:
    """argon2id cost: memory in KiB, passes, lanes."""

    memory_kib: int = 19 * 1024
    time_cost: int = 2
    parallelism: int = 1

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_kib,
                              parallelism=self.parallelism, type=Type.ID)

    @classmethod
    def of(cls, password_hash: str) -> HashParams | None:
        """The parameters of a stored hash; None when it is not an argon2 hash."""
        try:
            p = extract_parameters(password_hash)
        except InvalidHashError:
            return None
        return cls(p.memory_cost, p.time_cost, p.parallelism)


def most_common_params(hashes: Iterable[str], default: HashParams) -> HashParams:
    """The parameters most of ``hashes`` share (``default`` when there are none)."""
    counts = Counter(p for p in map(HashParams.of, hashes) if p is not None)
    return counts.most_common(1)[0][0] if counts else default


def verify(password_hash: str, password: str) -> bool:
    """True if ``password`` matches ``password_hash``; a malformed hash never matches. Blocking."""
    try:
        return PasswordHasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class PasswordPool:
    """argon2 work in ``workers`` threads with at most ``queue`` calls waiting (see the module)."""

    def __init__(self, params: HashParams, workers: int = 1, queue: int = 8) -> None:
        self.params = params
        self._hasher = params.hasher()
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="argon2")
        self._slots = workers + queue
        self._taken = 0
        self._lock = threading.Lock()
        self._dummies: dict[HashParams, str] = {}
        self.dummy_params = params
        self.verified = 0  # verifications done (dummy ones included)
        self.refused = 0  # calls refused because every slot was taken

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        with self._lock:
            if self._taken >= self._slots:
                self.refused += 1
                raise HasherBusy("too many logins at once: try again shortly", BUSY_RETRY_S)
            self._taken += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        # The slot is given back when the work ends (or is cancelled before it starts), not when the
        # awaiting request goes away: a client that disconnects does not free a thread still hashing.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _future: concurrent.futures.Future | None) -> None:
        with self._lock:
            self._taken -= 1

    async def hash(self, password: str) -> str:
        """A new argon2id hash of ``password`` with the pool's parameters."""
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; None (no such login) verifies against the dummy hash."""
        return await self._run(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        with self._lock:
            self.verified += 1
        if password_hash is None:
            verify(self._dummy(self.dummy_params), password)
            return False
        return verify(password_hash, password)

    def _dummy(self, params: HashParams) -> str:
        dummy = self._dummies.get(params)
        if dummy is None:
            dummy = self._dummies[params] = params.hasher().hash("gridgate: no such login")
        return dummy

    def prepare(self) -> None:
        """Blocking: make the dummy hash now (start-up), so the first unknown name costs no extra hash."""
        self._dummy(self.dummy_params)

    def hash_now(self, password: str) -> str:
        """Blocking: a hash in the caller's thread (the command line, start-up)."""
        return self._hasher.hash(password)
