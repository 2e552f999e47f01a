"""A Modbus link: one connection to one endpoint, shared by every unit id behind it.

An endpoint is a Modbus TCP device, a serial device server (several unit ids behind one address
that accepts one or two connections: Modbus TCP, or RTU frames passed over TCP), or a serial port
(RTU on RS-485). Every device at the same endpoint reads through the same :class:`ModbusLink`, one
request at a time, with the link's ``gap`` between requests (a serial bus needs its silence; a
cheap server its breath). The link owns the pymodbus client and what pymodbus leaves to it:

- a connection the peer closed or reset is seen at once and reopened before the next request,
  never written to; reopening after a failure waits with the one backoff (:mod:`gateway.retry`);
- an answer is checked before it is decoded: transaction id (TCP), unit, function code and byte
  count must be the request's, else it is discarded, counted (``bad_response``) and the connection
  reopened, so that a late or foreign answer can never be taken for the next request's;
- a timeout drops the connection for the same reason (the late answer would arrive on it);
- a Modbus exception response raises :class:`~gateway.errors.ModbusExceptionError` with its code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from gateway.errors import CollectorReadError, CollectorTimeout, ModbusExceptionError
from gateway.retry import Backoff

log = logging.getLogger(__name__)

FUNCTION = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
_METHOD = {"holding": "read_holding_registers", "input": "read_input_registers", "coil": "read_coils",
           "discrete": "read_discrete_inputs"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a link goes: ``transport`` and ``host:port``, or a serial ``port`` with its line settings."""

    transport: str  # "tcp", "rtu-over-tcp" or "rtu"
    address: str  # host:port, or the serial port's path
    host: str = ""
    port: int = 0
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1

    def __str__(self) -> str:
        return self.address if self.transport == "tcp" else f"{self.transport}:{self.address}"


