"""Strict, frozen pydantic models of ``gridgate.toml`` and the cross-checks between its sections.

Every model forbids unknown keys, so a misspelt key fails at load and names its path. Checks that
span sections (a grid that does not exist, duplicate ids, a gas limit looser than the standard)
are collected in one pass, so ``gridgate check`` can print every problem at once.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from gateway.duty import DutyEntry, TimeZoneName, time_zone
from gateway.errors import ConfigError
from gateway.standards import (
    DEFAULT_RANGES,
    LIMIT_KEYS,
    looser_than_standard,
    standard_limits,
)

Slug = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
# A login's argon2 hash: the cost is bounded, since every login (and every unknown name) pays it.
ARGON2_HASH = re.compile(r"^\$argon2(?:id|i|d)\$v=\d+\$m=(\d{1,9}),t=(\d{1,4}),p=(\d{1,3})"
                         r"\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")
MAX_HASH_MEMORY_KIB = 256 * 1024
MAX_HASH_TIME_COST = 16


def argon2_hash_ok(password_hash: str) -> bool:
    """Whether ``password_hash`` is an argon2 hash within the bounds a login may cost."""
    m = ARGON2_HASH.match(password_hash)
    return m is not None and int(m[1]) <= MAX_HASH_MEMORY_KIB and int(m[2]) <= MAX_HASH_TIME_COST \
        and 1 <= int(m[3]) <= 16
RESERVED_ENTERPRISES = frozenset({"alarms", "officers"})

PointKind = Literal[
    "combustible_gas",
    "toxic_gas",
    "oxygen",
    "temperature",
    "pressure",
    "level",
    "flow",
    "vibration",
    "current",
    "status",
]
RegisterType = Literal["holding", "input", "coil", "discrete"]
DType = Literal["int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64", "bool"]
ByteOrder = Literal["ABCD", "DCBA", "BADC", "CDAB"]

REGISTER_COUNT: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "bool": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GatewaySection(Strict):
    id: Slug = "gridgate"
    data_dir: str = "data"
    timezone: TimeZoneName = "Asia/Shanghai"  # IANA name; officers' duty schedules are read in it

    @property
    def tzinfo(self) -> ZoneInfo:
        return time_zone(self.timezone)


class MqttSection(Strict):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    prefix: str = "gridgate/v1"
    client_id: str | None = None  # default: "gridgate-{gateway.id}"
    keepalive: int = Field(30, ge=5, le=3600)
    max_payload: int = Field(256 * 1024, ge=1024)
    max_clock_skew: float = Field(300.0, gt=0)  # s: a telemetry ts further ahead is refused (ts_future)
    ca_file: str | None = None  # mqtts: the CA that signed the broker's certificate (default: the system's)
    cert_file: str | None = None  # mqtts: a client certificate, for a broker that requires one
    key_file: str | None = None  # its private key, unless it is in cert_file

    @model_validator(mode="after")
    def _url_and_tls(self) -> MqttSection:
        if not (self.url.startswith("mqtt://") or self.url.startswith("mqtts://")):
            raise ValueError(f"url must start with mqtt:// or mqtts://, not {self.url!r}")
        tls_keys = [k for k in ("ca_file", "cert_file", "key_file") if getattr(self, k) is not None]
        if tls_keys and not self.url.startswith("mqtts://"):
            raise ValueError(f"{', '.join(tls_keys)} need an mqtts:// url")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self


class InfluxSection(Strict):
    url: str = "http://127.0.0.1:8086"
    api: Literal["v1", "v2"] = "v2"
    org: str = ""
    bucket: str = "sensors"
    token: str = ""


class StorageSection(Strict):
    backend: Literal["sqlite", "influxdb"] = "sqlite"
    retention_days: int = Field(30, ge=1)
    outbox_max_mb: int = Field(1024, ge=1)
    influxdb: InfluxSection = InfluxSection()


class ApiSection(Strict):
    listen: str = "127.0.0.1:8000"
    token_ttl: int | None = None  # replaced by access_ttl and refresh_ttl: refused with a message saying so
    access_ttl: int = Field(15 * 60, ge=60, le=24 * 3600)  # seconds an access token is good for
    refresh_ttl: int = Field(12 * 3600, ge=300, le=90 * 86400)  # seconds a refresh token (a session) lasts
    # argon2id parameters of new hashes (OWASP: 19 MiB, 2 passes, 1 lane); lower only for tests
    hash_memory_kib: int = Field(19 * 1024, ge=1024, le=MAX_HASH_MEMORY_KIB)
    hash_time_cost: int = Field(2, ge=1, le=MAX_HASH_TIME_COST)
    login_workers: int = Field(1, ge=1, le=8)  # threads doing argon2 (a core each while busy); memory: x a hash
    login_queue: int = Field(8, ge=0, le=256)  # logins waiting for a worker; one more is a 503 at once
    lock_after: int = Field(20, ge=5, le=1000)  # failed logins of one username before it is locked
    lock_seconds: int = Field(900, ge=10, le=86400)  # how long a lock lasts, and failures are remembered
    reports_per_hour: int = Field(10, ge=1)  # public hazard reports accepted per client address
    max_body: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)  # bytes; a larger request body is a 413
    # proxies whose X-Forwarded-For is believed (CIDRs); from any other peer the header is ignored
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    metrics_token: str | None = Field(None, min_length=16)  # bearer token of /metrics; unset: an admin login

    @model_validator(mode="after")
    def _listen(self) -> ApiSection:
        if self.token_ttl is not None:
            raise ValueError("token_ttl is replaced by access_ttl (default 900 s) and refresh_ttl (default 12 h)")
        if self.refresh_ttl <= self.access_ttl:
            raise ValueError("refresh_ttl must be longer than access_ttl")
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen must be host:port, not {self.listen!r}")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class EscalateAfter(Strict):
    high_high: float = Field(300, gt=0)
    high: float = Field(900, gt=0)
    other: float = Field(3600, gt=0)


class FloodSection(Strict):
    """An alarm flood (EEMUA 191): more than ``alarms`` new alarms in ``window`` seconds in one grid."""

    alarms: int = Field(10, ge=1)
    window: float = Field(600, gt=0)


class ChatterSection(Strict):
    """A chattering alarm: ``cycles`` raise/clear cycles or more within ``window`` seconds."""

    cycles: int = Field(3, ge=2)
    window: float = Field(60, gt=0)


class ReportsSection(Strict):
    """Public hazard reports' own limits, beside ``[api] reports_per_hour`` per client address.

    A place (an enterprise, or a grid for a report naming no enterprise) has at most one open
    report alarm: further reports about it add to its count. A grid opens at most ``per_grid``
    report alarms within ``window`` seconds; past that, reports go to the grid's own report alarm.
    """

    per_grid: int = Field(5, ge=1)
    window: float = Field(3600, gt=0)


class AlarmsSection(Strict):
    escalate_after: EscalateAfter = EscalateAfter()
    max_shelve: float = Field(8 * 3600, gt=0, le=7 * 86400)  # the longest shelf, seconds
    flood: FloodSection = FloodSection()
    chatter: ChatterSection = ChatterSection()
    reports: ReportsSection = ReportsSection()


class WebhookNotifierConfig(Strict):
    """A webhook that receives every alarm event (of ``grids``, or of all when empty)."""

    type: Literal["webhook"]
    name: Slug
    url: str = Field(pattern=r"^https?://")
    format: Literal["json", "dingtalk", "wecom"] = "json"
    secret: str | None = None  # json: HMAC-SHA256 key; dingtalk: the robot's signing secret
    timeout: float = Field(5.0, gt=0, le=60)
    grids: list[Slug] = []


# One member today; more notifier types join this union on ``type``.
NotifierConfig = WebhookNotifierConfig


class User(Strict):
    username: Slug
    password_hash: str
    role: Literal["admin", "supervisor", "department", "officer", "enterprise"]
    officer: Slug | None = None
    department: Slug | None = None
    enterprise: Slug | None = None
    area: str | None = Field(None, pattern=r"^[0-9]{2,12}$")

    @model_validator(mode="after")
    def _acts_as(self) -> User:
        if not argon2_hash_ok(self.password_hash):
            raise ValueError(f"password_hash must be an argon2 hash (gridgate hash-password) of at most "
                             f"{MAX_HASH_MEMORY_KIB // 1024} MiB and {MAX_HASH_TIME_COST} passes")
        needs = {"officer": "officer", "department": "department", "enterprise": "enterprise",
                 "supervisor": "area"}
        key = needs.get(self.role)
        if key is not None and getattr(self, key) is None:
            raise ValueError(f"role {self.role!r} needs {key!r}: the {key} this login acts as")
        return self


class Department(Strict):
    id: Slug
    name: str


class Officer(Strict):
    id: Slug
    name: str
    phone: str | None = None
    duty: list[DutyEntry] = []  # e.g. "mon-fri 08:00-18:00" (grammar: gateway/duty.py); none: always on duty


class Grid(Strict):
    id: Slug
    name: str
    area: str = Field(pattern=r"^[0-9]{2,12}$")
    officers: list[Slug] = Field(min_length=1)
    responsible: Slug | None = None
    contact: Slug | None = None


class Enterprise(Strict):
    id: Slug
    name: str
    grid: Slug
    lead_department: Slug
    cooperating_departments: list[Slug] = []
    risk_class: str | None = None


def _frozen(value: Any) -> Any:
    """A hashable copy of a TOML value that keeps each scalar's type (``1``, ``1.0`` and ``true``
    compare equal in Python, but do not validate alike)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", *(_frozen(v) for v in value))
    return (type(value).__name__, value)


