"""Where collectors hand over what they read: readings, device status, and rejections.

Collectors call :meth:`Intake.submit` with a :class:`ReadingBatch` (it blocks when the pipeline is
behind: backpressure, never a drop), :meth:`Intake.device_status` when a device goes offline or
comes back, and :meth:`RejectCounter.reject` for every input they cannot accept. Rejections are
counted by kind and reason, logged once per (kind, reason), and the latest are kept for the API.

Points with ``signal = "4-20mA"`` arrive as loop current; :class:`LoopConversion` turns them into
engineering units before the batch is stored, so every store and the detector see one unit per point.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gateway.batch import QUALITY_DTYPE, Quality, ReadingBatch

if TYPE_CHECKING:
    from gateway.registry import Registry

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


# NAMUR NE 43, in mA: 4-20 is a measurement; down to 3.6 and up to 21.0 still one (saturated,
# clamped to the range); beyond them the loop or the transmitter has failed.
LOOP_LOW, LOOP_HIGH = 4.0, 20.0
LOOP_FAIL_BELOW, LOOP_FAIL_ABOVE = 3.6, 21.0


@dataclass(frozen=True, slots=True)
class LoopConversion:
    """Loop current (mA) to engineering units for the sensors whose point has ``signal = "4-20mA"``.

    ``value = lo + (mA - 4) / 16 * (hi - lo)`` over the point's measuring range. Per NAMUR NE 43 a
    current outside 4-20 mA but within 3.6-21.0 mA is saturated: still a measurement, of quality
    UNCERTAIN, clamped to the range. Below 3.6 or above 21.0 mA (or not finite) the loop has failed:
    the reading keeps its linear, out-of-range value and gets quality FAULT, so a dead transmitter
    is a fault and never a gas reading of zero. A collector's own quality is kept when it is worse.
    """

    loop: np.ndarray  # bool per sensor index
    low: np.ndarray  # range low per sensor index (0 where not a loop)
    span: np.ndarray  # range high - range low
    any_loop: bool

    @classmethod
    def from_registry(cls, registry: Registry) -> LoopConversion:
        points = [s.point for s in registry.sensors]
        loop = np.array([p.signal == "4-20mA" for p in points], dtype=bool)
        ranges = [p.effective_range() if p.signal == "4-20mA" else (0.0, 1.0) for p in points]
        low = np.array([r[0] for r in ranges], dtype=np.float64)
        span = np.array([r[1] for r in ranges], dtype=np.float64) - low
        return cls(loop, low, span, bool(loop.any()))

    def convert(self, batch: ReadingBatch) -> ReadingBatch:
        """The batch with loop readings in engineering units and their NE 43 quality; others as they were."""
        if not self.any_loop or not len(batch):
            return batch
        at = np.flatnonzero(self.loop[batch.sensor])
        if not len(at):
            return batch
        s, ma = batch.sensor[at], batch.value[at]
        lo, span = self.low[s], self.span[s]
        eng = lo + (ma - LOOP_LOW) / (LOOP_HIGH - LOOP_LOW) * span
        failed = ~((ma >= LOOP_FAIL_BELOW) & (ma <= LOOP_FAIL_ABOVE))  # NaN fails too
        saturated = (ma < LOOP_LOW) | (ma > LOOP_HIGH)
        own = np.where(failed, Quality.FAULT, np.where(saturated, Quality.UNCERTAIN, Quality.GOOD))
        value = batch.value.copy()
        value[at] = np.where(failed, eng, np.clip(eng, lo, lo + span))
        quality = batch.quality.copy()
        quality[at] = np.maximum(batch.quality[at], own.astype(QUALITY_DTYPE))
        return ReadingBatch(batch.sensor, batch.ts, value, quality)


class Intake:
    """The bounded entry of the pipeline, shared by every collector."""

    def __init__(self, maxsize: int = 256,
                 accept: Callable[[ReadingBatch], Awaitable[None]] | None = None,
                 loop: LoopConversion | None = None) -> None:
        self.readings: asyncio.Queue[ReadingBatch] = asyncio.Queue(maxsize)
        self.accept = accept  # the durable step (the outbox): a batch counts as accepted after it
        self.loop = loop  # 4-20 mA points: converted before the durable step
        self.statuses: asyncio.Queue[DeviceStatus] = asyncio.Queue(4096)
        self.rejects = RejectCounter()
        self.submitted = 0

    async def submit(self, batch: ReadingBatch) -> None:
        """Hand a batch to the pipeline; returns once it is accepted (durable, when ``accept`` is set).

        Waits while the outbox or the pipeline is full: backpressure, never a drop. Loop-current
        readings are converted to engineering units first (``loop``), so what is stored is what
        the detector evaluates.
        """
        if len(batch):
            if self.loop is not None:
                batch = self.loop.convert(batch)
            if self.accept is not None:
                await self.accept(batch)
            await self.readings.put(batch)
            self.submitted += len(batch)

    async def device_status(self, status: DeviceStatus) -> None:
        await self.statuses.put(status)
