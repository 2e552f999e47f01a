"""The Modbus collector: polls every Modbus device of the registry and hands batches to the intake.

Devices reach their registers through links (:mod:`collectors.modbus_link`): every device at the
same endpoint (``host:port`` and transport, or a serial port) shares one link, polled in turn.
One :class:`ModbusPoller` per device owns the device's coalesced read plan (:mod:`collectors.codec`)
and its fixed poll schedule on the monotonic clock: a tick that finds the previous poll still
running is skipped and counted. Each poll is one :class:`ReadingBatch` at the poll's time.

A poll is several requests and **each fails on its own**: the points of a failed request get no
reading for that tick (one lost answer is a gap, not a fault); once a point's request has failed
twice in a row and for the point's ``on_delay`` while other requests of the device still read,
the point gets one ``read_error`` fault alarm naming the error (a Modbus exception, a timeout, a
bad answer), cleared by its first good read. A device of which nothing reads is one fault, not one
per point: its communication alarm.

A request failing ``QUARANTINE_AFTER`` times in a row is quarantined: asked again every
``QUARANTINE_RETRY`` seconds (with the device's own timeout: a shorter one could keep a slow but
working block out for good), so that one bad block does not cost the device's other points a
timeout every tick (while nothing of the device reads, every request is asked every
tick: quarantine never delays an offline). Exceptions 5 and 6
(acknowledge, busy) are asked again once within the tick. A device is offline only when none of
its requests has succeeded for ``max(3 × interval, 5 s)``; online again with its first good
request. Faults are counted per device and per kind (``timeout``, ``bad_response``,
``exception_<code>``, …) in ``/healthz`` and ``/metrics``. The collector never evaluates alarms or
writes to stores.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collectors.codec import ReadRequest, plan_reads
from collectors.modbus_link import Endpoint, ModbusLink
from gateway.batch import QUALITY_DTYPE, TS_DTYPE, ReadingBatch
from gateway.clock import Clock, SystemClock
from gateway.config import ModbusDevice, Point
from gateway.errors import CollectorError, CollectorReadError, CollectorTimeout, ModbusExceptionError
from gateway.ingest.intake import DeviceStatus, Intake
from gateway.registry import DeviceInfo, Registry

log = logging.getLogger(__name__)

OFFLINE_AFTER_MIN = 5.0  # seconds of continuous failure before a device is reported offline
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
QUARANTINE_AFTER = 3  # failures in a row
QUARANTINE_RETRY = 120.0  # seconds between attempts at a quarantined request
READ_ERROR_AFTER = 2  # failures in a row before a point's read error may be raised (then its on_delay)
RETRIED_CODES = frozenset({5, 6})  # acknowledge, server busy: asked again once within the tick


@dataclass
class _RequestState:
    """One request of a device's plan, and how it has been doing."""

    req: ReadRequest
    on_delay: np.ndarray  # per point, seconds
    failing_since: float | None = None  # monotonic
    failures: int = 0  # in a row
    error: str = ""
    next_try: float = 0.0  # monotonic; a quarantined request waits for it
    reported: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # fault alarm raised, per point

    def __post_init__(self) -> None:
        self.reported = np.zeros(len(self.req.points), dtype=bool)

    @property
    def quarantined(self) -> bool:
        return self.failures >= QUARANTINE_AFTER