class Point(Strict):
    key: Slug
    kind: PointKind
    unit: str = ""
    name: str | None = None
    gas: Literal["h2s", "co", "nh3", "cl2", "benzene"] | None = None
    range_low: float | None = None
    range_high: float | None = None
    low_low: float | None = None
    low: float | None = None
    high: float | None = None
    high_high: float | None = None
    deadband: float = Field(0.0, ge=0)
    on_delay: float = Field(0.0, ge=0)
    off_delay: float = Field(0.0, ge=0)
    alarm_mask: int | None = Field(None, ge=1, le=0xFFFF_FFFF)  # status: bits that mean fault/trip
    # "4-20mA": the collector delivers the loop current (after scale/offset); the intake converts it
    # to engineering units over the measuring range (NAMUR NE 43).
    signal: Literal["value", "4-20mA"] = "value"
    rate_of_change: float | None = Field(None, gt=0)  # units per minute: alarm on a faster rise
    rate_window: float = Field(60.0, gt=0, le=3600)  # seconds the rise is measured over
    # A status point of the same device; while it reads 0 (the unit is stopped) this point's
    # alarms are suppressed by design (ISA-18.2), and return by their condition when it runs again.
    suppressed_by: Slug | None = None
    # Modbus addressing (ignored for MQTT devices, required for Modbus ones)
    register_type: RegisterType | None = Field(None, alias="register")
    address: int | None = Field(None, ge=0, le=65535)
    dtype: DType | None = None
    order: ByteOrder = "ABCD"
    bit: int | None = Field(None, ge=0, le=15)
    count: int | None = Field(None, ge=1, le=4)
    scale: float = 1.0
    offset: float = 0.0
    # Only in top-level [[points]]: the device the point belongs to.
    enterprise: Slug | None = None
    device: Slug | None = None

    @model_validator(mode="after")
    def _check(self) -> Point:
        if self.kind == "toxic_gas" and self.gas is not None:
            if self.unit not in ("ppm", "mg/m3", "mg/m³"):
                raise ValueError(f"toxic gas {self.gas} needs unit ppm or mg/m³, not {self.unit!r}")
        elif self.gas is not None:
            raise ValueError("gas is only for kind = 'toxic_gas'")
        if self.kind == "combustible_gas" and self.unit not in ("%LEL", ""):
            raise ValueError(f"combustible_gas is measured in %LEL, not {self.unit!r}")
        if self.kind == "oxygen" and self.unit not in ("%VOL", "%vol", ""):
            raise ValueError(f"oxygen is measured in %VOL, not {self.unit!r}")
        if self.alarm_mask is not None and self.kind != "status":
            raise ValueError("alarm_mask is only for kind = 'status'")
        lo, hi = self.effective_range()
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"range_low ({lo:g}) must be below range_high ({hi:g})")
        self._check_signal(lo, hi)
        limits = self.effective_limits()
        problems = looser_than_standard(self.kind, self._explicit_limits(), self.standard())
        ordered = [(k, limits[k]) for k in LIMIT_KEYS if k in limits]
        for (ka, va), (kb, vb) in zip(ordered, ordered[1:], strict=False):
            if not va < vb:
                problems.append(f"limits out of order: {ka} ({va:g}) must be below {kb} ({vb:g})")
        problems += [f"{k} must be a finite number" for k, v in limits.items() if not math.isfinite(v)]
        if problems:
            raise ValueError("; ".join(problems))
        self._check_modbus_shape()
        return self

    def _check_signal(self, lo: float | None, hi: float | None) -> None:
        if self.signal == "4-20mA":
            if self.kind == "status":
                raise ValueError("signal = '4-20mA' is not for kind = 'status'")
            if lo is None or hi is None:
                raise ValueError(f"signal = '4-20mA' needs a measuring range to scale the loop current: "
                                 f"set range_low and range_high (kind {self.kind} has no default range)")
        if self.rate_of_change is not None and self.kind == "status":
            raise ValueError("rate_of_change is not for kind = 'status'")

    def _check_modbus_shape(self) -> None:
        if self.register_type is None:
            if self.address is not None or self.dtype is not None or self.bit is not None:
                raise ValueError("address, dtype and bit need register")
            return
        if self.address is None:
            raise ValueError("a Modbus point needs address")
        dtype = self.dtype or ("bool" if self.register_type in ("coil", "discrete") else None)
        if dtype is None:
            raise ValueError(f"a {self.register_type} register point needs dtype")
        if self.register_type in ("coil", "discrete"):
            if dtype != "bool":
                raise ValueError(f"a {self.register_type} holds one bit: dtype must be bool, not {dtype}")
            if self.bit is not None:
                raise ValueError(f"bit is for a bit of a register word, not for a {self.register_type}")
        elif dtype == "bool" and self.bit is None:
            raise ValueError(f"dtype bool on a {self.register_type} register needs bit (0-15)")
        elif self.bit is not None and dtype not in ("bool",):
            raise ValueError("bit needs dtype = 'bool'")
        needed = REGISTER_COUNT[dtype] if self.register_type in ("holding", "input") else 1
        if self.count is not None and self.count != needed:
            raise ValueError(f"dtype {dtype} takes {needed} register(s), not count = {self.count}")
        if self.address + needed > 65536:
            raise ValueError(f"address {self.address} + {needed} registers runs past 65535")

    @property
    def modbus_dtype(self) -> str:
        return self.dtype or "bool"

    def standard(self) -> dict[str, float]:
        return standard_limits(self.kind, self.unit, self.gas)

    def _explicit_limits(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in LIMIT_KEYS if getattr(self, k) is not None}

    def effective_limits(self) -> dict[str, float]:
        """The point's limits: the standard's defaults, overridden by the explicit ones."""
        limits = dict(self.standard())
        limits.update(self._explicit_limits())
        if self.kind == "status" and self.alarm_mask is not None:
            limits.setdefault("high", 0.5)
        return limits

    def effective_range(self) -> tuple[float | None, float | None]:
        lo, hi = DEFAULT_RANGES.get(self.kind, (None, None))
        return (
            self.range_low if self.range_low is not None else lo,
            self.range_high if self.range_high is not None else hi,
        )



    @model_validator(mode="wrap")
    @classmethod
    def _shared(cls, data: Any, handler: ModelWrapValidatorHandler[Point], info: ValidationInfo) -> Point:
        """Equal point tables (devices of one model: 1,000 gas detectors with the same 30 registers)
        share one frozen Point: 30,000 points that are 30 different ones cost 30 objects, not 30,000
        (49 MB). Only within one :func:`parse_config`, and only when the input is equal type for
        type, so a value one table may not have (``1.0`` where an integer is meant) is never taken
        for another's."""
        memo = info.context.get("points") if isinstance(info.context, dict) else None
        if memo is None or not isinstance(data, dict):
            return handler(data)
        try:
            key = _frozen(data)
            found = memo.get(key)
        except TypeError:  # something unhashable: validate it on its own
            return handler(data)
        if found is None:
            found = memo[key] = handler(data)
        return found

