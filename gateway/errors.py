"""The one exception tree of gridgate.

    GridgateError
    ├── ConfigError                 the configuration file is invalid (carries every problem)
    ├── RegistryError               an id that the registry does not know
    │   └── UnknownSensor
    ├── CollectorError              a collector could not talk to its peer
    │   ├── CollectorReadError      one read failed (cannot connect, connection lost, a bad frame)
    │   │   └── ModbusExceptionError  the device answered with a Modbus exception (has a `code`)
    │   └── CollectorTimeout        the peer did not answer in time
    ├── PayloadError                a message from a device that cannot be accepted (has a `reason`)
    ├── StoreError                  a store could not read or write
    │   └── SinkUnavailable         retryable: the sink is down, busy or misconfigured; keep the data
    └── AlarmError                  an alarm action that the lifecycle refuses
        └── UnknownAlarm

Third-party errors are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class GridgateError(Exception):
    """Base of every error gridgate raises on purpose."""


class ConfigError(GridgateError):
    """The configuration is invalid; ``problems`` holds ``(key path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))


class RegistryError(GridgateError):
    """An id that the registry does not know."""


class UnknownSensor(RegistryError):
    """A sensor id that is not configured."""


class CollectorError(GridgateError):
    """A collector could not talk to its peer."""


class CollectorReadError(CollectorError):
    """One read failed: cannot connect, the connection was lost, a bad frame, an exception response."""


class ModbusExceptionError(CollectorReadError):
    """The device answered a request with a Modbus exception response; ``code`` is its exception code."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


class CollectorTimeout(CollectorError):
    """The peer did not answer within the device's timeout."""


class PayloadError(GridgateError):
    """A device message that cannot be accepted; ``reason`` is a short counted code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class StoreError(GridgateError):
    """A store could not read or write."""


class SinkUnavailable(StoreError):
    """A sink cannot take writes now (down, 429/5xx, auth): the caller keeps the batch and retries.

    ``retry_after`` is the peer's own hint in seconds (HTTP ``Retry-After``), when it gave one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class AlarmError(GridgateError):
    """An alarm action that the lifecycle refuses."""


class UnknownAlarm(AlarmError):
    """An alarm id that does not exist (or is outside the caller's scope)."""
