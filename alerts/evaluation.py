"""Evaluation: the detector as a consumer of the outbox, feeding the alarm book.

The outbox is the log of accepted batches. :class:`Evaluation` reads it in order after its own
cursor, which lives in the alarm book and moves in the same transaction as the book's changes for
that batch (:meth:`AlarmBook.evaluating`): a batch is evaluated exactly when the alarms it raised,
cleared or suppressed are committed. After a crash the detector resumes at that cursor, so every
accepted reading is evaluated once, in order per sensor, even one whose MQTT message was already
acknowledged. The outbox keeps what the detector has not confirmed, whatever its quota.

Around the detector it does what belongs to the step from readings to alarms: status points that
suppress others by design, the live value and peak of active alarms (one update per alarm per
batch), a device coming back, and, at start, the detector's state restored from the conditions the
book still has active. Events are handed to ``dispatch`` after the commit.

A device is back when a reading of it is evaluated: its ``offline`` communication alarm (an MQTT
last will, a Modbus device not answering) clears with the first reading accepted *after* the
offline was recorded. The book stamps each offline with the outbox's last accepted batch then
(readings that arrived before the last will were accepted by then), and a read of the outbox
clears it only when all of its batches come after that stamp, so a reading sent just before the
device died never clears the alarm its death raised; device clocks play no part. A ``stale``
alarm open at start clears with the device's first reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import numpy as np

from alerts.book import AlarmBook
from alerts.detector import FAULT, LEVEL_NAMES, PROCESS, RATE, Detector
from alerts.model import AlarmEvent
from gateway.batch import Quality, ReadingBatch
from gateway.errors import RegistryError
from gateway.ingest.outbox import Outbox
from gateway.registry import Registry

log = logging.getLogger(__name__)
CONSUMER = "detector"
CONFIRM_EVERY = 1.0  # s: how often, while busy, the outbox hears how far the book has evaluated
LINGER = 0.02  # s: while busy, at most one evaluation this often (idle: at once)


class Evaluation:
    """Reads the outbox after its cursor, evaluates, and books the transitions with the cursor."""

    def __init__(self, registry: Registry, detector: Detector, book: AlarmBook, outbox: Outbox,
                 executor: Executor | None, dispatch: Callable[[list[AlarmEvent]], None],
                 batch_size: int = 50_000, linger: float = LINGER) -> None:
        self.registry = registry
        self.detector = detector
        self.book = book
        self.outbox = outbox
        self._executor = executor
        self.dispatch = dispatch
        self.batch_size = batch_size
        self.linger = linger
        booked = book.cursor(CONSUMER)
        # The book is the authority; the outbox's copy may trail it by one confirm after a crash. A
        # book ahead of everything the outbox ever held means a new outbox file: start with it.
        if booked is not None and booked > outbox.last_seq:
            log.warning("the alarm book evaluated up to outbox batch %d but the outbox has only given out %d"
                        " (a new outbox file?): evaluating from the outbox's own cursor", booked, outbox.last_seq)
            booked = None
        self.cursor = booked if booked is not None else outbox.cursor(CONSUMER)
        self.evaluated = 0
        self.wakeup = asyncio.Event()
        self.busy = False
        self._recovering: set[int] = set()  # devices with a stale alarm open at start
        book.stamp_offline_with(lambda: outbox.last_seq)
        self._suppressors = self._build_suppressors()
        self._restore()

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self) -> None:
        await self._call(self.outbox.confirm, CONSUMER, self.cursor)
        confirmed, confirmed_at = self.cursor, time.monotonic()
        last_run = 0.0
        while True:
            # Busy (the last evaluation was a moment ago), gather what the next few commits bring
            # into one evaluation: its cost is mostly per call, not per reading. Idle, at once.
            pause = last_run + self.linger - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            self.wakeup.clear()  # before reading: a commit that lands meanwhile sets it again
            self.busy = True
            # Keeping up, the batches are in the outbox's in-memory tail; behind, in its file.
            pending = self.outbox.read_tail(self.cursor, self.batch_size)
            if pending is False:
                pending = await self._call(self.outbox.read, CONSUMER, self.batch_size, self.cursor)
            if pending is None:
                self.busy = False
                if confirmed < self.cursor:
                    # quiet for a second: bring the outbox's copy of the cursor up to date
                    try:
                        async with asyncio.timeout(CONFIRM_EVERY):
                            await self.wakeup.wait()
                    except TimeoutError:
                        await self._call(self.outbox.confirm, CONSUMER, self.cursor)
                        confirmed, confirmed_at = self.cursor, time.monotonic()
                    continue
                await self.wakeup.wait()
                continue
            last_run = time.monotonic()
            self.evaluate(pending.batch, pending.last_seq)
            # The book holds the cursor (moved with the evaluation's commit); the outbox's copy only
            # decides what may be deleted, so it follows at most once a second while busy.
            if time.monotonic() - confirmed_at >= CONFIRM_EVERY:
                await self._call(self.outbox.confirm, CONSUMER, self.cursor)
                confirmed, confirmed_at = self.cursor, time.monotonic()

    def evaluate(self, batch: ReadingBatch, seq: int) -> None:
        """Evaluate the outbox's batches up to ``seq`` and commit their alarms with the cursor."""
        events: list[AlarmEvent] = []
        with self.book.evaluating(CONSUMER, seq):
            if self._suppressors[0].size:  # before the transitions: a unit stopping hides what follows
                events += self._follow_suppressors(batch)
            if self._recovering:
                events += self._recovered(batch)
            if self.book.offline:
                events += self._back_online(batch)
            transitions = self.detector.evaluate(batch)
            if len(transitions):
                events += self.book.apply(transitions)
            self.book.follow(self.detector.take_extremes())
        self.cursor = seq
        self.evaluated += len(batch)
        self.dispatch(events)

    def reconfigure(self) -> None:
        """After a registry change (the detector already has it): which points suppress which."""
        self._suppressors = self._build_suppressors()
        live = {d.index for d in self.registry.devices if not d.retired}
        self._recovering &= live

    @property
    def caught_up(self) -> bool:
        return self.cursor >= self.outbox.last_seq and not self.busy

    def health(self) -> dict[str, Any]:
        backlog, oldest = self.outbox.backlog(CONSUMER, self.cursor)
        lag = 0.0 if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9)
        return {"evaluated": self.evaluated, "cursor": self.cursor,
                "behind_batches": max(0, self.outbox.last_seq - self.cursor),
                "backlog_readings": backlog, "backlog_seconds": round(lag, 3)}

    # -- around the detector ----------------------------------------------------------------------

    def _restore(self) -> None:
        """The detector starts from the conditions the book still has active, and a device with an
        open stale alarm clears it with its first reading (an offline one: the book knows it)."""
        codes = {name: code for code, name in LEVEL_NAMES.items()}
        reg = self.registry
        for alarm in self.book.list_alarms(None, case="open_cases", limit=10_000_000):
            if not alarm.in_alarm or not alarm.enterprise:
                continue
            try:
                if alarm.kind == "communication":
                    if alarm.level == "stale":
                        self._recovering.add(reg.device(alarm.enterprise, alarm.device).index)
                    continue
                index = reg.sensor_index(alarm.sensor_id)
            except RegistryError:  # no longer configured: nothing will clear it but an officer
                continue
            if alarm.kind == "fault":
                self.detector.restore(index, FAULT, 1)
            elif alarm.kind == "process" and alarm.level == "rate_of_change":
                self.detector.restore(index, RATE, 1, alarm.peak)
            elif alarm.kind == "process" and alarm.level in codes:
                self.detector.restore(index, PROCESS, codes[alarm.level], alarm.peak)

    def _recovered(self, batch: ReadingBatch) -> list[AlarmEvent]:
        seen = set(np.unique(self.detector.device_of[batch.sensor]).tolist()) & self._recovering
        out: list[AlarmEvent] = []
        for i in seen:
            self._recovering.discard(i)
            device = self.registry.devices[i]
            out += self.book.communication(device, True, int(batch.ts.max()), "offline", "data again")
        return out

    def _back_online(self, batch: ReadingBatch) -> list[AlarmEvent]:
        """Clear the offline alarm of devices with readings in this read, if every batch of it was
        accepted after the offline (``self.cursor``, not moved yet, is the batch before the read)."""
        offline = self.book.offline
        ready = [d for d, (position, _) in offline.items() if self.cursor >= position]
        if not ready:
            return []
        device = self.detector.device_of[batch.sensor]
        hit = np.isin(device, ready)
        out: list[AlarmEvent] = []
        for d in np.unique(device[hit]).tolist():
            ts = max(int(batch.ts[hit & (device == d)].max()), offline[d][1])  # never before the offline
            out += self.book.communication(self.registry.devices[d], True, ts, "offline", "data again")
        return out

    def _build_suppressors(self) -> tuple[np.ndarray, dict[int, list[str]], dict[int, bool]]:
        """Status points that suppress others by design (``suppressed_by``): their sensor indexes,
        the sensors each one suppresses, and whether its unit is stopped now."""
        reg = self.registry
        by: dict[int, list[str]] = {}
        for info in reg.sensors:
            if info.point.suppressed_by and not info.retired:
                key = f"{info.enterprise}/{info.device}/{info.point.suppressed_by}"
                by.setdefault(reg.sensor_index(key), []).append(info.sensor_id)
        stopped = {i: any(sid in self.book.suppressed for sid in sids) for i, sids in by.items()}
        return np.array(sorted(by), dtype=np.int32), by, stopped

    def _follow_suppressors(self, batch: ReadingBatch) -> list[AlarmEvent]:
        indexes, by, stopped = self._suppressors
        hit = np.flatnonzero(np.isin(batch.sensor, indexes) & (batch.quality != Quality.FAULT))
        out: list[AlarmEvent] = []
        for k in hit:  # in order: the last reading of a status point decides
            i = int(batch.sensor[k])
            off = float(batch.value[k]) == 0.0
            if off != stopped[i]:
                stopped[i] = off
                unit = self.registry.sensors[i].sensor_id
                reason = f"{unit} reads 0: the unit is stopped" if off else f"{unit} runs again"
                out += self.book.suppress(by[i], off, int(batch.ts[k]) // 1_000_000, reason)
        return out
