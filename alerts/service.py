"""The alarm service: everything between the outbox and the officers, as one gateway runs it.

It owns the step's parts — the detector fed from the outbox at its durable cursor
(:mod:`alerts.evaluation`), the alarm book, the live hub, escalation, the flood and chatter
monitor and the notifiers — and the alarm logic around them: devices' communication status
(offline, stale), the time-driven part of alarm management (escalations due, shelves and
maintenance that ended, floods that calmed), stores that keep failing, lost data, and each
sensor's state as the API shows it. Every event goes through :meth:`AlarmService.dispatch`: the
noise monitor first decides what may be pushed, the book records that, then the listeners (log,
live hub) get everything and the notifiers what they may push. The composition root creates the
coroutines of :meth:`AlarmService.tasks` in its one TaskGroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from alerts.book import AlarmBook
from alerts.detector import Detector
from alerts.escalation import Escalator
from alerts.evaluation import Evaluation
from alerts.hub import AlarmHub
from alerts.model import AlarmEvent
from alerts.noise import NoiseMonitor, gas_detectors
from alerts.notify import Notifier
from gateway.clock import Clock
from gateway.config import Config
from gateway.ingest.intake import DeviceStatus
from gateway.ingest.outbox import Outbox
from gateway.registry import Change, Registry

log = logging.getLogger(__name__)

EventListener = Callable[[list[AlarmEvent]], None]
Trouble = tuple[bool, float | None, str]  # failing now?, the alarm's value, the reason
STORE_FAILING_AFTER_MS = 10_000
LEVEL_STATE = {0: "normal", 1: "high", 2: "high_high", -1: "low", -2: "low_low"}


class AlarmService:
    """The detector, the book, the hub, escalation, noise and the notifiers of one gateway."""

    def __init__(self, cfg: Config, registry: Registry, book_path: str | Path, outbox: Outbox,
                 executor: Executor | None, clock: Clock,
                 troubles: Callable[[], Mapping[str, Trouble]] = dict) -> None:
        self.registry = registry
        self.clock = clock
        self.troubles = troubles  # the stores' failures now, by system alarm key
        self.detector = Detector(registry)
        self.book = AlarmBook(book_path, registry)
        self.hub = AlarmHub()
        self.escalator = Escalator(self.book, registry, cfg.alarms.escalate_after)
        self.noise = NoiseMonitor(self.book, cfg.alarms.flood, cfg.alarms.chatter)
        # Listeners see every event (the log, the live stream); notifiers only those that are pushed:
        # not what a flood, a chattering alarm or a shelf holds back.
        self.listeners: list[EventListener] = [_log_events, self.hub.publish]
        self.pushers: list[EventListener] = []
        self.notifiers: dict[str, Notifier] = {}
        self.evaluation = Evaluation(registry, self.detector, self.book, outbox, executor, self.dispatch)
        self._trouble_since: dict[str, int] = {}  # system alarm key -> failing since (epoch ms)

    def registry_changed(self, registry: Registry, change: Change) -> None:
        """A registry change, applied between two evaluations (both run on the event loop): the
        detector takes the new limits, what is retired ends its alarms, a moved enterprise takes
        its open alarms along."""
        self.detector.reconfigure(registry)
        self.evaluation.reconfigure()
        self.noise.gas = gas_detectors(registry)
        settings = registry.config.alarms  # a reload of the file may have changed them
        self.escalator.after = settings.escalate_after
        self.noise.configure(settings.flood, settings.chatter)
        now_ms = self.clock.now_ns() // 1_000_000
        retired_sensors = [registry.sensors[i].sensor_id for i in change.retired_sensors]
        retired_devices = [registry.layout.devices[d] for d in change.retired_devices]
        events: list[AlarmEvent] = []
        if retired_sensors or change.retired_devices or change.retired_enterprises:
            events += self.book.retire(retired_sensors, change.retired_devices, retired_devices, change.actor, now_ms,
                                       change.retired_enterprises)
        for enterprise, (old, new) in change.moved.items():
            events += self.book.move(enterprise, old, new, change.actor, now_ms)
        self.dispatch(events)

    def add_notifier(self, notifier: Notifier) -> None:
        self.notifiers[notifier.name] = notifier
        self.pushers.append(notifier.offer)

    def add_listener(self, listener: EventListener) -> None:
        self.listeners.append(listener)

    def dispatch(self, events: list[AlarmEvent]) -> None:
        """Hand alarm events to the listeners and the notifiers; none of them may block.

        The noise monitor sees them first: it may add a flood or chattering event, and it says
        which of them the notifiers get.
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
                except Exception:  # a broken listener must not stop the pipeline
                    log.exception("alarm listener %r failed", listener)

    # -- tasks --------------------------------------------------------------------------------

    def tasks(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The coroutines the runtime runs, by task name."""
        tasks: dict[str, Coroutine[Any, Any, None]] = {
            f"notifier-{name}": n.run() for name, n in self.notifiers.items()}
        tasks["evaluation"] = self.evaluation.run()
        tasks["stale-watch"] = self.watch_stale()
        tasks["alarm-clock"] = self.keep_time()
        return tasks

    async def record_status(self, status: DeviceStatus) -> None:
        """A device going offline or coming back, as a collector saw it: its communication alarm,
        committed to the book before this returns (the intake's durable step for a status; the MQTT
        collector acknowledges the status message after it)."""
        if status.points:  # some points' reads failing, or read again
            points = [self.registry.sensors[i] for i in status.points]
            self.dispatch(self.book.points_read(points, status.online, status.ts, status.reason))
            return
        device = self.registry.devices[status.device_index]
        reason = status.reason or ("back online" if status.online else "device offline")
        self.dispatch(self.book.communication(device, status.online, status.ts, "offline", reason))

    async def watch_stale(self, period: float = 1.0) -> None:
        """Every second: devices whose data stopped for longer than their ``stale_after``, and back."""
        while True:
            await asyncio.sleep(period)
            now_ns = self.clock.now_ns()
            went, back = self.detector.check_stale(now_ns)
            for i in went:
                device = self.registry.devices[int(i)]
                self.dispatch(self.book.communication(device, False, now_ns, "stale",
                                                      f"no data for {device.config.stale_after:g} s"))
            for i in back:
                self.dispatch(self.book.communication(self.registry.devices[int(i)], True, now_ns, "stale", ""))

    async def keep_time(self, period: float = 1.0) -> None:
        while True:
            await asyncio.sleep(period)
            self.tick(self.clock.now_ns() // 1_000_000)

    def tick(self, now_ms: int) -> None:
        """The time-driven part of alarm management at ``now_ms`` (tests call it with a manual clock):
        shelves and maintenance that ended, escalations due, floods that calmed, stores failing."""
        self.dispatch(self.book.expire(now_ms))
        self.dispatch(self.escalator.check(now_ms))
        self.dispatch(self.noise.tick(now_ms))
        self.watch_stores(self.troubles(), now_ms)

    def watch_stores(self, troubles: Mapping[str, Trouble], now_ms: int) -> None:
        """A store failing for ``STORE_FAILING_AFTER_MS`` (a sink, the outbox refusing appends): a
        ``store_failing`` system alarm (admins), cleared when it works again. Hiccups stay in /healthz."""
        now_ns = now_ms * 1_000_000
        for key, (bad, value, reason) in troubles.items():
            since = self._trouble_since.get(key)
            if bad:
                if since is None:
                    self._trouble_since[key] = since = now_ms
                if now_ms - since >= STORE_FAILING_AFTER_MS:
                    self.dispatch(self.book.system(key, True, now_ns, "store_failing", value, reason))
            elif since is not None:
                del self._trouble_since[key]
                self.dispatch(self.book.system(key, False, now_ns, "store_failing", None, ""))

    def data_loss(self, losing: bool, readings: int = 0, reason: str = "") -> None:
        """The outbox dropped readings under its quota (``losing``), or is back under it."""
        value = float(readings) if losing else None
        self.dispatch(self.book.system("outbox", losing, self.clock.now_ns(), "data_loss", value, reason))

    async def drain(self, timeout: float) -> None:
        """On stop: let the evaluation catch up with the outbox, for at most ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self.evaluation.caught_up:
                    self.evaluation.wakeup.set()
                    await asyncio.sleep(0.01)

    def close(self) -> None:
        self.book.close()

    # -- read side ----------------------------------------------------------------------------

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
        return LEVEL_STATE[int(d.level[index])]

    def health(self) -> dict[str, Any]:
        return {
            "evaluation": self.evaluation.health(),
            "notifiers": {name: n.health() for name, n in self.notifiers.items()},
            "alarms": {"floods": self.noise.counters.floods, "chattering": self.noise.counters.chattering,
                       "held_back": self.noise.counters.held, "flooding": self.noise.flooding_grids,
                       "escalated": self.escalator.escalated, "refused_transitions": self.book.refused,
                       "in_maintenance": sorted(self.book.maintenance)},
            "live": {"subscribers": self.hub.subscribers, "published": self.hub.published,
                     "delivered": self.hub.delivered, "overflows": self.hub.overflows},
        }


def _log_events(events: list[AlarmEvent]) -> None:
    for ev in events:
        a = ev.alarm
        value = "" if a.value is None else f" value {a.value:.4g}{a.unit and ' ' + a.unit}"
        log.info("alarm %d %s: %s %s %s%s -> %s", a.id, ev.type, a.kind, a.level, a.sensor_id, value,
                 ", ".join(ev.recipients) or "nobody")
