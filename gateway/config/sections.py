"""The single sections of ``gridgate.toml`` (``[gateway]``, ``[mqtt]``, ``[storage]``, ``[api]``,
``[alarms]``), the ``[[notifiers]]`` and the ``[[users]]`` that seed the login accounts."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, IPvAnyNetwork, model_validator

from gateway.config.base import (
    MAX_HASH_MEMORY_KIB,
    MAX_HASH_TIME_COST,
    Int,
    Number,
    Slug,
    Strict,
    argon2_hash_ok,
    shown,
)
from gateway.duty import TimeZoneName, time_zone


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
    keepalive: Int = Field(30, ge=5, le=3600)
    max_payload: Int = Field(256 * 1024, ge=1024)
    max_clock_skew: Number = Field(300.0, gt=0)  # s: a telemetry ts further ahead is refused (ts_future)
    ca_file: str | None = None  # mqtts: the CA that signed the broker's certificate (default: the system's)
    cert_file: str | None = None  # mqtts: a client certificate, for a broker that requires one
    key_file: str | None = None  # its private key, unless it is in cert_file

    @model_validator(mode="after")
    def _url_and_tls(self) -> MqttSection:
        if not (self.url.startswith("mqtt://") or self.url.startswith("mqtts://")):
            raise ValueError(f"url must start with mqtt:// or mqtts://, not {self.url!r}")
        tls_keys = [k for k in ("ca_file", "cert_file", "key_file") if getattr(self, k) is not None]
        if tls_keys and not self.url.startswith("mqtts://"):
            raise ValueError(f"{', '.join(tls_keys)} need an mqtts:// url, not {shown(self, 'url')}")
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
    retention_days: Int = Field(30, ge=1)
    outbox_max_mb: Int = Field(1024, ge=1)
    influxdb: InfluxSection = InfluxSection()


class ApiSection(Strict):
    listen: str = "127.0.0.1:8000"
    token_ttl: Int | None = None  # replaced by access_ttl and refresh_ttl: refused with a message saying so
    access_ttl: Int = Field(15 * 60, ge=60, le=24 * 3600)  # seconds an access token is good for
    refresh_ttl: Int = Field(12 * 3600, ge=300, le=90 * 86400)  # seconds a refresh token (a session) lasts
    # argon2id parameters of new hashes (OWASP: 19 MiB, 2 passes, 1 lane); lower only for tests
    hash_memory_kib: Int = Field(19 * 1024, ge=1024, le=MAX_HASH_MEMORY_KIB)
    hash_time_cost: Int = Field(2, ge=1, le=MAX_HASH_TIME_COST)
    login_workers: Int = Field(1, ge=1, le=8)  # threads doing argon2 (a core each while busy); memory: x a hash
    login_queue: Int = Field(8, ge=0, le=256)  # logins waiting for a worker; one more is a 503 at once
    lock_after: Int = Field(20, ge=5, le=1000)  # failed logins of one username before it is locked
    lock_seconds: Int = Field(900, ge=10, le=86400)  # how long a lock lasts, and failures are remembered
    reports_per_hour: Int = Field(10, ge=1)  # public hazard reports accepted per client address
    max_body: Int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)  # bytes; a larger request body is a 413
    max_import: Int = Field(16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)  # bytes: a register import's body
    # proxies whose X-Forwarded-For is believed (CIDRs); from any other peer the header is ignored
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    metrics_token: str | None = Field(None, min_length=16)  # bearer token of /metrics; unset: an admin login

    @model_validator(mode="after")
    def _listen(self) -> ApiSection:
        if self.token_ttl is not None:
            raise ValueError("token_ttl is replaced by access_ttl (default 900 s) and refresh_ttl (default 12 h)")
        if self.refresh_ttl <= self.access_ttl:
            raise ValueError(f"refresh_ttl must be longer than access_ttl: {shown(self, 'refresh_ttl')}, "
                             f"{shown(self, 'access_ttl')}")
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
    high_high: Number = Field(300, gt=0)
    high: Number = Field(900, gt=0)
    other: Number = Field(3600, gt=0)


class FloodSection(Strict):
    """An alarm flood (EEMUA 191): more than ``alarms`` new alarms in ``window`` seconds in one grid."""

    alarms: Int = Field(10, ge=1)
    window: Number = Field(600, gt=0)


class ChatterSection(Strict):
    """A chattering alarm: ``cycles`` raise/clear cycles or more within ``window`` seconds."""

    cycles: Int = Field(3, ge=2)
    window: Number = Field(60, gt=0)


class ReportsSection(Strict):
    """Public hazard reports' own limits, beside ``[api] reports_per_hour`` per client address.

    A place (an enterprise, or a grid for a report naming no enterprise) has at most one open
    report alarm: further reports about it add to its count. A grid opens at most ``per_grid``
    report alarms within ``window`` seconds; past that, reports go to the grid's own report alarm.
    """

    per_grid: Int = Field(5, ge=1)
    window: Number = Field(3600, gt=0)


class AlarmsSection(Strict):
    escalate_after: EscalateAfter = EscalateAfter()
    max_shelve: Number = Field(8 * 3600, gt=0, le=7 * 86400)  # the longest shelf, seconds
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
    timeout: Number = Field(5.0, gt=0, le=60)
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

