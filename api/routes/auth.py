"""Logins and tokens: ``POST /auth/token`` (the OAuth2 password form), ``/auth/refresh``, ``/auth/logout``.

The handlers are async and await the account service: argon2 runs in its bounded pool of threads
(:mod:`gateway.accounts.passwords`), never on the event loop nor in the request thread pool. A
wrong password, an unknown name and a disabled login are one 401; a throttled try is a 429 and a
full hasher a 503, both with ``Retry-After`` (:mod:`api.app` maps the errors).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.auth import CurrentLogin
from api.deps import GatewayDep

router = APIRouter(tags=["auth"])

MAX_PASSWORD = 1024  # characters of a password given to log in (new passwords: api.routes.users)
MAX_TOKEN = 4096


def client_of(request: Request) -> str:
    """The client address the throttle counts (after :class:`~api.guard.RequestGuard`'s proxy rule)."""
    return request.client.host if request.client else "unknown"


@router.post("/auth/token")
async def token(request: Request, gateway: GatewayDep,
                username: Annotated[str, Form(min_length=1, max_length=64)],
                password: Annotated[str, Form(max_length=MAX_PASSWORD)],
                grant_type: Annotated[str | None, Form(pattern="^password$")] = None) -> dict[str, Any]:
    """An access and a refresh token for a username and password (form fields, as OAuth2 says)."""
    pair = await gateway.accounts.login(username, password, client_of(request))
    return pair.to_dict()


class RefreshBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: Annotated[str, Field(min_length=1, max_length=MAX_TOKEN)]


@router.post("/auth/refresh")
def refresh(gateway: GatewayDep, body: RefreshBody) -> dict[str, Any]:
    """A new token pair for a refresh token; the one given is spent (a second use closes the session)."""
    return gateway.accounts.refresh(body.refresh_token).to_dict()


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(gateway: GatewayDep, login: CurrentLogin) -> Response:
    """End the session of the access token: it and the session's refresh token are refused from now on."""
    gateway.accounts.logout(login[1])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