class _DeviceBase(Strict):
    enterprise: Slug
    id: Slug
    name: str | None = None
    points: list[Point] = []
    stale_after: float | None = Field(None, gt=0)


Transport = Literal["tcp", "rtu-over-tcp", "rtu"]


class _Endpoint(Strict):
    """Where Modbus requests go: ``host:port`` (Modbus TCP, or RTU frames over TCP), or a serial port."""

    transport: Transport = "tcp"
    host: str | None = None
    port: int | str = 502  # TCP port, or the serial port's path for "rtu"

    @model_validator(mode="after")
    def _endpoint(self) -> _Endpoint:
        if self.transport == "rtu":
            if not isinstance(self.port, str) or not self.port:
                raise ValueError('transport "rtu" needs port = the serial port, e.g. "/dev/ttyUSB0"')
            if self.host is not None:
                raise ValueError('transport "rtu" takes no host')
        elif not self.host or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f'transport "{self.transport}" needs host and a port number 1-65535')
        return self

    def link_key(self) -> tuple[str, str, str]:
        """Devices with equal keys share one connection."""
        return (self.transport, self.host or "", str(self.port))


class ModbusDevice(_DeviceBase, _Endpoint):
    protocol: Literal["modbus"]
    unit: int = Field(1, ge=0, le=255)
    interval: float = Field(1.0, gt=0)
    timeout: float = Field(0.5, gt=0)
    # serial line ("rtu"): the same for every device on the port
    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    @model_validator(mode="after")
    def _timing(self) -> ModbusDevice:
        if not self.timeout < self.interval:
            raise ValueError(f"timeout ({self.timeout:g}) must be below interval ({self.interval:g})")
        return self


