"""The caller's login: bearer tokens checked against the account store, and the role dependency.

Tokens are the account service's JWTs (:mod:`gateway.accounts.tokens`); a token is honoured while
its login exists and is enabled, its token version is current and its session open
(:meth:`gateway.accounts.service.Accounts.authenticate`), so a logout, a password change, a
disable or a change of role or scope takes effect on the next request. Every failure is the same
401 with ``WWW-Authenticate: Bearer``. The WebSocket takes the token from the ``Authorization``
header or, since browsers cannot set headers on a WebSocket, from an ``access_token`` query
parameter (:func:`token_of_connection`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from api.deps import GatewayDep, GatewayView
from gateway.accounts.store import Account
from gateway.accounts.tokens import Claims
from gateway.config import User
from gateway.errors import TokenError

TOKEN_URL = "/api/v1/auth/token"


def unauthorized(detail: str = "not authenticated") -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def user_of_token(gateway: GatewayView, token: str) -> User:
    """The login an access token stands for; TokenError if it is bad, revoked or its login gone."""
    return gateway.accounts.authenticate(token)[0].user


def token_of_connection(conn: HTTPConnection, allow_query: bool = False) -> str | None:
    """The bearer token of a request: its Authorization header (or ``access_token`` if allowed)."""
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_query:
        return conn.query_params.get("access_token") or None
    return None


# Only for the OpenAPI description (the "Authorize" button); the token is read by current_login.
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def current_login(conn: HTTPConnection, gateway: GatewayDep,
                  _doc: Annotated[str | None, Depends(_bearer)]) -> tuple[Account, Claims]:
    """The caller's account and token claims, from ``Authorization: Bearer``; 401 otherwise."""
    token = token_of_connection(conn)
    if token is None:
        raise unauthorized()
    try:
        return gateway.accounts.authenticate(token)
    except TokenError as exc:
        raise unauthorized(f"invalid token: {exc}") from None


CurrentLogin = Annotated[tuple[Account, Claims], Depends(current_login)]


def current_user(login: CurrentLogin) -> User:
    """The caller's login (role, what it acts as)."""
    return login[0].user


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: str) -> Any:
    """A dependency admitting only logins with one of ``roles``; 403 for the others."""

    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"a {user.role} login may not do this")
        return user

    return Depends(check)
