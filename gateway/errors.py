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
    ├── AlarmError                  an alarm action that the lifecycle refuses
    │   └── UnknownAlarm
    ├── (gateway/register) EditRefused     a registry change refused before validation (its HTTP `status`)
    │                      VersionConflict the registry database moved on since the change was planned (409)
    │                      ReloadRefused   a configuration reload that cannot be applied completely
    │                      TableError      a register file's problems, by row and column (422)
    └── AccountError                a login account change the rules refuse (409)
        ├── UnknownAccount          a username that does not exist (or is outside the caller's area)
        ├── InvalidAccount          an account that names something the registry lacks (422)
        ├── AccountForbidden        a change the caller's role may not make (403)
        ├── TokenError              a token that is malformed, forged, expired or revoked (401)
        └── LoginRefused            a login turned away before any password work (has `retry_after`)
            ├── LoginThrottled      too many failures for this name or address (429)
            └── HasherBusy          every password worker and queue slot is taken (503)

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


class AccountError(GridgateError):
    """A login account change the rules refuse (a username taken, the last admin disabled)."""


class UnknownAccount(AccountError):
    """A username that does not exist (or is outside the caller's area)."""


class InvalidAccount(AccountError):
    """An account that names an officer, department, enterprise or area the registry lacks."""


class AccountForbidden(AccountError):
    """A change the caller's role may not make (a supervisor creating an admin)."""


class TokenError(AccountError):
    """A token that is malformed, forged, expired or revoked, or whose login is gone or disabled."""


class LoginRefused(AccountError):
    """A login turned away before any password work; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class LoginThrottled(LoginRefused):
    """Too many failed logins for this username or from this client address."""


class HasherBusy(LoginRefused):
    """Every password worker and every place in their queue is taken."""
