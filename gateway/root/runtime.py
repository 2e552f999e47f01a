"""The runtime: builds every component from a Config and runs them in one asyncio TaskGroup.

Start order: stores, alarm book and notifiers, detector, collectors, then the API. Readings flow
intake (4-20 mA conversion, range check) → outbox commit (then the MQTT PUBACK) → the outbox's
consumers, each at its own durable cursor: the sinks (SQLite, InfluxDB) and the evaluation
(detector → alarm book, its cursor committed with the book's changes) → live hub and notifiers.
The collectors block when the outbox commit falls behind. Cancelling :meth:`Gateway.run` stops it
all: the collectors stop first, then the evaluation and the sinks catch up with the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from alerts.book import AlarmBook
from alerts.detector import Detector
from alerts.escalation import Escalator
from alerts.evaluation import Evaluation
from alerts.feed import BookFeed
from alerts.hub import AlarmHub
from alerts.model import AlarmEvent
from alerts.noise import NoiseMonitor
from gateway.clock import Clock, SystemClock
from gateway.config import Config
from gateway.ingest.intake import Intake
from gateway.registry import Registry
from gateway.storage.service import Storage

log = logging.getLogger(__name__)

EventListener = Callable[[list[AlarmEvent]], None]
STORE_FAILING_AFTER_MS = 10_000


class Gateway:
    """Everything one gateway process runs, with the state the API reads."""

    def __init__(self, cfg: Config, *, data_dir: str | Path | None = None, clock: Clock | None = None,
                 collectors: bool = True) -> None:
        self.config = cfg
        self.clock = clock or SystemClock()
        self.data_dir = Path(data_dir if data_dir is not None else cfg.gateway.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(cfg)
        self.storage = Storage(cfg, self.registry, self.data_dir, self._data_lost, self._data_flowing)
        self.store = self.storage.store
        self.intake = Intake.for_registry(self.registry, accept=self.storage.accept)
        self.detector = Detector(self.registry)
        self.book = AlarmBook(self.data_dir / "alarms.db", self.registry)
        self.hub = AlarmHub()
        self.escalator = Escalator(self.book, self.registry, cfg.alarms.escalate_after)
        self.noise = NoiseMonitor(self.book, cfg.alarms.flood, cfg.alarms.chatter)
        # Listeners see every event (the log, the live stream); pushers (MQTT, webhooks) only those
        # that are pushed: not what a flood, a chattering alarm or a shelf holds back.
        self.listeners: list[EventListener] = [self._log_events, self.hub.publish]
        self.pushers: list[EventListener] = []
        self.secret = self._load_secret()
        self.with_collectors = collectors
        self.collectors: dict[str, Any] = {}
        self.notifiers: dict[str, Any] = {}
        self.extra_tasks: list[Callable[[], Awaitable[None]]] = []
        self.started = asyncio.Event()
        self.evaluation = Evaluation(self.registry, self.detector, self.book, self.storage.outbox,
                                     self.storage.executor, self.dispatch)
        self.storage.on_commit.append(self.evaluation.wakeup)
        self._store_trouble: dict[str, int] = {}  # system alarm key -> since when (epoch ms)
        self._collector_tasks: list[asyncio.Task] = []

    def _load_secret(self) -> bytes:
        path = self.data_dir / "token.key"
        if not path.exists():
            path.write_bytes(secrets.token_bytes(32))
            path.chmod(0o600)
        return path.read_bytes()

    @staticmethod
    def _log_events(events: list[AlarmEvent]) -> None:
        for ev in events:
            a = ev.alarm
            value = "" if a.value is None else f" value {a.value:.4g}{a.unit and ' ' + a.unit}"
            log.info("alarm %d %s: %s %s %s%s -> %s", a.id, ev.type, a.kind, a.level, a.sensor_id, value,
                     ", ".join(ev.recipients) or "nobody")

    def add_listener(self, listener: EventListener) -> None:
        self.listeners.append(listener)

    def add_pusher(self, pusher: EventListener) -> None:
        self.pushers.append(pusher)

    def dispatch(self, events: list[AlarmEvent]) -> None:
        """Hand alarm events to the live hub and every notifier; none of them may block.

        The noise monitor sees them first: it may add a flood or chattering event, and it says
        which of them the pushers get.
        """
        if not events:
            return
        events, push = self.noise.observe(events)
        pushed = {e.id for e in push}
        # The notifiers read the book, not this list: what they may push is kept with the events.
        self.book.mark_pushed(pushed, [e.id for e in events if e.id not in pushed])
        for targets, batch in ((self.listeners, events), (self.pushers, push)):
            if not batch:
                continue
            for listener in targets:
                try:
                    listener(batch)
                except Exception:  # a broken notifier must not stop the pipeline
                    log.exception("alarm listener %r failed", listener)

    def _build_collectors(self) -> None:
        from collectors.modbus import ModbusCollector
        from collectors.mqtt import MqttCollector

        if self.registry.devices_of("modbus"):
            self.collectors["modbus"] = ModbusCollector(self.registry, self.intake)
        if self.registry.devices_of("mqtt"):
            client_id = self.config.mqtt.client_id or f"gridgate-{self.config.gateway.id}"
            self.collectors["mqtt"] = MqttCollector(self.config.mqtt, self.registry, self.intake, client_id)

    def _build_webhooks(self) -> None:
        from alerts.webhook import WebhookNotifier

        for n in self.config.notifiers:
            feed = BookFeed(self.book, n.name, frozenset(n.grids) if n.grids else None)
            hook = WebhookNotifier(n.name, n.url, n.format, secret=n.secret, timeout=n.timeout, clock=self.clock,
                                   feed=feed)
            self.notifiers[n.name] = hook
            self.add_pusher(hook.offer)

    def _build_notifiers(self) -> None:
        from alerts.mqtt_notifier import MqttNotifier

        client_id = (self.config.mqtt.client_id or f"gridgate-{self.config.gateway.id}") + "-alarms"
        notifier = MqttNotifier(self.config.mqtt, client_id, feed=BookFeed(self.book, "mqtt"))
        self.notifiers["mqtt"] = notifier
        self.add_pusher(notifier.offer)

    async def run(self, api: Callable[[Gateway], Awaitable[None]] | None = None) -> None:
        """Run until cancelled; ``api`` (given the gateway) is started last, if given."""
        if self.with_collectors:
            self._build_collectors()
            self._build_notifiers()
        self._build_webhooks()
        # The registry, configuration and clients live as long as the process: keep them out of the
        # cyclic collector's full passes, which took up to 85 ms with 30,000 points (bench modbus).
        gc.collect()
        gc.freeze()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.storage.run(), name="storage")
                for notifier in self.notifiers.values():
                    tg.create_task(notifier.run(), name=f"notifier-{type(notifier).__name__}")
                tg.create_task(self.evaluation.run(), name="evaluation")
                tg.create_task(self._statuses(), name="device-status")
                tg.create_task(self._stale_watch(), name="stale-watch")
                tg.create_task(self._escalate(), name="escalation")
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
            await self.storage.close()
            self.book.close()

    async def _drain(self) -> None:
        """On stop: let the evaluation and the sinks catch up before the tasks are cancelled.

        Whatever the detector or a sink has not confirmed by then stays in the outbox for the next start.
        """
        for task in self._collector_tasks:  # collectors stop first: nothing new comes in
            task.cancel()
        await asyncio.gather(*self._collector_tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while not self.evaluation.caught_up:
                    self.evaluation.wakeup.set()
                    await asyncio.sleep(0.01)
        await self.storage.drain(10)

    @property
    def evaluated(self) -> int:
        return self.evaluation.evaluated

    def _data_lost(self, reason: str) -> None:
        readings = self.storage.episode.get("readings", 0)
        self.dispatch(self.book.system("outbox", True, self.clock.now_ns(), "data_loss", float(readings), reason))

    def _data_flowing(self) -> None:
        self.dispatch(self.book.system("outbox", False, self.clock.now_ns(), "data_loss", None, ""))

    @property
    def stored(self) -> int:
        return self.storage.stored

    async def _statuses(self) -> None:
        while True:
            st = await self.intake.statuses.get()
            device = self.registry.devices[st.device_index]
            reason = st.reason or ("back online" if st.online else "device offline")
            self.dispatch(self.book.communication(device, st.online, st.ts, "offline", reason))

    async def _escalate(self, period: float = 1.0) -> None:
        """Every second: escalations due, shelves and maintenance that ended, floods that calmed."""
        while True:
            await asyncio.sleep(period)
            self.tick(self.clock.now_ns() // 1_000_000)

    def tick(self, now_ms: int) -> None:
        """The time-driven part of alarm management at ``now_ms`` (tests call it with a manual clock)."""
        self.dispatch(self.book.expire(now_ms))
        self.dispatch(self.escalator.check(now_ms))
        self.dispatch(self.noise.tick(now_ms))
        self._watch_stores(now_ms)

    def _watch_stores(self, now_ms: int) -> None:
        """A sink failing, or the outbox refusing appends, for ``STORE_FAILING_AFTER_MS``: a system
        alarm (``store_failing``, admins), cleared when it works again. Short hiccups stay in /healthz."""
        troubles: dict[str, tuple[bool, float | None, str]] = {}
        for name, drainer in self.storage.drainers.items():
            if drainer.state != "failing":  # the backlog is a query: only read for the alarm's value
                troubles[f"sink/{name}"] = (False, None, "")
                continue
            backlog = float(drainer.outbox.backlog(name)[0])
            troubles[f"sink/{name}"] = (True, backlog, f"sink {name} failing: {drainer.last_error}")
        err = self.storage.append_error
        troubles["outbox/append"] = (err is not None, None, f"the outbox refuses writes, ingest paused: {err}")
        for key, (bad, value, reason) in troubles.items():
            since = self._store_trouble.get(key)
            now_ns = now_ms * 1_000_000
            if bad:
                if since is None:
                    self._store_trouble[key] = since = now_ms
                if now_ms - since >= STORE_FAILING_AFTER_MS:
                    self.dispatch(self.book.system(key, True, now_ns, "store_failing", value, reason))
            elif since is not None:
                del self._store_trouble[key]
                self.dispatch(self.book.system(key, False, now_ns, "store_failing", None, ""))

    async def _stale_watch(self, period: float = 1.0) -> None:
        while True:
            await asyncio.sleep(period)
            went, back = self.detector.check_stale(self.clock.now_ns())
            for i in went:
                device = self.registry.devices[int(i)]
                secs = device.config.stale_after
                self.dispatch(self.book.communication(device, False, self.clock.now_ns(), "stale",
                                                      f"no data for {secs:g} s"))
            for i in back:
                device = self.registry.devices[int(i)]
                self.dispatch(self.book.communication(device, True, self.clock.now_ns(), "stale", ""))

    # -- read side, for the API ----------------------------------------------------------------

    def sensor_state(self, index: int) -> str:
        """A sensor's state now: out_of_service, suppressed, no_data, fault, stale, normal, or its level."""
        d = self.detector
        info = self.registry.sensors[index]
        if f"{info.enterprise}/{info.device}" in self.book.maintenance:
            return "out_of_service"
        if info.sensor_id in self.book.suppressed:
            return "suppressed"
        if d.last_ts[index] == 0:
            return "no_data"
        if d.device_stale[d.device_of[index]]:
            return "stale"
        if d.fault[index]:
            return "fault"
        level = int(d.level[index])
        return {0: "normal", 1: "high", 2: "high_high", -1: "low", -2: "low_low"}[level]

    def health(self) -> dict[str, Any]:
        return {
            "gateway": self.config.gateway.id,
            "pipeline": {
                "evaluated": self.evaluated,
                "stored": self.stored,
                "rejected": self.intake.rejects.snapshot(),
            },
            "evaluation": self.evaluation.health(),
            "storage": self.storage.health(),
            "collectors": {name: c.health() for name, c in self.collectors.items()},
            "notifiers": {name: n.health() for name, n in self.notifiers.items()},
            "alarms": {"floods": self.noise.counters.floods, "chattering": self.noise.counters.chattering,
                       "held_back": self.noise.counters.held, "flooding": self.noise.flooding_grids,
                       "escalated": self.escalator.escalated, "refused_transitions": self.book.refused,
                       "in_maintenance": sorted(self.book.maintenance)},
            "live": {"subscribers": self.hub.subscribers, "published": self.hub.published,
                     "delivered": self.hub.delivered, "overflows": self.hub.overflows},
        }
