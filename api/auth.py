"""Logins and bearer tokens: argon2 password hashes, HMAC-signed tokens, the current-user dependency.

A token is ``base64url(json {"sub", "exp"}) "." base64url(HMAC-SHA256(secret, payload))`` with the
gateway's secret; it names a login of the configuration, so removing the login (or its role)
invalidates its tokens at once. Every failure is the same 401 with ``WWW-Authenticate: Bearer``,
so a caller cannot tell a wrong password from an unknown login. The WebSocket takes the token from
the ``Authorization`` header or, since browsers cannot set headers on a WebSocket, from an
``access_token`` query parameter (:func:`token_of_connection`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Iterable
from typing import Annotated, Any

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from api.deps import GatewayDep, GatewayView
from gateway.config import User

TOKEN_URL = "/api/v1/auth/token"
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the login is unknown, so that both failures take the same time."""
    return _hasher.hash("gridgate: no such login")


class TokenError(Exception):
    """A token that is malformed, forged or expired."""


def unauthorized(detail: str = "not authenticated") -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``, for ``password_hash`` in ``gridgate.toml``."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if ``password`` matches ``password_hash``; a malformed hash never matches."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(users: Iterable[User], username: str, password: str) -> User | None:
    """The login with this username and password, or None."""
    user = next((u for u in users if u.username == username), None)
    ok = verify_password(user.password_hash if user else _dummy_hash(), password)
    return user if user is not None and ok else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(secret: bytes, username: str, now_s: int, ttl_s: int) -> str:
    """A bearer token for ``username`` valid for ``ttl_s`` seconds from ``now_s``."""
    payload = _b64(orjson.dumps({"sub": username, "exp": now_s + ttl_s}))
    sig = hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{_b64(sig)}"


def read_token(secret: bytes, token: str, now_s: int) -> str:
    """The username a valid token was issued for; TokenError if it is malformed, forged or expired."""
    payload, sep, sig = token.partition(".")
    if not sep or not payload or not sig:
        raise TokenError("malformed token")
    try:
        given = _unb64(sig)
        expected = hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(given, expected):
            raise TokenError("bad signature")
        claims = orjson.loads(_unb64(payload))
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise TokenError("malformed token") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str) \
            or not isinstance(claims.get("exp"), int):
        raise TokenError("malformed token")
    if claims["exp"] <= now_s:
        raise TokenError("token expired")
    return claims["sub"]


def user_of_token(gateway: GatewayView, token: str) -> User:
    """The login a token stands for; TokenError if the token is bad or its login is gone."""
    username = read_token(gateway.secret, token, gateway.clock.now_ns() // 1_000_000_000)
    for user in gateway.config.users:
        if user.username == username:
            return user
    raise TokenError("unknown login")


def token_of_connection(conn: HTTPConnection, allow_query: bool = False) -> str | None:
    """The bearer token of a request: its Authorization header (or ``access_token`` if allowed)."""
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_query:
        return conn.query_params.get("access_token") or None
    return None


# Only for the OpenAPI description (the "Authorize" button); the token is read by current_user.
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def current_user(conn: HTTPConnection, gateway: GatewayDep,
                 _doc: Annotated[str | None, Depends(_bearer)]) -> User:
    """The caller's login, from ``Authorization: Bearer``; 401 otherwise."""
    token = token_of_connection(conn)
    if token is None:
        raise unauthorized()
    try:
        return user_of_token(gateway, token)
    except TokenError as exc:
        raise unauthorized(f"invalid token: {exc}") from None


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: str) -> Any:
    """A dependency admitting only logins with one of ``roles``; 403 for the others."""

    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"a {user.role} login may not do this")
        return user

    return Depends(check)
