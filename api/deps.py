"""The dependencies every router shares: the gateway the app was built for.

``create_app`` puts the gateway on ``app.state``; handlers get it through :data:`GatewayDep`
(HTTP and WebSocket alike), never through a module-level global. The caller's login and scope are
in :mod:`api.auth` (:data:`~api.auth.CurrentUser`) and :mod:`api.scope` (:data:`~api.scope.CallerScope`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from gateway.root.runtime import Gateway


def gateway_of(conn: HTTPConnection) -> Gateway:
    """The gateway of the app serving this request or WebSocket."""
    return conn.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(gateway_of)]
