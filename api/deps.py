"""The dependencies every router shares: the gateway the app was built for.

``create_app`` puts the gateway on ``app.state``; handlers get it through :data:`GatewayDep`
(HTTP and WebSocket alike), never through a module-level global. The API sees the gateway as a
:class:`GatewayView`: the parts it reads, from the layers below it; the composition root's
``Gateway`` is one, and the API never imports it. The caller's login and scope are in
:mod:`api.auth` (:data:`~api.auth.CurrentUser`) and :mod:`api.scope` (:data:`~api.scope.CallerScope`).
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import Depends
from starlette.requests import HTTPConnection

from alerts.book import AlarmBook
from alerts.hub import AlarmHub
from alerts.service import AlarmService
from gateway.accounts.service import Accounts
from gateway.clock import Clock
from gateway.config import Config
from gateway.ingest.intake import Intake
from gateway.register.service import RegisterService
from gateway.registry import DeviceInfo, Registry
from gateway.storage.service import Storage


class GatewayView(Protocol):
    """What the API reads of a running gateway."""

    config: Config
    registry: Registry
    clock: Clock
    secret: bytes  # the key tokens and event cursors are derived from
    accounts: Accounts  # logins, tokens, account changes
    intake: Intake  # its rejection counters count refused requests too
    storage: Storage  # readings queries
    alarms: AlarmService  # dispatch, sensor states
    book: AlarmBook
    hub: AlarmHub
    register: RegisterService  # the registry's items, changes, audit, imports
    collectors: dict[str, Any]  # by protocol; each has health()

    async def test_reading(self, device: DeviceInfo, payload: bytes) -> dict[str, Any]: ...

    def health(self) -> dict[str, Any]: ...


def gateway_of(conn: HTTPConnection) -> GatewayView:
    """The gateway of the app serving this request or WebSocket."""
    return conn.app.state.gateway


GatewayDep = Annotated[GatewayView, Depends(gateway_of)]