class ModbusLink:
    """One connection to an endpoint; requests one at a time, ``gap`` seconds apart."""

    def __init__(self, endpoint: Endpoint, *, gap: float = 0.0, connect_timeout: float = 1.0,
                 backoff: tuple[float, float] = (0.5, 10.0)) -> None:
        self.endpoint = endpoint
        self.gap = gap
        self.connect_timeout = connect_timeout
        self._backoff = Backoff(*backoff)
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._sent_tid = 0
        self._free_at = 0.0  # monotonic time before which the next request waits (the gap)
        self._retry_at = 0.0
        self._ever_connected = False
        # health
        self.requests = 0
        self.connects = 0
        self.reconnects = 0
        self.errors: Counter[str] = Counter()  # timeout, bad_response, connect, closed, exception_<code>
        self.last_error: str | None = None

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        ep = self.endpoint
        # retries and reconnecting are ours (counted, with backoff); the timeout is the request's own
        # (pymodbus waits for an answer up to this too; each request's own timeout ends it sooner)
        common: dict[str, Any] = {"name": str(ep), "timeout": self.connect_timeout, "retries": 0, "reconnect_delay": 0,
                                  "trace_pdu": self._trace_pdu, "trace_connect": self._trace_connect}
        if ep.transport == "rtu":
            return AsyncModbusSerialClient(ep.address, framer=FramerType.RTU, baudrate=ep.baudrate,
                                           bytesize=ep.bytesize, parity=ep.parity, stopbits=ep.stopbits, **common)
        framer = FramerType.RTU if ep.transport == "rtu-over-tcp" else FramerType.SOCKET
        return AsyncModbusTcpClient(ep.host, port=ep.port, framer=framer, **common)

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if sending:
            self._sent_tid = pdu.transaction_id
        return pdu

    def _trace_connect(self, connected: bool) -> None:
        """The peer closed or reset the connection: a request waiting for its answer fails now, not at
        its timeout (pymodbus would leave it waiting on a dead socket)."""
        if connected or self._client is None:
            return
        waiting = getattr(self._client.ctx, "response_future", None)
        if waiting is not None and not waiting.done():
            waiting.set_exception(ConnectionResetError("the device closed the connection"))

    async def read(self, unit: int, table: str, address: int, count: int, timeout: float) -> list[int] | list[bool]:
        """Read ``count`` registers (or bits) of ``table`` at ``address`` from ``unit``; the values, checked.

        Raises :class:`CollectorTimeout`, :class:`ModbusExceptionError` (an exception response) or
        :class:`CollectorReadError` (cannot connect, connection lost, a bad answer).
        """
        async with self._lock:
            pause = self._free_at - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            try:
                await self._ensure_connected()
                try:
                    return await self._request(unit, table, address, count, timeout)
                except _Closed:
                    # closed under the request (a server that closes after each answer, seen late):
                    # the request never reached the device; once more on a fresh connection
                    await self._ensure_connected()
                    return await self._request(unit, table, address, count, timeout)
            finally:
                self._free_at = time.monotonic() + self.gap

    async def _ensure_connected(self) -> None:
        if self._client is None:
            self._client = self._make_client()
        if self._client.connected:
            return
        now = time.monotonic()
        if now < self._retry_at:
            wait = self._retry_at - now
            raise LinkError("connect", f"cannot connect to {self.endpoint}; next attempt in {wait:.1f} s")
        self.connects += 1
        # the transport's own connect: the client's wrapper sleeps 0.1 s after every connect, which a
        # device that closes after each answer would pay on every request
        if not await self._client.ctx.connect():
            delay = self._backoff.next()
            self._retry_at = now + delay
            self._fail("connect", f"cannot connect to {self.endpoint}")
            raise LinkError("connect", f"cannot connect to {self.endpoint}; next attempt in {delay:.1f} s")
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self._backoff.reset()
        self._retry_at = 0.0

    async def _request(self, unit: int, table: str, address: int, count: int,
                       timeout: float) -> list[int] | list[bool]:
        assert self._client is not None
        what = f"{self.endpoint} unit {unit}: read {table} {address}+{count}"
        self.requests += 1
        try:
            async with asyncio.timeout(timeout):
                rsp = await getattr(self._client, _METHOD[table])(address, count=count, slave=unit)
        except TimeoutError as exc:
            self._drop("timeout", f"{what}: no answer within {timeout:g} s")
            raise CollectorTimeout(f"{what}: no answer within {timeout:g} s") from exc
        except (ModbusException, OSError) as exc:
            self._drop("closed", f"{what}: {exc}")
            raise _Closed(f"{what}: connection lost: {exc}") from exc
        problem = self._check(rsp, unit, table, count)
        if problem:
            self._drop("bad_response", f"{what}: {problem}")
            raise LinkError("bad_response", f"{what}: bad response discarded: {problem}")
        if rsp.isError():
            code = int(getattr(rsp, "exception_code", 0))
            self._fail(f"exception_{code}", f"{what}: exception {code}")
            raise ModbusExceptionError(code, f"{what}: Modbus exception {code} ({EXCEPTIONS.get(code, 'unknown')})")
        values = rsp.bits[:count] if table in ("coil", "discrete") else rsp.registers
        return values

    def _check(self, rsp: ModbusPDU, unit: int, table: str, count: int) -> str | None:
        """Why an answer is not the one asked for, or None."""
        fc = FUNCTION[table]
        if self.endpoint.transport == "tcp" and rsp.transaction_id != self._sent_tid:
            return f"transaction id {rsp.transaction_id}, asked {self._sent_tid}"
        if rsp.dev_id != unit:
            return f"unit {rsp.dev_id}, asked {unit}"
        if rsp.function_code & 0x7F != fc:
            return f"function code {rsp.function_code}, asked {fc}"
        if rsp.isError():
            return None
        if table in ("coil", "discrete"):
            if len(rsp.bits) < count or len(rsp.bits) >= count + 8:
                return f"{len(rsp.bits)} bits, asked {count}"
        elif len(rsp.registers) != count:
            return f"{len(rsp.registers)} registers, asked {count}"
        return None

    def _fail(self, kind: str, message: str) -> None:
        self.errors[kind] += 1
        self.last_error = message

    def _drop(self, kind: str, message: str) -> None:
        # The stream may still carry a late or foreign answer, which pymodbus would hand to the next
        # request: start afresh.
        self._fail(kind, message)
        if self._client is not None:
            self._client.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def health(self) -> dict[str, Any]:
        return {"endpoint": str(self.endpoint), "connected": bool(self._client and self._client.connected),
                "requests": self.requests, "connects": self.connects, "reconnects": self.reconnects,
                "errors": dict(self.errors), "last_error": self.last_error}


class LinkError(CollectorReadError):
    """A request that failed on the link: ``kind`` is ``connect``, ``closed`` or ``bad_response``."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class _Closed(LinkError):
    """The connection was closed or reset while a request waited for its answer."""

    def __init__(self, message: str) -> None:
        super().__init__("closed", message)


EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "server device failure",
              5: "acknowledge", 6: "server device busy", 8: "memory parity error", 10: "gateway path unavailable",
              11: "gateway target device failed to respond"}
