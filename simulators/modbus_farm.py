"""A Modbus device farm: every Modbus device of a configuration, served live from a scenario.

Devices are grouped by endpoint (transport and host:port, or serial port): one pymodbus async
server per endpoint — Modbus TCP, RTU frames over TCP, or RTU on a serial port — one unit id per
device, all servers on one asyncio loop. A device's registers are encoded with
:mod:`simulators.registers` from its scenario at the farm's current time (seconds since the farm
started, or an injected time base), refreshed at most every ``refresh`` seconds, so values move
while a gateway polls. A ``dropout`` scenario makes the device stop answering for its window: a
server whose devices are all out is closed (connections refused), a unit sharing a server with
live ones just gets no response; the device comes back after the window. Tests can inject a
Modbus exception response (:meth:`ModbusFarm.set_exception`), a response delay
(:meth:`ModbusFarm.set_delay`) or RTU answers with a bad CRC (:meth:`ModbusFarm.set_crc_error`)
per device.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from pymodbus.datastore import ModbusServerContext
from pymodbus.datastore.context import ModbusBaseSlaveContext
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from gateway.config import ModbusDevice, Point, load_config
from gateway.registry import DeviceInfo, Registry
from simulators.registers import encode, set_bit
from simulators.scenarios import SCENARIOS, Scenario

log = logging.getLogger(__name__)

ILLEGAL_ADDRESS = ExceptionResponse.ILLEGAL_ADDRESS
_TABLE_LETTER = {"holding": "h", "input": "i", "coil": "c", "discrete": "d"}


class SimulatedDevice(ModbusBaseSlaveContext):
    """One device's register tables, encoded from its scenario; a pymodbus slave context."""

    def __init__(self, info: DeviceInfo, points: Sequence[Point], scenario: Scenario,
                 clock: Callable[[], float], refresh: float) -> None:
        self.info = info
        self.points = list(points)
        self.scenario = scenario
        self.delay = 0.0
        self.exception_code: int | None = None
        self.corrupt_crc_every = 0  # RTU: every n-th answer goes out with a bad CRC
        self.answers_sent = 0
        self._clock = clock
        self._refresh = refresh
        self._t: float | None = None
        self.tables: dict[str, dict[int, int]] = {letter: {} for letter in _TABLE_LETTER.values()}

    @property
    def device_id(self) -> str:
        return self.info.device_id

    def answers(self) -> bool:
        return self.scenario.answers(self._clock())

    def update(self, t: float) -> None:
        """Encode every point's value at scenario time ``t`` into the register tables."""
        tables: dict[str, dict[int, int]] = {letter: {} for letter in _TABLE_LETTER.values()}
        bits: list[tuple[dict[int, int], Point, float]] = []
        for p in self.points:
            assert p.register_type is not None and p.address is not None
            table = tables[_TABLE_LETTER[p.register_type]]
            value, _quality = self.scenario.reading(p.kind, p.key, t)
            if p.modbus_dtype == "bool" and p.bit is not None:
                bits.append((table, p, value))  # after the words, so a bit can sit in a numeric word
                continue
            for i, word in enumerate(encode(value, p.modbus_dtype, p.order, p.scale, p.offset)):
                table[p.address + i] = word
        for table, p, value in bits:
            on = encode(value, "bool", scale=p.scale, offset=p.offset)[0] == 1
            table[p.address] = set_bit(table.get(p.address, 0), p.bit or 0, on)
        self.tables = tables
        self._t = t

    def _refresh_if_due(self) -> None:
        t = self._clock()
        if self._t is None or abs(t - self._t) >= self._refresh:
            self.update(t)

    # pymodbus slave context interface
    def reset(self) -> None:
        self._t = None

    def validate(self, fc_as_hex: int, address: int, count: int = 1) -> bool:
        return 0 <= address and address + count <= 65536

    def getValues(self, fc_as_hex: int, address: int, count: int = 1) -> list[int | bool]:
        self._refresh_if_due()
        letter = self.decode(fc_as_hex)
        table = self.tables[letter]
        values = [table.get(a, 0) for a in range(address, address + count)]
        if letter in ("c", "d"):
            return [bool(v) for v in values]
        return list(values)

    async def async_getValues(self, fc_as_hex: int, address: int, count: int = 1) -> list[int | bool]:
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        return self.getValues(fc_as_hex, address, count)

    def setValues(self, fc_as_hex: int, address: int, values: Sequence[int | bool]) -> None:
        table = self.tables[self.decode(fc_as_hex)]
        for i, v in enumerate(values):
            table[address + i] = int(v)