class ModbusPoller:
    """Polls one Modbus device on a fixed schedule through its link."""

    def __init__(self, device: DeviceInfo, points: Sequence[Point], intake: Intake, link: ModbusLink,
                 clock: Clock | None = None, *, phase: float = 0.0,
                 offline_after_min: float = OFFLINE_AFTER_MIN) -> None:
        if not isinstance(device.config, ModbusDevice):
            raise TypeError(f"{device.device_id} is not a Modbus device")
        self.device = device
        self.points = list(points)
        self.config: ModbusDevice = device.config
        self.device_id = device.device_id
        self.link = link
        self._intake = intake
        self._clock = clock or SystemClock()
        self._phase = phase
        self.offline_after = max(3 * self.config.interval, offline_after_min)
        on_delay = {device.points[p.key]: p.on_delay for p in points}
        self.requests: list[ReadRequest] = plan_reads((device.points[p.key], p) for p in points)
        self._states = [_RequestState(r, np.array([on_delay[int(s)] for s in r.sensors])) for r in self.requests]
        self._sensors = np.concatenate([s.req.sensors for s in self._states]).astype(np.int32)
        self._keys = {device.points[p.key]: p.key for p in points}
        self._failing_since: float | None = None
        self._stopping = False
        self._offline = False
        self._reading = False  # some request succeeded in the last poll that tried any
        # health
        self.online: bool | None = None  # None until the first poll has told
        self.last_ok_ms: int | None = None
        self.polls = 0
        self.failures = 0  # polls in which no request succeeded
        self.request_failures = 0
        self.skipped_ticks = 0
        self.errors: Counter[str] = Counter()  # by kind: timeout, exception_2, bad_response, …
        self.last_error: str | None = None

    @property
    def reconnects(self) -> int:
        return self.link.reconnects

    def health(self) -> dict[str, Any]:
        return {
            "online": self.online, "last_ok": self.last_ok_ms, "polls": self.polls, "failures": self.failures,
            "request_failures": self.request_failures, "skipped_ticks": self.skipped_ticks,
            "reconnects": self.link.reconnects, "errors": dict(self.errors), "last_error": self.last_error,
            "quarantined": [f"{s.req.table} {s.req.address}+{s.req.count}" for s in self._states
                            if s.quarantined and self._reading],
            "link": str(self.link.endpoint),
        }

    def stop(self) -> None:
        """Stop after the poll in flight, if any, and at the next tick at the latest (the device left
        the registry or changed); the link stays open for the other devices on it."""
        self._stopping = True

    async def run(self) -> None:
        """Poll every ``interval`` seconds until cancelled or stopped; a tick during a running poll is skipped."""
        loop = asyncio.get_running_loop()
        interval = self.config.interval
        async with asyncio.TaskGroup() as tg:
            try:
                tick = loop.time() + self._phase
                poll: asyncio.Task[None] | None = None
                while True:
                    await asyncio.sleep(max(0.0, tick - loop.time()))
                    if self._stopping:
                        return
                    if poll is None or poll.done():
                        poll = tg.create_task(self.poll(), name=f"modbus poll {self.device_id}")
                    else:
                        self.skipped_ticks += 1
                    tick += interval
                    late = loop.time() - tick
                    if late >= 0:  # the loop itself fell a whole interval behind: skipped as well
                        missed = int(late // interval) + 1
                        self.skipped_ticks += missed
                        tick += missed * interval
            except asyncio.CancelledError:
                # Stop reading before the task group cancels a poll in flight: pymodbus 3.8 fails on
                # an answer that arrives for a cancelled request. (The link is shared: all its
                # devices stop together.)
                self.link.close()
                raise

    async def poll(self) -> None:
        """One poll: each request on its own, one batch of what was read, faults and status as they change."""
        loop = asyncio.get_running_loop()
        ts = self._clock.now_ns()
        self.polls += 1
        values = np.full(sum(len(s.req.points) for s in self._states), np.nan)
        read = np.zeros(len(values), dtype=bool)
        attempted = succeeded = 0
        failed: list[_RequestState] = []
        start = 0
        for st in self._states:
            end = start + len(st.req.points)
            now = loop.time()
            # Quarantine spares the device's other points; a device of which nothing reads is polled
            # whole, so that its going offline (or coming back) is seen on time.
            if st.quarantined and now < st.next_try and self._reading:
                start = end
                continue
            attempted += 1
            try:
                values[start:end] = await self._read(st)
            except CollectorError as exc:
                self._request_failed(st, exc, loop.time())
                failed.append(st)
            else:
                read[start:end] = True
                succeeded += 1
                await self._request_ok(st, ts)
            start = end
        if attempted:
            self._reading = succeeded > 0
        if succeeded:
            await self._device_ok(loop.time())
            self.last_ok_ms = ts // 1_000_000
            await self._submit(ts, values, read)
            for st in failed:  # read errors of points: only while the device reads otherwise
                await self._report_read_errors(st, loop.time(), ts)
        elif attempted:
            await self._device_failed(loop.time())

    async def _read(self, st: _RequestState) -> np.ndarray:
        req = st.req
        for attempt in (1, 2):
            try:
                data = await self.link.read(self.config.unit, req.table, req.address, req.count, self.config.timeout)
                try:
                    return req.decode(data)
                except ValueError as exc:  # an answer the codec cannot take: this request's fault only
                    raise CollectorReadError(f"{self.device_id}: {req.table} {req.address}+{req.count}: {exc}") from exc
            except ModbusExceptionError as exc:
                if attempt == 2 or exc.code not in RETRIED_CODES:
                    raise
                self.errors[f"exception_{exc.code}"] += 1  # the first of the two: counted, then asked again
        raise AssertionError("unreachable")

    def _request_failed(self, st: _RequestState, exc: CollectorError, now: float) -> None:
        kind = (f"exception_{exc.code}" if isinstance(exc, ModbusExceptionError)
                else "timeout" if isinstance(exc, CollectorTimeout) else getattr(exc, "kind", "read_error"))
        self.errors[kind] += 1
        self.request_failures += 1
        self.last_error = str(exc)
        st.failures += 1
        st.error = str(exc)
        if st.failing_since is None:
            st.failing_since = now
            log.warning("%s: %s", self.device_id, exc)
        if st.failures == QUARANTINE_AFTER:
            log.warning("%s: %s %d+%d quarantined after %d failures: asked every %g s", self.device_id,
                        st.req.table, st.req.address, st.req.count, QUARANTINE_AFTER, QUARANTINE_RETRY)
        if st.quarantined:
            st.next_try = now + QUARANTINE_RETRY

    async def _report_read_errors(self, st: _RequestState, now: float, ts: int) -> None:
        """One ``read_error`` per point of a failing request, once its ``on_delay`` has passed."""
        assert st.failing_since is not None
        if st.failures < READ_ERROR_AFTER:  # one lost answer is a gap in the series, not a fault
            return
        due = ~st.reported & (now - st.failing_since >= st.on_delay)
        if due.any():
            st.reported |= due
            await self._points_status(st.req.sensors[due], False, ts, f"read failed: {st.error}")

    async def _request_ok(self, st: _RequestState, ts: int) -> None:
        if st.failing_since is not None:
            log.info("%s: %s %d+%d read again", self.device_id, st.req.table, st.req.address, st.req.count)
        if st.reported.any():
            await self._points_status(st.req.sensors[st.reported], True, ts, "read again")
        st.failing_since, st.failures, st.error, st.next_try = None, 0, "", 0.0
        st.reported[:] = False

    async def _points_status(self, sensors: np.ndarray, ok: bool, ts: int, reason: str) -> None:
        points = tuple(int(s) for s in sensors)
        await self._intake.device_status(DeviceStatus(self.device.index, ok, ts, reason, points=points))

    async def _device_failed(self, now: float) -> None:
        self.failures += 1
        if self._failing_since is None:
            self._failing_since = now
        if not self._offline and now - self._failing_since >= self.offline_after:
            self._offline = True
            self.online = False
            log.error("%s: offline: no request succeeded for %.1f s: %s", self.device_id,
                      now - self._failing_since, self.last_error)
            status = DeviceStatus(self.device.index, False, self._clock.now_ns(), reason=self.last_error or "")
            await self._intake.device_status(status)

    async def _device_ok(self, now: float) -> None:
        if self._failing_since is not None and self._offline:
            log.warning("%s: back online after %.1f s", self.device_id, now - self._failing_since)
            await self._intake.device_status(DeviceStatus(self.device.index, True, self._clock.now_ns()))
        self._failing_since = None
        self._offline = False
        self.online = True

    async def _submit(self, ts: int, values: np.ndarray, read: np.ndarray) -> None:
        sensors = self._sensors
        if not read.all():
            sensors, values = sensors[read], values[read]
        finite = np.isfinite(values)
        if not finite.all():
            bad = sensors[~finite]
            keys = ", ".join(self._keys[int(s)] for s in bad[:8])
            self._intake.rejects.reject("modbus", "non_finite", self.device_id, f"points {keys}", n=len(bad),
                                        device=self.device_id)
            sensors, values = sensors[finite], values[finite]
        n = len(sensors)
        batch = ReadingBatch(sensors, np.full(n, ts, dtype=TS_DTYPE), values,
                             np.zeros(n, dtype=QUALITY_DTYPE))
        await self._intake.submit(batch)


def _reads(device: DeviceInfo, points: Sequence[Point]) -> tuple[object, ...]:
    """What a poller reads and from where: a change of anything else leaves it polling."""
    fields = ("key", "register_type", "address", "dtype", "order", "bit", "count", "scale", "offset", "on_delay")
    cfg = device.config.model_dump(exclude={"name", "points", "stale_after"})
    return (device.index, tuple(sorted(cfg.items())),
            tuple(tuple(getattr(p, f) for f in fields) for p in points))


def endpoint_of(device: ModbusDevice) -> Endpoint:
    """The endpoint a device is reached at."""
    if device.transport == "rtu":
        return Endpoint("rtu", str(device.port), baudrate=device.baudrate, bytesize=device.bytesize,
                        parity=device.parity, stopbits=device.stopbits)
    assert device.host is not None
    return Endpoint(device.transport, f"{device.host}:{device.port}", host=device.host, port=int(device.port))


class ModbusCollector:
    """Every Modbus device of a registry, each polled by its own :class:`ModbusPoller` through a link
    to its endpoint: devices at one endpoint share its ``connections`` (``[[links]]``; default 1)."""

    def __init__(self, registry: Registry, intake: Intake, clock: Clock | None = None, *,
                 offline_after_min: float = OFFLINE_AFTER_MIN,
                 backoff: tuple[float, float] = (BACKOFF_FIRST, BACKOFF_MAX)) -> None:
        self.registry = registry
        self._intake = intake
        self._clock = clock
        self._offline_after_min = offline_after_min
        self._backoff = backoff
        devices = [d for d in registry.devices_of("modbus") if isinstance(d.config, ModbusDevice)]
        by_endpoint: dict[tuple[str, str, str], list[DeviceInfo]] = {}
        for d in devices:
            assert isinstance(d.config, ModbusDevice)
            by_endpoint.setdefault(d.config.link_key(), []).append(d)
        self.links: list[ModbusLink] = []
        self._links: dict[tuple[str, str, str], list[ModbusLink]] = {}
        link_of: dict[str, ModbusLink] = {}
        for key, group in by_endpoint.items():
            timeout = max(d.config.timeout for d in group if isinstance(d.config, ModbusDevice))
            links = self._open_links(key, group[0].config, timeout)  # type: ignore[arg-type]
            for j, d in enumerate(group):
                link_of[d.device_id] = links[j % len(links)]
        self.pollers: dict[str, ModbusPoller] = {}
        for i, d in enumerate(devices):
            phase = d.config.interval * i / len(devices)  # spread the devices over the interval
            self.pollers[d.device_id] = self._poller(d, link_of[d.device_id], phase)
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def _open_links(self, key: tuple[str, str, str], first: ModbusDevice, timeout: float) -> list[ModbusLink]:
        tuning = {lk.link_key(): lk for lk in self.registry.config.links}
        lk = tuning.get(key)
        links = [ModbusLink(endpoint_of(first), gap=lk.gap if lk else 0.0, connect_timeout=timeout + 0.5,
                            backoff=self._backoff) for _ in range(lk.connections if lk else 1)]
        self._links[key] = links
        self.links += links
        return links

    def _poller(self, d: DeviceInfo, link: ModbusLink, phase: float) -> ModbusPoller:
        return ModbusPoller(d, self.registry.config.device_points(d.config), self._intake, link, self._clock,
                            phase=phase, offline_after_min=self._offline_after_min)

    async def run(self) -> None:
        """Poll every device until cancelled (devices come and go with :meth:`reconfigure`)."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for device_id, poller in self.pollers.items():
                self._tasks[device_id] = tg.create_task(poller.run(), name=f"modbus {device_id}")
            await asyncio.Event().wait()

    def reconfigure(self, registry: Registry, devices: frozenset[str]) -> None:
        """Follow a registry change of ``devices`` (ids): a new Modbus device is polled at once, a
        retired one stops after its poll in flight, a changed one is polled anew only when what is
        read changed (a limit is the detector's business)."""
        for did in sorted(devices):
            ent, _, dev = did.partition("/")
            info = registry.devices_by_id.get((ent, dev))
            new = info if info is not None and isinstance(info.config, ModbusDevice) else None
            old = self.pollers.get(did)
            if old is not None and new is not None and _reads(old.device, old.points) == _reads(
                    new, registry.config.device_points(new.config)):
                old.device = new
                continue
            poller = None
            if new is not None:
                assert isinstance(new.config, ModbusDevice)
                key = new.config.link_key()
                links = self._links.get(key) or self._open_links(key, new.config, new.config.timeout)
                users = sum(1 for p in self.pollers.values() if p.link in links)
                poller = self._poller(new, links[users % len(links)], 0.0)
            self._swap(did, old, poller)

    def _swap(self, did: str, old: ModbusPoller | None, new: ModbusPoller | None) -> None:
        if new is not None:
            self.pollers[did] = new
        else:
            self.pollers.pop(did, None)
        if self._tg is None:  # not running yet: run() starts what is in pollers
            return
        before = self._tasks.pop(did, None)
        if old is not None:
            old.stop()
        self._tg.create_task(self._replace(did, before, old, new), name=f"modbus swap {did}")

    async def _replace(self, did: str, before: asyncio.Task[None] | None, old: ModbusPoller | None,
                       new: ModbusPoller | None) -> None:
        if before is not None:
            await asyncio.wait([before])  # its poll in flight ends first: one poll of a device at a time
        if old is not None and all(p.link is not old.link for p in self.pollers.values()):
            old.link.close()  # nobody else uses the endpoint
            self.links = [lk for lk in self.links if lk is not old.link]
            for key, links in list(self._links.items()):
                if old.link in links and not any(p.link in links for p in self.pollers.values()):
                    del self._links[key]
        if new is not None and self._tg is not None and self.pollers.get(did) is new:
            self._tasks[did] = self._tg.create_task(new.run(), name=f"modbus {did}")

    def tasks_running(self) -> set[str]:
        """The devices whose poller runs now."""
        return {did for did, task in self._tasks.items() if not task.done()}

    def health(self) -> dict[str, dict[str, Any]]:
        """Per device id ``ent/dev``: online, last_ok (epoch ms), polls, failures, request failures,
        skipped_ticks, reconnects, errors by kind, quarantined requests, last_error, its link."""
        return {device_id: p.health() for device_id, p in self.pollers.items()}
