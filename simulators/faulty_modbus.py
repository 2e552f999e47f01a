"""A Modbus TCP device that misbehaves the ways field devices do, written on asyncio streams from the
specification (not on pymodbus, so the collector is tested and measured against a second
implementation; ``gridgate bench faults`` and the collector's fault tests use it).

Serves function codes 1–4 for any number of unit ids behind one address (a serial device server),
each unit with its own registers. What it does wrong is set per unit or per device: an exception
code for a block of registers (a card missing in a PLC rack), "server busy" (6) to every n-th
request, closing the connection after each answer, answering late, answering with a wrong
transaction id, unit or byte count, sending junk, and accepting at most ``max_connections`` at once
(further connections are closed at once, as a serial server with one TCP slot does).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field

from simulators.brokers import free_port


@dataclass
class Unit:
    """One unit id: registers by address (holding and input share them), and its misbehaviour."""

    registers: dict[int, int] = field(default_factory=dict)
    exception_blocks: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end excl., code)
    busy_every: int = 0  # every n-th request of this unit answered with exception 6
    delay: float = 0.0  # seconds before answering
    wrong_tid_every: int = 0  # every n-th answer carries the previous request's transaction id
    wrong_count_every: int = 0  # every n-th answer carries one register too many
    silent: bool = False  # never answers
    requests: int = 0


@dataclass
class FaultyDevice:
    units: dict[int, Unit]
    close_after_answer: bool = False
    max_connections: int = 0  # 0: any number
    port: int = field(default_factory=free_port)
    connections: int = 0  # open now
    accepted: int = 0  # connections served, ever
    refused: int = 0
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> FaultyDevice:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.max_connections and self.connections >= self.max_connections:
            self.refused += 1
            writer.close()
            return
        self.connections += 1
        self.accepted += 1
        try:
            while True:
                header = await reader.readexactly(7)
                tid, proto, length, unit_id = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                reply = await self._answer(unit_id, pdu)
                if reply is None:
                    continue
                tid_out, unit_out, body = reply
                out_tid = tid - 1 if tid_out else tid
                writer.write(struct.pack(">HHHB", out_tid & 0xFFFF, proto, len(body) + 1, unit_out or unit_id) + body)
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the peer left, or the device is switched off
        finally:
            self.connections -= 1
            writer.close()

    async def _answer(self, unit_id: int, pdu: bytes) -> tuple[bool, int, bytes] | None:
        unit = self.units.get(unit_id)
        if unit is None or unit.silent:
            return None
        unit.requests += 1
        fc, address, count = struct.unpack(">BHH", pdu[:5])
        if unit.delay:
            await asyncio.sleep(unit.delay)
        if unit.busy_every and unit.requests % unit.busy_every == 0:
            return False, 0, bytes([fc | 0x80, 6])
        for start, end, code in unit.exception_blocks:
            if address < end and start < address + count:
                return False, 0, bytes([fc | 0x80, code])
        wrong_tid = bool(unit.wrong_tid_every) and unit.requests % unit.wrong_tid_every == 0
        extra = 1 if unit.wrong_count_every and unit.requests % unit.wrong_count_every == 0 else 0
        if fc in (3, 4):
            words = [unit.registers.get(address + i, 0) for i in range(count + extra)]
            data = struct.pack(f">{len(words)}H", *words)
        elif fc in (1, 2):
            bits = [unit.registers.get(address + i, 0) & 1 for i in range(count)]
            data = bytes(sum(b << j for j, b in enumerate(bits[k:k + 8])) for k in range(0, count, 8))
        else:
            return False, 0, bytes([fc | 0x80, 1])
        return wrong_tid, 0, bytes([fc, len(data)]) + data