@dataclass
class _Endpoint:
    """One listening address (or serial port) and the devices (unit ids) behind it."""

    host: str
    port: int | str  # a TCP port, or the serial port the farm opens (for "rtu")
    transport: str = "tcp"  # "tcp", "rtu-over-tcp" or "rtu"
    line: tuple[int, int, str, int] = (9600, 8, "N", 1)  # serial: baudrate, bytesize, parity, stopbits
    units: dict[int, SimulatedDevice] = field(default_factory=dict)
    server: ModbusTcpServer | ModbusSerialServer | None = None

    def __str__(self) -> str:
        where = str(self.port) if self.transport == "rtu" else f"{self.host}:{self.port}"
        return f"{self.transport} {where}"

    def trace_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus' frame hook: corrupt the CRC of a device's RTU answers when a test asks for it."""
        if sending and self.transport != "tcp" and data:
            device = self.units.get(data[0])
            if device is not None and device.corrupt_crc_every:
                device.answers_sent += 1
                if device.answers_sent % device.corrupt_crc_every == 0:
                    return data[:-1] + bytes([data[-1] ^ 0xFF])
        return data

    def trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        """pymodbus' PDU hook: swallow requests to a device in dropout, swap in injected errors."""
        device = self.units.get(pdu.dev_id)
        if device is None:
            return pdu
        if not sending:
            return pdu if device.answers() else None  # None: the request is ignored, no response
        if device.exception_code is not None and not pdu.isError():
            return ExceptionResponse(pdu.function_code, device.exception_code, slave=pdu.dev_id,
                                     transaction=pdu.transaction_id)
        return pdu

    async def start(self) -> None:
        context = ModbusServerContext(slaves=dict(self.units), single=False)
        hooks = {"trace_pdu": self.trace_pdu, "trace_packet": self.trace_packet}
        server: ModbusTcpServer | ModbusSerialServer
        if self.transport == "rtu":
            baudrate, bytesize, parity, stopbits = self.line
            server = ModbusSerialServer(context, framer=FramerType.RTU, port=str(self.port), baudrate=baudrate,
                                        bytesize=bytesize, parity=parity, stopbits=stopbits, **hooks)  # type: ignore[arg-type]
        else:
            framer = FramerType.RTU if self.transport == "rtu-over-tcp" else FramerType.SOCKET
            server = ModbusTcpServer(context, framer=framer, address=(self.host, int(self.port)),
                                     **hooks)  # type: ignore[arg-type]
        await server.serve_forever(background=True)
        if not server.is_active():
            raise OSError(f"cannot serve Modbus on {self}")
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.shutdown()


