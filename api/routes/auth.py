"""``POST /auth/token``: the OAuth2 password flow, exchanging a login's password for a bearer token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from api.auth import authenticate, issue_token, unauthorized
from api.deps import GatewayDep

router = APIRouter(tags=["auth"])


@router.post("/auth/token")
def token(gateway: GatewayDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
    """A bearer token for a username and password (form fields, as OAuth2 says); 401 otherwise."""
    # A sync handler on purpose: argon2 takes tens of milliseconds, so it runs in the thread pool.
    user = authenticate(gateway.config.users, form.username, form.password)
    if user is None:
        raise unauthorized("wrong username or password")
    ttl = gateway.config.api.token_ttl
    now_s = gateway.clock.now_ns() // 1_000_000_000
    return {"access_token": issue_token(gateway.secret, user.username, now_s, ttl),
            "token_type": "bearer", "expires_in": ttl}
