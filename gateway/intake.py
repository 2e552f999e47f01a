"""Where collectors hand over what they read: readings, device status, and rejections.

Collectors call :meth:`Intake.submit` with a :class:`ReadingBatch` (it blocks when the pipeline is
behind: backpressure, never a drop), :meth:`Intake.device_status` when a device goes offline or
comes back, and :meth:`RejectCounter.reject` for every input they cannot accept. Rejections are
counted by kind and reason, logged once per (kind, reason), and the latest are kept for the API.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.batch import ReadingBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device went offline (``online=False``) or came back, at ``ts`` (epoch ns)."""

    device_index: int
    online: bool
    ts: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    ts: int
    kind: str  # "mqtt", "modbus", "intake", ...
    reason: str  # short code: "not_json", "unknown_point", "non_finite", ...
    source: str  # where from: a topic, a device id
    detail: str


class RejectCounter:
    """Counts rejected input by (kind, reason); thread-safe, since paho calls from its own thread."""

    def __init__(self, keep: int = 200) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.recent: deque[Rejection] = deque(maxlen=keep)

    def reject(self, kind: str, reason: str, source: str, detail: str = "", n: int = 1) -> None:
        with self._lock:
            first = (kind, reason) not in self.counts
            self.counts[(kind, reason)] += n
            self.recent.append(Rejection(time.time_ns(), kind, reason, source, detail))
        if first:
            log.warning("rejected %s input (%s) from %s: %s; further ones are counted", kind, reason,
                        source, detail)

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f"{k}:{r}": n for (k, r), n in sorted(self.counts.items())}


class Intake:
    """The bounded entry of the pipeline, shared by every collector."""

    def __init__(self, maxsize: int = 256,
                 accept: Callable[[ReadingBatch], Awaitable[None]] | None = None) -> None:
        self.readings: asyncio.Queue[ReadingBatch] = asyncio.Queue(maxsize)
        self.accept = accept  # the durable step (the outbox): a batch counts as accepted after it
        self.statuses: asyncio.Queue[DeviceStatus] = asyncio.Queue(4096)
        self.rejects = RejectCounter()
        self.submitted = 0

    async def submit(self, batch: ReadingBatch) -> None:
        """Hand a batch to the pipeline; returns once it is accepted (durable, when ``accept`` is set).

        Waits while the outbox or the pipeline is full: backpressure, never a drop.
        """
        if len(batch):
            if self.accept is not None:
                await self.accept(batch)
            await self.readings.put(batch)
            self.submitted += len(batch)

    async def device_status(self, status: DeviceStatus) -> None:
        await self.statuses.put(status)
