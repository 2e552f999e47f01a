"""Sinks and their drainers: each sink empties the outbox at its own pace.

A sink is anything with ``async write(batch) -> WriteResult`` that raises ``SinkUnavailable`` when
it cannot take writes now. A :class:`SinkDrainer` runs one sink: it reads the batches the sink has
not confirmed from the outbox (batched by size, or by age when little is waiting), writes them,
and confirms them in the outbox only after the sink accepted (or permanently refused, with a
reason) every reading. A sink that is down keeps its backlog and is retried with exponential
backoff and jitter (or the peer's ``Retry-After``); it never holds up another sink or the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from gateway.batch import ReadingBatch
from gateway.errors import SinkUnavailable, StoreError
from gateway.ingest.outbox import Outbox
from gateway.retry import Backoff
from gateway.storage.sqlite_store import SqliteStore, WriteResult

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    async def write(self, batch: ReadingBatch) -> WriteResult: ...

    async def close(self) -> None: ...


class SqliteSink:
    """The embedded store as a sink; writes run on the store's own worker thread."""

    name = "sqlite"

    def __init__(self, store: SqliteStore, executor: Executor) -> None:
        self.store = store
        self._executor = executor

    async def write(self, batch: ReadingBatch) -> WriteResult:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self.store.write, batch)
        except StoreError as exc:  # disk full, database locked: keep the data and retry
            raise SinkUnavailable(str(exc)) from exc

    async def close(self) -> None:
        return None


class SinkDrainer:
    """Moves one sink's share of the outbox into the sink."""

    def __init__(self, sink: Sink, outbox: Outbox, executor: Executor, *, batch_size: int = 20_000,
                 max_age: float = 0.2, backoff: tuple[float, float] = (0.5, 30.0),
                 on_confirmed: Callable[[], None] | None = None) -> None:
        self.sink = sink
        self.name = sink.name
        self.outbox = outbox
        self._executor = executor
        self.batch_size = batch_size
        self.max_age = max_age
        self.backoff = backoff
        self.wakeup = asyncio.Event()
        self.on_confirmed = on_confirmed
        self.written = 0
        self.rejected: Counter[str] = Counter()
        self.failures = 0
        self.state = "ok"
        self.last_error: str | None = None
        self.last_ok: float | None = None
        self._busy = False

    async def _outbox(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self) -> None:
        backoff = Backoff(*self.backoff)
        while True:
            self._busy = True
            self.wakeup.clear()  # before reading: an append that lands meanwhile sets it again
            pending = await self._outbox(self.outbox.read, self.name, self.batch_size)
            if pending is None:
                self._busy = False
                await self.wakeup.wait()
                continue
            age = time.time_ns() - pending.since
            if len(pending.batch) < self.batch_size and age < self.max_age * 1e9:
                self._busy = False
                # little is waiting and it is young: let more come, up to max_age
                await asyncio.sleep(self.max_age - age / 1e9)
                continue
            try:
                result = await self.sink.write(pending.batch)
            except SinkUnavailable as exc:
                self.failures += 1
                if self.state != "failing":
                    log.warning("sink %s failing, keeping its backlog: %s", self.name, exc)
                self.state = "failing"
                self.last_error = str(exc)
                self._busy = False
                await asyncio.sleep(exc.retry_after if exc.retry_after is not None else backoff.next())
                continue
            await self._outbox(self.outbox.confirm, self.name, pending.last_seq)
            if self.state == "failing":
                log.warning("sink %s recovered", self.name)
            self.state = "ok"
            backoff.reset()
            self.last_ok = time.time()
            self.written += result.accepted
            if result.rejected:
                self.rejected[result.reason or "rejected"] += result.rejected
                log.warning("sink %s refused %d readings: %s", self.name, result.rejected, result.reason)
            self._busy = False
            if self.on_confirmed is not None:
                self.on_confirmed()

    @property
    def idle(self) -> bool:
        return not self._busy

    def health(self) -> dict[str, Any]:
        backlog, oldest = self.outbox.backlog(self.name)
        lag = 0.0 if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9)
        state = self.state
        if state == "ok" and lag > max(5.0, 10 * self.max_age):
            state = "lagging"
        return {
            "state": state,
            "backlog_readings": backlog,
            "backlog_seconds": round(lag, 3),
            "written": self.written,
            "rejected": dict(self.rejected),
            "failures": self.failures,
            "last_error": self.last_error,
        }
