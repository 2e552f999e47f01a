"""``[[devices]]`` (Modbus, on TCP or a serial line, and MQTT) and the ``[[links]]`` several Modbus
devices share."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from gateway.config.base import Int, Number, Slug, Strict, integer_only, shown
from gateway.config.points import Point


class _DeviceBase(Strict):
    enterprise: Slug
    id: Slug
    name: str | None = None
    points: list[Point] = []
    stale_after: Number | None = Field(None, gt=0)


Transport = Literal["tcp", "rtu-over-tcp", "rtu"]


def _port_value(value: object) -> object:
    """A port is a number (TCP) or a path (a serial port): never a float or a boolean."""
    return value if isinstance(value, str) else integer_only(value)


class _Endpoint(Strict):
    """Where Modbus requests go: ``host:port`` (Modbus TCP, or RTU frames over TCP), or a serial port."""

    transport: Transport = "tcp"
    host: str | None = None
    port: Annotated[int | str, BeforeValidator(_port_value)] = 502  # TCP port, or the serial port's path for "rtu"

    @model_validator(mode="after")
    def _endpoint(self) -> _Endpoint:
        if self.transport == "rtu":
            if not isinstance(self.port, str) or not self.port:
                raise ValueError('transport "rtu" needs port = the serial port, e.g. "/dev/ttyUSB0"')
            if self.host is not None:
                raise ValueError('transport "rtu" takes no host')
        elif not self.host or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            msg = f"{shown(self, 'transport')} needs host and a port number 1-65535"
            if isinstance(self.port, str):
                msg += f'; port {self.port!r} is a serial port, which needs transport = "rtu"'
            raise ValueError(msg)
        return self

    def link_key(self) -> tuple[str, str, str]:
        """Devices with equal keys share one connection."""
        return (self.transport, self.host or "", str(self.port))


class ModbusDevice(_DeviceBase, _Endpoint):
    protocol: Literal["modbus"]
    unit: Int = Field(1, ge=0, le=255)
    interval: Number = Field(1.0, gt=0)
    timeout: Number = Field(0.5, gt=0)
    # serial line ("rtu"): the same for every device on the port
    baudrate: Int = Field(9600, gt=0)
    bytesize: Annotated[Literal[7, 8], BeforeValidator(integer_only)] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Annotated[Literal[1, 2], BeforeValidator(integer_only)] = 1

    @model_validator(mode="after")
    def _timing(self) -> ModbusDevice:
        if not self.timeout < self.interval:
            raise ValueError(f"{shown(self, 'timeout')} must be below {shown(self, 'interval')}")
        return self


class ModbusLinkConfig(_Endpoint):
    """``[[links]]``: how the gateway uses one endpoint that several devices share (a serial device
    server, a serial port): ``connections`` at most (default 1) and a ``gap`` between requests."""

    connections: Int = Field(1, ge=1, le=8)
    gap: Number = Field(0.0, ge=0, le=10)


class MqttDevice(_DeviceBase):
    protocol: Literal["mqtt"]


Device = Annotated[ModbusDevice | MqttDevice, Field(discriminator="protocol")]
