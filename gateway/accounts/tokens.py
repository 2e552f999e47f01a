"""Bearer tokens: JWTs (RFC 7519, HS256, PyJWT), an access and a refresh kind.

Claims: ``sub`` (username), ``typ`` (``access`` or ``refresh``), ``iat`` and ``exp`` (epoch
seconds), ``jti`` (random), ``sid`` (the login session both tokens of a login belong to) and
``ver`` (the account's token version). The key is derived from the gateway's secret
(``token.key``), so tokens and event cursors never share a key. Expiry is checked against the
gateway's clock, not the library's, so that tests move time by hand. Whether a valid token is still
honoured (its session open, its version current, its login enabled) is for the account service.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass
from typing import Literal

import jwt

from gateway.errors import TokenError

ALGORITHM = "HS256"
Kind = Literal["access", "refresh"]
_CLAIMS = ("sub", "typ", "iat", "exp", "jti", "sid", "ver")


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    typ: str
    iat: int
    exp: int
    jti: str
    sid: str
    ver: int


def new_id() -> str:
    """A random id for a token or a session (128 bits)."""
    return secrets.token_urlsafe(16)


class TokenSigner:
    """Issues and reads the gateway's tokens."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"gridgate bearer tokens v1", hashlib.sha256).digest()

    def issue(self, kind: Kind, username: str, sid: str, version: int, now_s: int, ttl_s: int,
              jti: str | None = None) -> tuple[str, Claims]:
        """A signed token and its claims."""
        claims = Claims(username, kind, now_s, now_s + ttl_s, jti or new_id(), sid, version)
        return jwt.encode(asdict(claims), self._key, algorithm=ALGORITHM), claims

    def read(self, token: str, kind: Kind, now_s: int) -> Claims:
        """The claims of a token of ``kind`` that is well formed, signed by us and not expired."""
        try:
            raw = jwt.decode(token, self._key, algorithms=[ALGORITHM],
                             options={"require": list(_CLAIMS), "verify_exp": False, "verify_iat": False,
                                      "verify_nbf": False})
        except jwt.InvalidTokenError as exc:
            raise TokenError("malformed or forged token") from exc
        types = {"sub": str, "typ": str, "iat": int, "exp": int, "jti": str, "sid": str, "ver": int}
        if any(type(raw[k]) is not t for k, t in types.items()):
            raise TokenError("malformed token")
        claims = Claims(**{k: raw[k] for k in _CLAIMS})
        if claims.typ != kind:
            raise TokenError(f"not an {kind} token" if kind == "access" else f"not a {kind} token")
        if claims.exp <= now_s:
            raise TokenError("token expired")
        return claims
