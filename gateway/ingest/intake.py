"""Where collectors hand over what they read: readings, device status, and rejections.

Collectors call :meth:`Intake.submit` with a :class:`ReadingBatch` (it blocks when the pipeline is
behind: backpressure, never a drop), :meth:`Intake.device_status` when a device goes offline or
comes back, and :meth:`RejectCounter.reject` for every input they cannot accept. Rejections are
counted by kind and reason, logged once per (kind, reason), and the latest are kept for the API.

Before a batch is committed to the outbox the intake settles its quality, so that every reader of
the outbox (the SQLite and InfluxDB sinks, the export, the detector) sees the same reading: points
with ``signal = "4-20mA"`` arrive as loop current and :class:`LoopConversion` turns them into
engineering units, and :class:`RangeCheck` marks a reading outside its sensor's measuring range with
FAULT quality (stored, never averaged, and a fault alarm for the detector).
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
    """A device went offline (``online=False``) or came back, at ``ts`` (epoch ns); or, with
    ``points`` (sensor indexes of the device), those points' reads failing or read again."""

    device_index: int
    online: bool
    ts: int
    reason: str = ""
    points: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejection:
    ts: int
    kind: str  # "mqtt", "modbus", "intake", ...
    reason: str  # short code: "not_json", "unknown_point", "non_finite", ...
    source: str  # where from: a topic, a device id
    detail: str


@dataclass(slots=True)
class DeviceRejections:
    """One reason a registered device's input was refused: how often, the last time (epoch ms), what
    was wrong then, and the start of the payload then (what its engineer needs to fix the sender)."""

    count: int
    last_at: int
    detail: str
    payload: str


PAYLOAD_KEPT = 512  # bytes of a refused payload kept per device and reason