class ModbusLinkConfig(_Endpoint):
    """``[[links]]``: how the gateway uses one endpoint that several devices share (a serial device
    server, a serial port): ``connections`` at most (default 1) and a ``gap`` between requests."""

    connections: int = Field(1, ge=1, le=8)
    gap: float = Field(0.0, ge=0, le=10)


class MqttDevice(_DeviceBase):
    protocol: Literal["mqtt"]


Device = Annotated[ModbusDevice | MqttDevice, Field(discriminator="protocol")]


class Config(Strict):
    gateway: GatewaySection = GatewaySection()
    mqtt: MqttSection = MqttSection()
    storage: StorageSection = StorageSection()
    api: ApiSection = ApiSection()
    alarms: AlarmsSection = AlarmsSection()
    users: list[User] = []
    departments: list[Department] = []
    officers: list[Officer] = []
    grids: list[Grid] = []
    enterprises: list[Enterprise] = []
    devices: list[Device] = []
    points: list[Point] = []  # top-level points name their enterprise and device
    notifiers: list[NotifierConfig] = []
    links: list[ModbusLinkConfig] = []

    def device_points(self, device: ModbusDevice | MqttDevice) -> list[Point]:
        """A device's points: those nested under it and the top-level ones that name it."""
        extra = [p for p in self.points if p.enterprise == device.enterprise and p.device == device.id]
        return list(device.points) + extra


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and loc[i - 1] != "points" and part in ("modbus", "mqtt") and isinstance(loc[i - 1], int):
            continue  # the discriminated union's tag adds nothing to the path
        elif part.startswith("function-"):
            continue
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _link_problems(cfg: Config) -> list[tuple[str, str]]:
    """Every ``[[links]]`` entry names an endpoint some device uses; devices on one serial port agree
    on its line settings."""
    problems: list[tuple[str, str]] = []
    modbus = [(i, d) for i, d in enumerate(cfg.devices) if isinstance(d, ModbusDevice)]
    used = {d.link_key() for _, d in modbus}
    seen: set[tuple[str, str, str]] = set()
    for i, lk in enumerate(cfg.links):
        if lk.link_key() not in used:
            problems.append((f"links[{i}]", f"no Modbus device uses {lk.transport} {lk.host or ''}:{lk.port}"))
        elif lk.link_key() in seen:
            problems.append((f"links[{i}]", "a second entry for the same endpoint"))
        seen.add(lk.link_key())
    line: dict[str, tuple[int, int, str, int]] = {}
    for i, d in modbus:
        if d.transport == "rtu":
            settings = (d.baudrate, d.bytesize, d.parity, d.stopbits)
            first = line.setdefault(str(d.port), settings)
            if settings != first:
                problems.append((f"devices[{i}]", f"serial settings differ from another device on {d.port}"))
    return problems