class ModbusFarm:
    """Serves every Modbus device of ``registry``; ``scenarios`` maps ``ent/dev`` to a Scenario.

    Use as ``async with ModbusFarm(registry, {...}) as farm:``. Devices without an entry play
    ``default`` (steady). ``time_base`` returns the scenario time in seconds (default: seconds since
    the farm started); ``bind_host`` overrides every device's host for listening. Each endpoint is
    served in its device's transport: Modbus TCP, RTU frames over TCP, or RTU on a serial port;
    ``serial_peers`` maps a device's serial port to the one the farm opens (the other end of a
    pseudo-terminal pair or of a null-modem cable).
    """

    def __init__(
        self,
        registry: Registry,
        scenarios: dict[str, Scenario] | None = None,
        *,
        default: Scenario | None = None,
        time_base: Callable[[], float] | None = None,
        bind_host: str | None = None,
        serial_peers: dict[str, str] | None = None,
        refresh: float = 0.02,
        watch_every: float = 0.05,
    ) -> None:
        scenarios = dict(scenarios or {})
        default = default or Scenario("steady")
        known = {d.device_id for d in registry.devices_of("modbus")}
        unknown = sorted(set(scenarios) - known)
        if unknown:
            raise ValueError(f"scenarios for unknown Modbus devices: {', '.join(unknown)}")
        self._time_base = time_base
        self._t0: float | None = None
        self._watch_every = watch_every
        self._watcher: asyncio.Task[None] | None = None
        self.devices: dict[str, SimulatedDevice] = {}
        self.endpoints: dict[tuple[str, str, str], _Endpoint] = {}
        for info in registry.devices_of("modbus"):
            cfg = info.config
            assert isinstance(cfg, ModbusDevice)
            device = SimulatedDevice(info, registry.config.device_points(cfg),
                                     scenarios.get(info.device_id, default), self.elapsed, refresh)
            if cfg.transport == "rtu":  # the farm serves the other end of the line (a pty pair's peer)
                serial = (serial_peers or {}).get(str(cfg.port), str(cfg.port))
                new = _Endpoint("", serial, "rtu", (cfg.baudrate, cfg.bytesize, cfg.parity, cfg.stopbits))
            else:
                new = _Endpoint(bind_host or cfg.host or "127.0.0.1", int(cfg.port), cfg.transport)
            endpoint = self.endpoints.setdefault((new.transport, new.host, str(new.port)), new)
            if cfg.unit in endpoint.units:
                other = endpoint.units[cfg.unit].device_id
                raise ValueError(f"{info.device_id} and {other} are both unit {cfg.unit} at {endpoint}")
            endpoint.units[cfg.unit] = device
            self.devices[info.device_id] = device

    def elapsed(self) -> float:
        """Scenario time: seconds since the farm started, or what the injected time base says."""
        if self._time_base is not None:
            return self._time_base()
        if self._t0 is None:
            return 0.0
        return asyncio.get_running_loop().time() - self._t0

    def device(self, device_id: str) -> SimulatedDevice:
        try:
            return self.devices[device_id]
        except KeyError:
            raise KeyError(f"the farm serves no Modbus device {device_id!r}") from None

    def set_exception(self, device_id: str, code: int | None = ILLEGAL_ADDRESS) -> None:
        """Answer every request to a device with Modbus exception ``code`` (None: answer normally)."""
        self.device(device_id).exception_code = code

    def set_crc_error(self, device_id: str, every: int) -> None:
        """Corrupt the CRC of every ``every``-th RTU answer of a device (0: never)."""
        self.device(device_id).corrupt_crc_every = every

    def set_delay(self, device_id: str, seconds: float) -> None:
        """Delay every response of a device by ``seconds``."""
        self.device(device_id).delay = seconds

    async def __aenter__(self) -> ModbusFarm:
        self._t0 = asyncio.get_running_loop().time()
        try:
            for endpoint in self.endpoints.values():
                if self._endpoint_answers(endpoint):
                    await endpoint.start()
        except BaseException:
            await self._stop_all()
            raise
        if any(d.scenario.name == "dropout" for d in self.devices.values()):
            self._watcher = asyncio.create_task(self._watch_dropouts(), name="modbus-farm-dropouts")
        log.info("Modbus farm: %d devices on %d endpoints", len(self.devices), len(self.endpoints))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self._stop_all()

    async def _stop_all(self) -> None:
        for endpoint in self.endpoints.values():
            await endpoint.stop()

    def _endpoint_answers(self, endpoint: _Endpoint) -> bool:
        return any(d.answers() for d in endpoint.units.values())

    async def _watch_dropouts(self) -> None:
        """Close an endpoint while all its devices are in dropout, and open it again after."""
        while True:
            for endpoint in self.endpoints.values():
                wanted = self._endpoint_answers(endpoint)
                if wanted and endpoint.server is None:
                    log.info("Modbus farm: %s answers again", endpoint)
                    await endpoint.start()
                elif not wanted and endpoint.server is not None:
                    log.info("Modbus farm: %s stops answering (dropout)", endpoint)
                    await endpoint.stop()
            await asyncio.sleep(self._watch_every)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``gridgate sim modbus``."""
    parser.add_argument("-c", "--config", required=True, help="gridgate.toml with the Modbus devices")
    parser.add_argument("--scenario", choices=SCENARIOS, default="steady", help="what the devices play")
    parser.add_argument("--device", action="append", metavar="ENT/DEV",
                        help="play the scenario on this device only (repeatable; others stay steady)")
    parser.add_argument("--seed", type=int, default=1, help="noise seed (default 1)")
    parser.add_argument("--for", dest="duration", type=float, metavar="SECONDS",
                        help="stop after this many seconds (default: run until interrupted)")
    parser.add_argument("--bind", metavar="HOST", help="listen on HOST instead of each device's host")


async def run_cli(args: argparse.Namespace) -> None:
    """Run ``gridgate sim modbus`` until ``--for`` elapses or the task is cancelled."""
    registry = Registry(load_config(args.config))
    scenario = Scenario(args.scenario, seed=args.seed)
    chosen = args.device or [d.device_id for d in registry.devices_of("modbus")]
    farm = ModbusFarm(registry, dict.fromkeys(chosen, scenario), default=Scenario("steady", seed=args.seed),
                      bind_host=args.bind)
    async with farm:
        for endpoint in farm.endpoints.values():
            units = ", ".join(f"{u}={d.device_id}" for u, d in sorted(endpoint.units.items()))
            print(f"modbus {endpoint}  units {units}", flush=True)
        print(f"scenario {args.scenario} (seed {args.seed}) on {', '.join(chosen)}", flush=True)
        if args.duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(args.duration)
