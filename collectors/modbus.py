"""The Modbus TCP collector: polls every Modbus device of the registry and hands batches to the intake.

One :class:`ModbusPoller` per device owns its pymodbus ``AsyncModbusTcpClient`` connection (with
one lock), the device's coalesced read plan from :mod:`collectors.codec`, and its fixed poll
schedule on the monotonic clock: a tick that finds the previous poll still running is skipped and
counted. Each poll is one :class:`ReadingBatch` at the poll's time; non-finite values are dropped
and counted as rejections. pymodbus errors are translated to ``CollectorReadError`` /
``CollectorTimeout`` at the boundary and only ever affect their own device. A lost connection is
reopened with capped exponential backoff and jitter; a device whose polls have failed for
``max(3 × interval, 5 s)`` is reported offline once, and online again at its first good poll.
:class:`ModbusCollector` runs all pollers in one TaskGroup until cancelled; it never evaluates
alarms or writes to stores.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException, ModbusIOException

from collectors.codec import BIT_TABLES, ReadRequest, plan_reads
from gateway.batch import QUALITY_DTYPE, TS_DTYPE, ReadingBatch
from gateway.clock import Clock, SystemClock
from gateway.config import ModbusDevice, Point
from gateway.errors import CollectorError, CollectorReadError, CollectorTimeout
from gateway.ingest.intake import DeviceStatus, Intake
from gateway.registry import DeviceInfo, Registry
from gateway.retry import Backoff

log = logging.getLogger(__name__)

OFFLINE_AFTER_MIN = 5.0  # seconds of continuous failure before a device is reported offline
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
_READ_METHOD = {
    "holding": "read_holding_registers",
    "input": "read_input_registers",
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
}


class ModbusPoller:
    """Polls one Modbus device on a fixed schedule over its own connection."""

    def __init__(
        self,
        device: DeviceInfo,
        points: Sequence[Point],
        intake: Intake,
        clock: Clock | None = None,
        *,
        phase: float = 0.0,
        offline_after_min: float = OFFLINE_AFTER_MIN,
        backoff: tuple[float, float] = (BACKOFF_FIRST, BACKOFF_MAX),
    ) -> None:
        if not isinstance(device.config, ModbusDevice):
            raise TypeError(f"{device.device_id} is not a Modbus device")
        self.device = device
        self.config: ModbusDevice = device.config
        self.device_id = device.device_id
        self._intake = intake
        self._clock = clock or SystemClock()
        self._phase = phase
        self.offline_after = max(3 * self.config.interval, offline_after_min)
        self._backoff = Backoff(*backoff)
        self.requests: list[ReadRequest] = plan_reads((device.points[p.key], p) for p in points)
        self._sensors = (np.concatenate([r.sensors for r in self.requests]) if self.requests
                         else np.empty(0, dtype=np.int32))
        self._keys = {device.points[p.key]: p.key for p in points}
        self._lock = asyncio.Lock()  # one per connection: requests never interleave
        self._client: AsyncModbusTcpClient | None = None
        self._ever_connected = False
        self._retry_at = 0.0
        self._failing_since: float | None = None
        self._offline = False
        # health
        self.online: bool | None = None  # None until the first poll has told
        self.last_ok_ms: int | None = None
        self.polls = 0
        self.failures = 0
        self.skipped_ticks = 0
        self.reconnects = 0
        self.last_error: str | None = None

    def health(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "last_ok": self.last_ok_ms,
            "polls": self.polls,
            "failures": self.failures,
            "skipped_ticks": self.skipped_ticks,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }

    async def run(self) -> None:
        """Poll every ``interval`` seconds until cancelled; a tick during a running poll is skipped."""
        loop = asyncio.get_running_loop()
        interval = self.config.interval
        self._client = AsyncModbusTcpClient(
            self.config.host, port=self.config.port, name=self.device_id, timeout=self.config.timeout,
            retries=0, reconnect_delay=0,  # reconnecting is ours: backoff with jitter, counted
        )
        async with asyncio.TaskGroup() as tg:
            try:
                tick = loop.time() + self._phase
                poll: asyncio.Task[None] | None = None
                while True:
                    await asyncio.sleep(max(0.0, tick - loop.time()))
                    if poll is None or poll.done():
                        poll = tg.create_task(self._poll(), name=f"modbus poll {self.device_id}")
                    else:
                        self.skipped_ticks += 1
                    tick += interval
                    late = loop.time() - tick
                    if late >= 0:  # the loop itself fell a whole interval behind: skipped as well
                        missed = int(late // interval) + 1
                        self.skipped_ticks += missed
                        tick += missed * interval
            finally:
                # Stop reading before the task group cancels a poll in flight: pymodbus 3.8 fails
                # on an answer that arrives for a cancelled request.
                self._client.close()

    async def _poll(self) -> None:
        """One poll: read every request, decode, and submit one batch (or count the failure)."""
        loop = asyncio.get_running_loop()
        ts = self._clock.now_ns()
        self.polls += 1
        try:
            values = await self._read_all()
        except CollectorError as exc:
            await self._failed(exc, loop.time())
            return
        await self._succeeded(ts, values, loop.time())

    async def _read_all(self) -> np.ndarray:
        values = np.empty(len(self._sensors), dtype=np.float64)
        async with self._lock:
            await self._ensure_connected()
            start = 0
            for req in self.requests:
                data = await self._read(req)
                try:
                    values[start:start + len(req.points)] = req.decode(data)
                except ValueError as exc:
                    raise CollectorReadError(f"{self.device_id}: {exc}") from exc
                start += len(req.points)
        return values

    async def _ensure_connected(self) -> None:
        assert self._client is not None
        if self._client.connected:
            return
        now = asyncio.get_running_loop().time()
        if now < self._retry_at:
            raise CollectorReadError(f"{self.device_id}: cannot connect to {self.config.host}:"
                                     f"{self.config.port}; next attempt in {self._retry_at - now:.1f} s")
        if not await self._client.connect():
            delay = self._backoff.next()
            self._retry_at = now + delay
            raise CollectorReadError(f"{self.device_id}: cannot connect to {self.config.host}:"
                                     f"{self.config.port}; next attempt in {delay:.1f} s")
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self._backoff.reset()
        self._retry_at = 0.0

    async def _read(self, req: ReadRequest) -> list[int] | list[bool]:
        assert self._client is not None
        what = f"{self.device_id}: read {req.table} {req.address}+{req.count}"
        read = getattr(self._client, _READ_METHOD[req.table])
        try:
            async with asyncio.timeout(self.config.timeout):
                rsp = await read(req.address, count=req.count, slave=self.config.unit)
        except TimeoutError as exc:
            self._drop_connection()
            raise CollectorTimeout(f"{what}: no answer within {self.config.timeout:g} s") from exc
        except ModbusIOException as exc:
            self._drop_connection()
            if "No response" in str(exc):
                raise CollectorTimeout(f"{what}: no answer within {self.config.timeout:g} s") from exc
            raise CollectorReadError(f"{what}: {exc}") from exc
        except ModbusException as exc:
            self._drop_connection()
            raise CollectorReadError(f"{what}: {exc}") from exc
        if rsp.isError():
            code = getattr(rsp, "exception_code", None)
            raise CollectorReadError(f"{what}: Modbus exception response, code {code}")
        return rsp.bits if req.table in BIT_TABLES else rsp.registers

    def _drop_connection(self) -> None:
        # After a timeout the stream may still carry the late answer, which pymodbus would hand
        # to the next request (or fail on, when its future is cancelled): start afresh.
        assert self._client is not None
        self._client.close()

    async def _failed(self, exc: CollectorError, now: float) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self._failing_since is None:
            self._failing_since = now
            log.warning("%s: poll failed: %s", self.device_id, exc)
        if not self._offline and now - self._failing_since >= self.offline_after:
            self._offline = True
            self.online = False
            log.error("%s: offline: polls failing for %.1f s: %s", self.device_id,
                      now - self._failing_since, exc)
            status = DeviceStatus(self.device.index, False, self._clock.now_ns(), reason=self.last_error)
            await self._intake.device_status(status)

    async def _succeeded(self, ts: int, values: np.ndarray, now: float) -> None:
        if self._failing_since is not None:
            down = now - self._failing_since
            if self._offline:
                log.warning("%s: back online after %.1f s", self.device_id, down)
                await self._intake.device_status(DeviceStatus(self.device.index, True, self._clock.now_ns()))
            else:
                log.info("%s: polls succeed again after %.1f s", self.device_id, down)
            self._failing_since = None
        self._offline = False
        self.online = True
        self.last_ok_ms = ts // 1_000_000
        sensors = self._sensors
        finite = np.isfinite(values)
        if not finite.all():
            bad = sensors[~finite]
            keys = ", ".join(self._keys[int(s)] for s in bad[:8])
            self._intake.rejects.reject("modbus", "non_finite", self.device_id, f"points {keys}", n=len(bad))
            sensors, values = sensors[finite], values[finite]
        n = len(sensors)
        ts_array = np.full(n, ts, dtype=TS_DTYPE)
        batch = ReadingBatch(sensors, ts_array, values, np.zeros(n, dtype=QUALITY_DTYPE))
        await self._intake.submit(batch)


class ModbusCollector:
    """Every Modbus device of a registry, each polled by its own :class:`ModbusPoller`."""

    def __init__(
        self,
        registry: Registry,
        intake: Intake,
        clock: Clock | None = None,
        *,
        offline_after_min: float = OFFLINE_AFTER_MIN,
        backoff: tuple[float, float] = (BACKOFF_FIRST, BACKOFF_MAX),
    ) -> None:
        devices = registry.devices_of("modbus")
        self.pollers: dict[str, ModbusPoller] = {}
        for i, d in enumerate(devices):
            assert isinstance(d.config, ModbusDevice)
            phase = d.config.interval * i / len(devices)  # spread the devices over the interval
            self.pollers[d.device_id] = ModbusPoller(
                d, registry.config.device_points(d.config), intake, clock, phase=phase,
                offline_after_min=offline_after_min, backoff=backoff,
            )

    async def run(self) -> None:
        """Poll every device until cancelled."""
        if not self.pollers:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            for device_id, poller in self.pollers.items():
                tg.create_task(poller.run(), name=f"modbus {device_id}")

    def health(self) -> dict[str, dict[str, Any]]:
        """Per device id ``ent/dev``: online, last_ok (epoch ms), polls, failures, skipped_ticks,
        reconnects, last_error."""
        return {device_id: p.health() for device_id, p in self.pollers.items()}
