"""Storage as the runtime sees it: accept into the outbox, drain into every sink, answer queries.

:meth:`Storage.accept` is what the intake calls before a batch counts as accepted: it returns once
the batch is committed to the outbox (group commit: whatever arrived meanwhile goes in the same
transaction). One :class:`~gateway.storage.sinks.SinkDrainer` per sink then empties the outbox at that
sink's pace: SQLite always (the embedded store, with retention), InfluxDB as well when
``[storage] backend = "influxdb"`` (and the API's readings come from it then). When the outbox
quota makes it drop batches, ``on_loss`` is told what was lost (the whole episode so far, in words,
at most once a second); when it is back under 90 % of the quota, ``on_recovered``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gateway.batch import ReadingBatch
from gateway.config import Config
from gateway.errors import StoreError
from gateway.ingest.outbox import DropReport, Outbox
from gateway.registry import Registry
from gateway.storage.sinks import Sink, SinkDrainer, SqliteSink
from gateway.storage.sqlite_store import Agg, SeriesPoint, SqliteStore

log = logging.getLogger(__name__)
DAY_NS = 86_400 * 10**9
COMMIT_GAP = 0.008  # s: while busy, at most one outbox commit this often (idle: at once)


class Storage:
    """The outbox, the sinks and their drainers of one gateway."""

    def __init__(self, cfg: Config, registry: Registry, data_dir: Path,
                 on_loss: Callable[[str], None], on_recovered: Callable[[], None]) -> None:
        self.cfg = cfg.storage
        self.store = SqliteStore(data_dir / "readings.db", registry)
        self._store_exec = ThreadPoolExecutor(1, thread_name_prefix="gridgate-sqlite")
        self._outbox_exec = ThreadPoolExecutor(1, thread_name_prefix="gridgate-outbox")
        self.sinks: list[Sink] = [SqliteSink(self.store, self._store_exec)]
        self.influx: Any = None
        if self.cfg.backend == "influxdb":
            from gateway.storage.influx import InfluxSink

            self.influx = InfluxSink(self.cfg.influxdb, registry)
            self.sinks.append(self.influx)
        # The detector reads the outbox too (alerts.evaluation): the quota never drops what it has not evaluated.
        self.outbox = Outbox(data_dir / "outbox.db", [s.name for s in self.sinks], self.cfg.outbox_max_mb * 2**20,
                             keep=["detector"])
        self.on_commit: list[asyncio.Event] = []  # other consumers of the outbox, woken by each commit
        # The SQLite sink takes up to 100,000 readings or what waited 1 s: a write costs about the
        # same whatever its size (a few packed rows), so fewer, bigger ones leave more of the one
        # Python thread to the rest; InfluxDB keeps 20,000 (requests of 5,000 lines).
        self.drainers = {
            s.name: SinkDrainer(s, self.outbox, self._outbox_exec, on_confirmed=self._confirmed,
                                batch_size=100_000 if s.name == "sqlite" else 20_000, max_age=1.0)
            for s in self.sinks
        }
        self.on_loss = on_loss
        self.on_recovered = on_recovered
        self.losing = False
        self.episode: dict[str, Any] = {}
        self._loss_dirty = False
        self._commits: asyncio.Queue[tuple[ReadingBatch, asyncio.Future[None]]] = asyncio.Queue(1024)
        self._committing = False
        self.commit_gap = COMMIT_GAP
        # what the intake does to a batch before it is committed (Intake.settle), once per commit
        self.prepare: Callable[[ReadingBatch], ReadingBatch] | None = None
        self.append_error: str | None = None

    async def accept(self, batch: ReadingBatch) -> None:
        """Return once ``batch`` is durably in the outbox (it then counts as accepted)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._commits.put((batch, fut))
        await fut

    async def _committer(self) -> None:
        loop = asyncio.get_running_loop()
        last, joined = 0.0, 1
        while True:
            items = [await self._commits.get()]
            self._committing = True
            # Many submitters at once (the last commit began a moment ago and carried several
            # batches: a thousand Modbus polls a second), let the batches of the next few ms join
            # this one, as a commit costs about the same for one batch or many. Idle, or one
            # submitter waiting on each commit (the MQTT collector hands over a group at a time
            # and acknowledges it after the commit): at once, as waiting would only slow it down.
            pause = last + self.commit_gap - loop.time()
            if pause > 0 and joined > 1:
                await asyncio.sleep(pause)
            last = loop.time()
            size = len(items[0][0])
            while size < 100_000 and not self._commits.empty():
                items.append(self._commits.get_nowait())
                size += len(items[-1][0])
            joined = len(items)
            batch = self._settled(items)
            if batch is None:  # nothing of it could be settled: each submitter has its error
                self._committing = False
                continue
            delay = 0.5
            while True:
                try:
                    drop = await loop.run_in_executor(self._outbox_exec, self.outbox.append, batch)
                    break
                except StoreError as exc:
                    # The disk refused (full, read-only): nothing is accepted meanwhile, so the
                    # collectors wait (MQTT messages stay unacknowledged at the broker) and we retry.
                    if self.append_error is None:
                        log.error("outbox append failing, ingest paused: %s", exc)
                    self.append_error = str(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            if self.append_error is not None:
                log.warning("outbox append works again")
                self.append_error = None
            for _, fut in items:
                if not fut.done():
                    fut.set_result(None)
            self._committing = False
            for drainer in self.drainers.values():
                drainer.wakeup.set()
            for wakeup in self.on_commit:
                wakeup.set()
            if drop is not None:
                self._lost(drop)

    def _settled(self, items: list[tuple[ReadingBatch, asyncio.Future[None]]]) -> ReadingBatch | None:
        """The group's batches as one, as it is committed (``prepare``, once for the group). Should
        that fail, each is prepared alone: a batch that cannot be fails its own submitter (its
        future gets the error), the others are committed, and the committer goes on."""
        whole = ReadingBatch.concat([b for b, _ in items])
        if self.prepare is None:
            return whole
        try:
            return self.prepare(whole)
        except Exception:  # noqa: BLE001 - one collector's bad batch must not stop the pipeline
            good = []
            for b, fut in items:
                try:
                    good.append(self.prepare(b))
                except Exception as exc:  # noqa: BLE001
                    log.error("a batch of %d readings could not be settled and is refused: %s", len(b), exc)
                    if not fut.done():
                        fut.set_exception(exc)
            return ReadingBatch.concat(good) if good else None

    def _lost(self, drop: DropReport) -> None:
        """Add a quota drop to the current loss episode; ``on_loss`` hears of it at once or within a second."""
        ep = self.episode
        first = not self.losing
        if first:
            ep.update(readings=0, batches=0, t_min=drop.t_min, t_max=drop.t_max, by_sink={})
            log.error("outbox over its quota (%d MB): dropping the oldest batches; a data_loss alarm is raised",
                      self.cfg.outbox_max_mb)
        self.losing = True
        ep["readings"] += drop.readings
        ep["batches"] += drop.batches
        ep["t_min"], ep["t_max"] = min(ep["t_min"], drop.t_min), max(ep["t_max"], drop.t_max)
        for sink, n in drop.lost_by_sink.items():
            ep["by_sink"][sink] = ep["by_sink"].get(sink, 0) + n
        if first:
            self.on_loss(self.loss_summary())  # raised at once; later drops are reported each second
        else:
            self._loss_dirty = True

    async def _loss_reporter(self, period: float = 1.0) -> None:
        while True:
            await asyncio.sleep(period)
            if self._loss_dirty and self.losing:
                self._loss_dirty = False
                self.on_loss(self.loss_summary())

    def loss_summary(self) -> str:
        """The current (or last) loss episode in words: how many readings, which span, which sinks."""
        ep = self.episode
        sinks = ", ".join(f"{k} {v}" for k, v in sorted(ep.get("by_sink", {}).items())) or "none"
        return (f"outbox quota ({self.cfg.outbox_max_mb} MB) reached: dropped {ep.get('readings', 0)} readings "
                f"({ep.get('batches', 0)} batches) from {iso_time(ep.get('t_min', 0))} to "
                f"{iso_time(ep.get('t_max', 0))}; readings lost per sink: {sinks}; "
                f"{self.outbox.dropped_readings} dropped since the outbox was created")

    def _confirmed(self) -> None:
        if self.losing and self.outbox.size < 0.9 * self.outbox.max_bytes:
            self.losing = False
            summary = self.loss_summary()
            log.warning("outbox back under its quota: %s", summary)
            self.on_loss(summary)  # the final count and span, before the alarm clears
            self.on_recovered()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._committer(), name="outbox-commit")
            for name, drainer in self.drainers.items():
                tg.create_task(drainer.run(), name=f"sink-{name}")
            tg.create_task(self._retention(), name="retention")
            tg.create_task(self._loss_reporter(), name="loss-reporter")

    async def _retention(self, period: float = 3600.0) -> None:
        loop = asyncio.get_running_loop()
        while True:
            cutoff = time.time_ns() - self.cfg.retention_days * DAY_NS
            try:
                n = 0
                for step in await loop.run_in_executor(self._store_exec, self.store.retention_steps, cutoff):
                    n += await loop.run_in_executor(self._store_exec, self.store.delete_before, step)
                if n:
                    log.info("retention: deleted %d readings older than %d days", n, self.cfg.retention_days)
            except Exception:
                log.exception("retention pass failed; will try again")
            await asyncio.sleep(period)

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The one thread every call into the outbox runs on."""
        return self._outbox_exec

    @property
    def idle(self) -> bool:
        # A failing sink is not waited for: its backlog stays in the outbox for the next start.
        return (self._commits.empty() and not self._committing
                and all(d.state == "failing" or (d.idle and self.outbox.backlog(n)[0] == 0)
                        for n, d in self.drainers.items()))

    async def drain(self, timeout: float) -> None:
        """On stop: give the sinks up to ``timeout`` s to catch up (what is left stays in the outbox)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self.idle:
                    for d in self.drainers.values():
                        d.wakeup.set()
                    await asyncio.sleep(0.02)

    async def query(self, sensor_id: str, start_ns: int, end_ns: int, every_ns: int | None = None,
                    agg: Agg = "mean", limit: int = 100_000) -> list[SeriesPoint]:
        """A series from the configured backend."""
        if self.influx is not None:
            return await self.influx.query(sensor_id, start_ns, end_ns, every_ns, agg, limit)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.store.query, sensor_id, start_ns, end_ns, every_ns, agg, limit)

    @property
    def stored(self) -> int:
        return self.drainers["sqlite"].written

    def troubles(self) -> dict[str, tuple[bool, float | None, str]]:
        """Each sink and the outbox's appends: failing now?, the backlog (for a failing sink), why."""
        out: dict[str, tuple[bool, float | None, str]] = {}
        for name, drainer in self.drainers.items():
            if drainer.state != "failing":  # the backlog is a query: read only when it is reported
                out[f"sink/{name}"] = (False, None, "")
            else:
                backlog = float(drainer.outbox.backlog(name)[0])
                out[f"sink/{name}"] = (True, backlog, f"sink {name} failing: {drainer.last_error}")
        err = self.append_error
        out["outbox/append"] = (err is not None, None, f"the outbox refuses writes, ingest paused: {err}")
        return out

    def health(self) -> dict[str, Any]:
        ob = self.outbox
        return {
            "backend": self.cfg.backend,
            "outbox": {"bytes": ob.size, "max_bytes": ob.max_bytes, "readings": ob.readings,
                       "dropped_readings": ob.dropped_readings, "dropped_batches": ob.dropped_batches,
                       "losing": self.losing, "append_error": self.append_error},
            "sinks": {name: d.health() for name, d in self.drainers.items()},
        }

    async def close(self) -> None:
        for s in self.sinks:
            with contextlib.suppress(Exception):
                await s.close()
        self._store_exec.shutdown(wait=True)
        self._outbox_exec.shutdown(wait=True)
        self.store.close()
        self.outbox.close()


def iso_time(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))
