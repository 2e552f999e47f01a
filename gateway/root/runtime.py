"""The runtime: builds every component from a Config and runs them in one asyncio TaskGroup.

Wiring only; each step's logic lives in its own folder. Readings flow collectors → intake
(4-20 mA conversion, range check; :mod:`gateway.ingest`) → outbox commit (then the MQTT PUBACK) →
the outbox's consumers, each at its own durable cursor: the sinks (:mod:`gateway.storage`) and the
evaluation (detector → alarm book, its cursor committed with the book's changes;
:mod:`alerts.service`) → the book's event log → live hub and notifiers, each notifier at its own
durable cursor. Start order: stores and outbox, alarm book and notifiers, evaluation, collectors,
then the API. Cancelling :meth:`Gateway.run` stops it all: the collectors stop first, then the
evaluation and the sinks catch up with the outbox.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from alerts.notify import build_notifiers
from alerts.service import AlarmService
from gateway.accounts.service import Accounts
from gateway.clock import Clock, SystemClock
from gateway.config import Config
from gateway.ingest.intake import Intake
from gateway.register.service import open_service
from gateway.registry import Change, DeviceInfo, Registry
from gateway.storage.service import Storage

log = logging.getLogger(__name__)


class Gateway:
    """Everything one gateway process runs; the API reads it (see :class:`api.deps.GatewayView`)."""

    def __init__(self, cfg: Config, *, data_dir: str | Path | None = None, clock: Clock | None = None,
                 collectors: bool = True) -> None:
        self.clock = clock or SystemClock()
        self.data_dir = Path(data_dir if data_dir is not None else cfg.gateway.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The registry lives in registry.db, seeded from the file (gateway.register.service).
        self.register, self.registry, opened = open_service(self.data_dir, cfg)
        log.info("registry version %d: %s", self.registry.version, opened)
        cfg = self.registry.config
        self.storage = Storage(cfg, self.registry, self.data_dir, self._data_lost, self._data_flowing)
        self.store = self.storage.store
        self.alarms = AlarmService(cfg, self.registry, self.data_dir / "alarms.db", self.storage.outbox,
                                   self.storage.executor, self.clock, troubles=self.storage.troubles)
        self.intake = Intake.for_registry(self.registry, accept=self.storage.accept,
                                          accept_status=self.alarms.record_status, accept_settles=True)
        self.storage.prepare = self.intake.settle  # once per outbox commit, before it
        self.storage.on_commit.append(self.alarms.evaluation.wakeup)
        # The parts the API and the tests reach for, named once here.
        self.book = self.alarms.book
        self.hub = self.alarms.hub
        self.evaluation = self.alarms.evaluation
        self.notifiers = self.alarms.notifiers
        self.secret = self._load_secret()
        self.accounts = Accounts(self.data_dir / "accounts.db", cfg, self.registry, self.clock, self.secret)
        self.with_collectors = collectors
        self.collectors: dict[str, Any] = {}
        self.extra_tasks: list[Callable[[], Awaitable[None]]] = []
        self.started = asyncio.Event()
        self._collector_tasks: list[asyncio.Task] = []
        self._tg: asyncio.TaskGroup | None = None
        self.reloads = {"applied": 0, "refused": 0}  # SIGHUP reloads of the configuration file
        # A registry change reaches, in this order: the intake (ranges, 4-20 mA), the alarms
        # (detector limits, retired and moved alarms), then the collectors (what is polled or read).
        self.registry.subscribe(lambda registry, change: self.intake.reconfigure(registry))
        self.registry.subscribe(self.alarms.registry_changed)
        self.registry.subscribe(self._collectors_follow)

    async def reload_file(self, path: str | Path) -> bool:
        """``SIGHUP``: read the configuration file again and apply it completely or not at all; the
        outcome, with the reason of a refusal, is logged. True when applied."""
        from gateway.config import load_config
        from gateway.errors import ConfigError
        from gateway.register.service import ReloadRefused

        try:
            cfg = await asyncio.to_thread(load_config, path)
            said = await self.register.take_config(cfg)
        except ConfigError as exc:
            self.reloads["refused"] += 1
            log.error("reload of %s refused, nothing was applied: %d problem(s): %s", path, len(exc.problems),
                      "; ".join(f"{p}: {m}" for p, m in exc.problems[:20]))
            return False
        except ReloadRefused as exc:
            self.reloads["refused"] += 1
            log.error("reload of %s refused: %s", path, exc)
            return False
        self.reloads["applied"] += 1
        log.info("reload of %s applied: %s", path, said)
        return True

    async def test_reading(self, device: DeviceInfo, payload: bytes) -> dict[str, Any]:
        """A telemetry payload sent by hand for ``device``, through the MQTT decoding and the intake."""
        from collectors.hand_reading import submit
        from collectors.mqtt_payload import Window

        mqtt, days = self.config.mqtt, self.config.storage.retention_days
        window = Window(self.clock.now_ns(), int(mqtt.max_clock_skew * 1e9), days * 86_400 * 1_000_000_000)
        return await submit(self.intake, device, payload, window)

    @property
    def config(self) -> Config:
        """The configuration as it is now: the file's sections with the registry's lists."""
        return self.registry.config

    def _load_secret(self) -> bytes:
        path = self.data_dir / "token.key"
        if not path.exists():
            path.write_bytes(secrets.token_bytes(32))
            path.chmod(0o600)
        return path.read_bytes()

    def _build_collectors(self) -> None:
        from collectors.modbus import ModbusCollector
        from collectors.mqtt import MqttCollector

        if self.registry.devices_of("modbus") and "modbus" not in self.collectors:
            self.collectors["modbus"] = ModbusCollector(self.registry, self.intake, self.clock)
        if self.registry.devices_of("mqtt") and "mqtt" not in self.collectors:
            client_id = self.config.mqtt.client_id or f"gridgate-{self.config.gateway.id}"
            self.collectors["mqtt"] = MqttCollector(self.config.mqtt, self.registry, self.intake, client_id,
                                                    clock=self.clock)

    def _collectors_follow(self, registry: Registry, change: Change) -> None:
        """The collectors poll and read what the registry has now; the first device of a protocol
        starts its collector."""
        for collector in self.collectors.values():
            collector.reconfigure(registry, change.devices)
        if not self.with_collectors or self._tg is None:
            return
        before = set(self.collectors)
        self._build_collectors()
        for name in set(self.collectors) - before:
            self._collector_tasks.append(self._tg.create_task(self.collectors[name].run(), name=f"collector-{name}"))

    async def run(self, api: Callable[[Gateway], Awaitable[None]] | None = None) -> None:
        """Run until cancelled; ``api`` (given the gateway) is started last, if given."""
        if self.with_collectors:
            self._build_collectors()
        for notifier in build_notifiers(self.config, self.book, self.clock, mqtt=self.with_collectors).values():
            self.alarms.add_notifier(notifier)
        # The registry, configuration and clients live as long as the process: keep them out of the
        # cyclic collector's full passes, which took up to 85 ms with 30,000 points (bench modbus).
        gc.collect()
        gc.freeze()
        # What is left for the collector is the churn of polls and commits (futures, tasks, small
        # arrays), almost never in cycles: a young-generation pass every 20,000 allocations rather
        # than 700 took the 30,000-readings/s soak from 0.57-0.63 to 0.51-0.58 core.
        gc.set_threshold(20_000, 20, 20)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self.storage.run(), name="storage")
                tg.create_task(self.register.watch(), name="registry-watch")
                for name, coro in self.alarms.tasks().items():
                    tg.create_task(coro, name=name)
                self._collector_tasks = [tg.create_task(c.run(), name=f"collector-{name}")
                                         for name, c in self.collectors.items()]
                for extra in self.extra_tasks:
                    tg.create_task(extra())
                if api is not None:
                    tg.create_task(api(self), name="api")
                self.started.set()
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    await self._drain()
                    raise
        finally:
            self._tg = None
            await self.storage.close()
            self.alarms.close()
            self.accounts.close()
            self.register.store.close()

    async def _drain(self) -> None:
        """On stop: let the evaluation and the sinks catch up before the tasks are cancelled.

        Whatever the detector or a sink has not confirmed by then stays in the outbox for the next start.
        """
        for task in self._collector_tasks:  # collectors stop first: nothing new comes in
            task.cancel()
        await asyncio.gather(*self._collector_tasks, return_exceptions=True)
        await self.alarms.drain(5)
        await self.storage.drain(10)

    def _data_lost(self, reason: str) -> None:
        self.alarms.data_loss(True, self.storage.episode.get("readings", 0), reason)

    def _data_flowing(self) -> None:
        self.alarms.data_loss(False)

    def tick(self, now_ms: int) -> None:
        """The time-driven part of alarm management at ``now_ms`` (tests call it with a manual clock)."""
        self.alarms.tick(now_ms)

    @property
    def evaluated(self) -> int:
        return self.evaluation.evaluated

    @property
    def stored(self) -> int:
        return self.storage.stored

    def health(self) -> dict[str, Any]:
        return {
            "gateway": self.config.gateway.id,
            "pipeline": {"evaluated": self.evaluated, "stored": self.stored,
                         "rejected": self.intake.rejects.snapshot()},
            "storage": self.storage.health(),
            "collectors": {name: c.health() for name, c in self.collectors.items()},
            "registry": {"version": self.registry.version, "reloads": dict(self.reloads)},
            **self.alarms.health(),
        }
