"""Strict, frozen pydantic models of ``gridgate.toml`` and the cross-checks between its sections.

Every model forbids unknown keys, so a misspelt key fails at load and names its path. The package:
``base`` (the strict base model, ids, the argon2 hash bound), ``sections`` (``[gateway]``,
``[mqtt]``, ``[storage]``, ``[api]``, ``[alarms]``, notifiers, users), ``site`` (departments,
officers, grids, enterprises), ``points``, ``devices`` (and links), ``document`` (the whole file's
model), ``references`` (the checks that span sections), ``report`` (key paths and messages) and
``validate`` (one pass over a file, one item against a configuration, loading). Import from here:
``from gateway.config import Config``.
"""

from gateway.config.base import (
    ARGON2_HASH,
    MAX_HASH_MEMORY_KIB,
    MAX_HASH_TIME_COST,
    RESERVED_ENTERPRISES,
    Int,
    Number,
    Slug,
    Strict,
    argon2_hash_ok,
)
from gateway.config.devices import Device, ModbusDevice, ModbusLinkConfig, MqttDevice, Transport
from gateway.config.document import Config
from gateway.config.points import REGISTER_COUNT, ByteOrder, DType, Point, PointKind, RegisterType, _frozen
from gateway.config.sections import (
    AlarmsSection,
    ApiSection,
    ChatterSection,
    EscalateAfter,
    FloodSection,
    GatewaySection,
    InfluxSection,
    MqttSection,
    NotifierConfig,
    ReportsSection,
    StorageSection,
    User,
    WebhookNotifierConfig,
)
from gateway.config.site import Department, Enterprise, Grid, Officer
from gateway.config.validate import check_item, load_config, parse_config

__all__ = [
    "ARGON2_HASH", "MAX_HASH_MEMORY_KIB", "MAX_HASH_TIME_COST", "REGISTER_COUNT", "RESERVED_ENTERPRISES",
    "AlarmsSection", "ApiSection", "ByteOrder", "ChatterSection", "Config", "DType", "Department", "Device",
    "Enterprise", "EscalateAfter", "FloodSection", "GatewaySection", "Grid", "InfluxSection", "Int", "ModbusDevice",
    "ModbusLinkConfig", "MqttDevice", "MqttSection", "NotifierConfig", "Number", "Officer", "Point", "PointKind",
    "RegisterType", "ReportsSection", "Slug", "StorageSection", "Strict", "Transport", "User",
    "WebhookNotifierConfig", "_frozen", "argon2_hash_ok", "check_item", "load_config", "parse_config",
]