def cross_check(cfg: Config) -> list[tuple[str, str]]:
    """Every problem that spans sections, as ``(key path, message)``."""
    problems: list[tuple[str, str]] = []

    def dupes(section: str, ids: list[str]) -> set[str]:
        seen: set[str] = set()
        bad: set[str] = set()
        for i, ident in enumerate(ids):
            if ident in seen:
                problems.append((f"{section}[{i}].id", f"duplicate id {ident!r}"))
                bad.add(ident)
            seen.add(ident)
        return seen

    officers = dupes("officers", [o.id for o in cfg.officers])
    departments = dupes("departments", [d.id for d in cfg.departments])
    grids = dupes("grids", [g.id for g in cfg.grids])
    enterprises = dupes("enterprises", [e.id for e in cfg.enterprises])
    dupes("users", [u.username for u in cfg.users])
    names = [n.name for n in cfg.notifiers]
    for i, name in enumerate(names):
        if name in names[:i] or name == "mqtt":
            problems.append((f"notifiers[{i}].name", f"duplicate or reserved notifier name {name!r}"))
        for j, g in enumerate(cfg.notifiers[i].grids):
            if g not in {gr.id for gr in cfg.grids}:
                problems.append((f"notifiers[{i}].grids[{j}]", f"grid {g!r} does not exist"))
    for i, g in enumerate(cfg.grids):
        for j, o in enumerate(g.officers):
            if o not in officers:
                problems.append((f"grids[{i}].officers[{j}]", f"officer {o!r} does not exist"))
        for key in ("responsible", "contact"):
            ref = getattr(g, key)
            if ref is not None and ref not in officers:
                problems.append((f"grids[{i}].{key}", f"officer {ref!r} does not exist"))
    for i, e in enumerate(cfg.enterprises):
        if e.id in RESERVED_ENTERPRISES:
            problems.append((f"enterprises[{i}].id", f"{e.id!r} is reserved (MQTT alarm topics)"))
        if e.grid not in grids:
            problems.append((f"enterprises[{i}].grid", f"grid {e.grid!r} does not exist"))
        for j, d in enumerate([e.lead_department, *e.cooperating_departments]):
            key = "lead_department" if j == 0 else f"cooperating_departments[{j - 1}]"
            if d not in departments:
                problems.append((f"enterprises[{i}].{key}", f"department {d!r} does not exist"))
    device_owner: dict[str, list[str]] = {}
    seen_devices: set[tuple[str, str]] = set()
    for i, d in enumerate(cfg.devices):
        if d.enterprise not in enterprises:
            problems.append((f"devices[{i}].enterprise", f"enterprise {d.enterprise!r} does not exist"))
        if (d.enterprise, d.id) in seen_devices:
            problems.append((f"devices[{i}].id", f"duplicate device {d.enterprise}/{d.id}"))
        seen_devices.add((d.enterprise, d.id))
        device_owner.setdefault(d.id, []).append(d.enterprise)
        keys: set[str] = set()
        kinds = {p.key: p.kind for p in cfg.device_points(d)}
        for j, p in enumerate(cfg.device_points(d)):
            if p.suppressed_by is not None:
                where = f"devices[{i}].points[{j}]" if j < len(d.points) else "points"
                if kinds.get(p.suppressed_by) != "status" or p.suppressed_by == p.key:
                    problems.append((f"{where}.suppressed_by", f"suppressed_by must name another status point"
                                     f" of {d.enterprise}/{d.id}, not {p.suppressed_by!r}"))
        for j, p in enumerate(cfg.device_points(d)):
            where = f"devices[{i}].points[{j}]" if j < len(d.points) else "points"
            if p.key in keys:
                problems.append((f"{where}.key", f"duplicate point {d.enterprise}/{d.id}/{p.key}"))
            keys.add(p.key)
            if isinstance(d, ModbusDevice) and p.register_type is None:
                problems.append((where, f"point {p.key!r} of Modbus device {d.id!r} needs register"))
            if j < len(d.points) and (p.enterprise is not None or p.device is not None):
                if (p.enterprise or d.enterprise) != d.enterprise or (p.device or d.id) != d.id:
                    msg = f"point {p.key!r} names another device than {d.enterprise}/{d.id}"
                    problems.append((where, msg))
    for i, p in enumerate(cfg.points):
        if p.enterprise is None or p.device is None:
            problems.append((f"points[{i}]", "a top-level point needs enterprise and device"))
        elif (p.enterprise, p.device) not in seen_devices:
            owners = device_owner.get(p.device)
            if owners:
                problems.append(
                    (f"points[{i}].device", f"device {p.device!r} belongs to enterprise "
                     f"{', '.join(sorted(set(owners)))}, not {p.enterprise!r}")
                )
            else:
                problems.append((f"points[{i}].device", f"device {p.enterprise}/{p.device} does not exist"))
    problems += _link_problems(cfg)
    for i, u in enumerate(cfg.users):
        refs = {"officer": officers, "department": departments, "enterprise": enterprises}
        for key, known in refs.items():
            ref = getattr(u, key)
            if ref is not None and ref not in known:
                problems.append((f"users[{i}].{key}", f"{key} {ref!r} does not exist"))
    return problems


def parse_config(data: dict) -> Config:
    """Validate a parsed TOML document; raise ConfigError with every problem found."""
    try:
        cfg = Config.model_validate(data, context={"points": {}})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append((_loc(err["loc"]), msg))
        raise ConfigError(problems) from exc
    problems = cross_check(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | Path) -> Config:
    """Read and validate a ``gridgate.toml``."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(file)", f"not valid TOML: {exc}")]) from exc
    except OSError as exc:
        raise ConfigError([("(file)", f"cannot read {path}: {exc.strerror}")]) from exc
    return parse_config(data)
