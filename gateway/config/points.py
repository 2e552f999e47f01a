"""A measuring point (``[[devices.points]]`` or a top-level ``[[points]]``): its kind, unit, alarm
limits checked against GB/T 50493-2019, and its Modbus addressing."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, ModelWrapValidatorHandler, ValidationInfo, model_validator

from gateway.config.base import Int, Number, Slug, Strict
from gateway.standards import DEFAULT_RANGES, LIMIT_KEYS, looser_than_standard, standard_limits

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
    range_low: Number | None = None
    range_high: Number | None = None
    low_low: Number | None = None
    low: Number | None = None
    high: Number | None = None
    high_high: Number | None = None
    deadband: Number = Field(0.0, ge=0)
    on_delay: Number = Field(0.0, ge=0)
    off_delay: Number = Field(0.0, ge=0)
    alarm_mask: Int | None = Field(None, ge=1, le=0xFFFF_FFFF)  # status: bits that mean fault/trip
    # "4-20mA": the collector delivers the loop current (after scale/offset); the intake converts it
    # to engineering units over the measuring range (NAMUR NE 43).
    signal: Literal["value", "4-20mA"] = "value"
    rate_of_change: Number | None = Field(None, gt=0)  # units per minute: alarm on a faster rise
    rate_window: Number = Field(60.0, gt=0, le=3600)  # seconds the rise is measured over
    # A status point of the same device; while it reads 0 (the unit is stopped) this point's
    # alarms are suppressed by design (ISA-18.2), and return by their condition when it runs again.
    suppressed_by: Slug | None = None
    # Modbus addressing (ignored for MQTT devices, required for Modbus ones)
    register_type: RegisterType | None = Field(None, alias="register")
    address: Int | None = Field(None, ge=0, le=65535)
    dtype: DType | None = None
    order: ByteOrder = "ABCD"
    bit: Int | None = Field(None, ge=0, le=15)
    count: Int | None = Field(None, ge=1, le=4)
    scale: Number = 1.0
    offset: Number = 0.0
    # Only in top-level [[points]]: the device the point belongs to.
    enterprise: Slug | None = None
    device: Slug | None = None

    @model_validator(mode="after")
    def _check(self) -> Point:
        if self.kind == "toxic_gas" and self.gas is not None:
            if self.unit not in ("ppm", "mg/m3", "mg/m³"):
                given = f"not {self.unit!r}" if "unit" in self.model_fields_set else "unit is not set"
                raise ValueError(f"toxic gas {self.gas} needs unit ppm or mg/m³, {given}")
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
            raise ValueError(f"{self._value('range_low', lo)} must be below {self._value('range_high', hi)}")
        self._check_signal(lo, hi)
        limits = self.effective_limits()
        problems = looser_than_standard(self.kind, self._explicit_limits(), self.standard())
        ordered = [(k, limits[k]) for k in LIMIT_KEYS if k in limits]
        for (ka, va), (kb, vb) in zip(ordered, ordered[1:], strict=False):
            if not va < vb:
                problems.append(f"limits out of order: {self._value(ka, va)} must be below {self._value(kb, vb)}")
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

    def _value(self, key: str, value: float) -> str:
        """``key (value)``, saying so when the value is the kind's default rather than the user's."""
        if getattr(self, key) is not None:
            return f"{key} ({value:g})"
        return f"{key} ({value:g}, the default for {self.kind})"

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