class RejectCounter:
    """Counts rejected input by (kind, reason), and per registered device by reason; thread-safe,
    since paho calls from its own thread. Only callers that know the device (it is registered) name
    it, so the per-device table is bounded by the registry."""

    def __init__(self, keep: int = 200) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.recent: deque[Rejection] = deque(maxlen=keep)
        self.by_device: dict[str, dict[str, DeviceRejections]] = {}

    def of_device(self, device_id: str) -> dict[str, DeviceRejections]:
        with self._lock:
            return dict(self.by_device.get(device_id, {}))

    def reject(self, kind: str, reason: str, source: str, detail: str = "", n: int = 1, *,
               device: str | None = None, payload: bytes = b"") -> None:
        now = time.time_ns()
        with self._lock:
            first = (kind, reason) not in self.counts
            self.counts[(kind, reason)] += n
            self.recent.append(Rejection(now, kind, reason, source, detail))
            if device is not None:
                seen = self.by_device.setdefault(device, {}).get(reason)
                text = payload[:PAYLOAD_KEPT].decode("utf-8", "backslashreplace")
                if seen is None:
                    self.by_device[device][reason] = DeviceRejections(n, now // 1_000_000, detail, text)
                else:
                    seen.count += n
                    seen.last_at, seen.detail, seen.payload = now // 1_000_000, detail, text
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


@dataclass(frozen=True, slots=True)
class RangeCheck:
    """Each sensor's measuring range (NaN where it has none): a reading outside it is a FAULT reading."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_registry(cls, registry: Registry) -> RangeCheck:
        ranges = [s.point.effective_range() for s in registry.sensors]
        return cls(np.array([np.nan if r[0] is None else r[0] for r in ranges], dtype=np.float64),
                   np.array([np.nan if r[1] is None else r[1] for r in ranges], dtype=np.float64))

    def outside(self, batch: ReadingBatch) -> np.ndarray:
        """Which readings lie outside their range and are not marked FAULT yet."""
        v = batch.value
        out = (v < self.low[batch.sensor]) | (v > self.high[batch.sensor])
        return out & (batch.quality != Quality.FAULT)


class Intake:
    """The bounded entry of the pipeline, shared by every collector.

    With ``accept`` (the outbox commit) a batch is done once it is durable: every consumer reads it
    back from the outbox. Without it (a collector on its own, in tests and benches) accepted batches
    wait in ``readings`` for whoever reads them. A device's status goes the same way: with
    ``accept_status`` (the alarm book recording the device's communication alarm) it is done once
    recorded, so an MQTT ``offline`` is acknowledged only when its alarm is durable; without it,
    statuses wait in ``statuses``.
    """

    def __init__(self, maxsize: int = 256,
                 accept: Callable[[ReadingBatch], Awaitable[None]] | None = None,
                 loop: LoopConversion | None = None, ranges: RangeCheck | None = None,
                 registry: Registry | None = None,
                 accept_status: Callable[[DeviceStatus], Awaitable[None]] | None = None,
                 accept_settles: bool = False) -> None:
        self.readings: asyncio.Queue[ReadingBatch] = asyncio.Queue(maxsize)
        self.accept = accept  # the durable step (the outbox): a batch counts as accepted after it
        # True: ``accept`` calls :meth:`settle` itself on what it commits (the outbox's group commit
        # settles the batches of a commit together: once per commit rather than per batch)
        self.accept_settles = accept_settles and accept is not None
        self.loop = loop  # 4-20 mA points: converted before the durable step
        self.ranges = ranges  # measuring ranges: marked before the durable step
        self.registry = registry  # to name a sensor in a rejection
        self.accept_status = accept_status  # the durable step of a device status (the alarm book)
        self.statuses: asyncio.Queue[DeviceStatus] = asyncio.Queue(4096)
        self.rejects = RejectCounter()
        self.submitted = 0
        self.out_of_range = 0

    @classmethod
    def for_registry(cls, registry: Registry, accept: Callable[[ReadingBatch], Awaitable[None]] | None = None,
                     maxsize: int = 256,
                     accept_status: Callable[[DeviceStatus], Awaitable[None]] | None = None,
                     accept_settles: bool = False) -> Intake:
        """An intake that converts and range-checks every point of ``registry``."""
        return cls(maxsize, accept, LoopConversion.from_registry(registry), RangeCheck.from_registry(registry),
                   registry, accept_status, accept_settles)

    def reconfigure(self, registry: Registry) -> None:
        """Take the registry's points as they are now (4-20 mA, ranges). Numbers only grow, so a
        batch settled on another thread meanwhile is settled by the old or the new, both right for it."""
        self.loop = LoopConversion.from_registry(registry)
        self.ranges = RangeCheck.from_registry(registry)
        self.registry = registry

    def settle(self, batch: ReadingBatch) -> ReadingBatch:
        """The batch as it is committed: loop current converted, readings outside their range FAULT."""
        if self.loop is not None:
            batch = self.loop.convert(batch)
        if self.ranges is None:
            return batch
        out = self.ranges.outside(batch)
        n = int(np.count_nonzero(out))
        if not n:
            return batch
        self.out_of_range += n
        first = int(batch.sensor[np.flatnonzero(out)[0]])
        info = self.registry.sensors[first] if self.registry is not None else None
        self.rejects.reject("intake", "out_of_range", info.sensor_id if info else str(first),
                            "value outside the measuring range: stored as a fault", n=n,
                            device=f"{info.enterprise}/{info.device}" if info else None)
        quality = np.where(out, np.uint8(Quality.FAULT), batch.quality).astype(QUALITY_DTYPE)
        return ReadingBatch(batch.sensor, batch.ts, batch.value, quality)

    async def submit(self, batch: ReadingBatch) -> None:
        """Hand a batch to the pipeline; returns once it is accepted (durable, when ``accept`` is set).

        Waits while the outbox (or, without one, ``readings``) is full: backpressure, never a drop.
        The batch is settled before it is committed (:meth:`settle`, here or by ``accept``), so what
        is stored is what the detector evaluates.
        """
        if len(batch):
            if not self.accept_settles:
                batch = self.settle(batch)
            if self.accept is not None:
                await self.accept(batch)
            else:
                await self.readings.put(batch)
            self.submitted += len(batch)

    async def device_status(self, status: DeviceStatus) -> None:
        """Hand over a device going offline or coming back; returns once it is recorded (with
        ``accept_status``) or queued."""
        if self.accept_status is not None:
            await self.accept_status(status)
        else:
            await self.statuses.put(status)
