"""The account service: logins, tokens and account changes, over the store, throttle and hasher.

A login is checked against the throttle first (a throttled try does no argon2 work), then its
password is verified in the hasher's pool (an unknown name against the dummy hash, a disabled
login like any other: one and the same 401 for all three). A good login opens a session and gets
an access token (``[api] access_ttl``) and a refresh token (``[api] refresh_ttl``, the session's
whole life: refreshing rotates the refresh token, never extends the session; an old refresh
token presented again closes the session, as it may have been stolen). A token is honoured while
its login exists and is enabled, its token version is current and its session open: logout closes
the session, and a password change, a reset, a disable or a change of role or scope revokes every
token of the login. Account changes go through :mod:`gateway.accounts.policy` (who may change what)
and the registry (what a login names must exist), and are audited by the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.accounts.passwords import HashParams, PasswordPool, most_common_params
from gateway.accounts.policy import check_new_state, manages
from gateway.accounts.store import Account, AccountStore, Session
from gateway.accounts.throttle import LoginThrottle
from gateway.accounts.tokens import Claims, TokenSigner, new_id
from gateway.clock import Clock
from gateway.config import Config, User
from gateway.errors import AccountError, AccountForbidden, InvalidAccount, TokenError, UnknownAccount
from gateway.registry import Registry

ACTS_AS = ("officer", "department", "enterprise", "area")


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int

    def to_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "token_type": "bearer", "expires_in": self.expires_in,
                "refresh_token": self.refresh_token, "refresh_expires_in": self.refresh_expires_in}


class Accounts:
    """The gateway's logins (see the module docstring); seeds ``cfg.users`` not stored yet."""

    def __init__(self, path: str | Path, cfg: Config, registry: Registry, clock: Clock, secret: bytes) -> None:
        api = cfg.api
        self.registry = registry
        self.clock = clock
        self.access_ttl = api.access_ttl
        self.refresh_ttl = api.refresh_ttl
        self.store = AccountStore(path)
        self.signer = TokenSigner(secret)
        self.pool = PasswordPool(HashParams(api.hash_memory_kib, api.hash_time_cost), api.login_workers,
                                 api.login_queue)
        self.throttle = LoginThrottle(clock, lock_after=api.lock_after, lock_s=api.lock_seconds)
        self.seeded = self.store.seed(cfg.users, self._now_ms())
        self._hashes_changed()
        self.pool.prepare()

    def close(self) -> None:
        self.pool.close()
        self.store.close()

    def _now_ms(self) -> int:
        return self.clock.now_ns() // 1_000_000

    def _now_s(self) -> int:
        return self.clock.now_ns() // 1_000_000_000

    def _hashes_changed(self) -> None:
        self.pool.dummy_params = most_common_params((a.user.password_hash for a in self.store.accounts()),
                                                    self.pool.params)

    def users(self) -> list[User]:
        """Every login, enabled or not (the stats name the officer behind an event's actor)."""
        return [a.user for a in self.store.accounts()]

    # logins and tokens

    async def login(self, username: str, password: str, address: str) -> TokenPair:
        """A token pair for a good username and password; LoginRefused or TokenError otherwise."""
        self.throttle.check(username, address)
        account = self.store.get(username)
        ok = await self.pool.verify(account.user.password_hash if account is not None else None, password)
        if not ok or account is None or not account.enabled or self.store.get(username) is not account:
            self.throttle.failed(username, address)
            raise TokenError("wrong username or password")
        self.throttle.succeeded(username)
        return self._open_session(account)

    def _open_session(self, account: Account) -> TokenPair:
        now = self._now_s()
        session = Session(new_id(), account.username, new_id(), now, now + self.refresh_ttl)
        self.store.open_session(session)
        return self._pair(account, session, session.refresh_jti)

    def _pair(self, account: Account, session: Session, refresh_jti: str) -> TokenPair:
        now = self._now_s()
        access_ttl = min(self.access_ttl, session.expires_s - now)
        refresh_ttl = session.expires_s - now
        ver = account.token_version
        access, _ = self.signer.issue("access", account.username, session.sid, ver, now, access_ttl)
        refresh, _ = self.signer.issue("refresh", account.username, session.sid, ver, now, refresh_ttl, refresh_jti)
        return TokenPair(access, refresh, access_ttl, refresh_ttl)

    def _honoured(self, claims: Claims) -> tuple[Account, Session]:
        account = self.store.get(claims.sub)
        if account is None:
            raise TokenError("unknown login")
        if not account.enabled:
            raise TokenError("login disabled")
        session = self.store.session(claims.sid)
        if claims.ver != account.token_version or session is None or session.username != claims.sub:
            raise TokenError("token revoked")
        return account, session

    def authenticate(self, token: str) -> tuple[Account, Claims]:
        """The login an access token stands for, with its claims; TokenError if not honoured."""
        claims = self.signer.read(token, "access", self._now_s())
        return self._honoured(claims)[0], claims

    def refresh(self, token: str) -> TokenPair:
        """A new pair for a refresh token, which is then spent."""
        claims = self.signer.read(token, "refresh", self._now_s())
        account, session = self._honoured(claims)
        new_jti = new_id()
        if not self.store.rotate(session.sid, claims.jti, new_jti, session.expires_s):
            self.store.close_session(session.sid)
            raise TokenError("refresh token already used: the session is closed")
        return self._pair(account, session, new_jti)

    def logout(self, claims: Claims) -> None:
        """Close the session of a token: its access and refresh tokens are refused from now on."""
        self.store.close_session(claims.sid)

    async def change_password(self, account: Account, old: str, new: str, address: str) -> TokenPair:
        """The caller's own password: every token of the login is revoked; a fresh pair is returned."""
        self.throttle.check(account.username, address)
        if not await self.pool.verify(account.user.password_hash, old):
            self.throttle.failed(account.username, address)
            raise AccountForbidden("the current password is wrong")
        new_hash = await self.pool.hash(new)
        user = account.user.model_copy(update={"password_hash": new_hash})
        changed = self.store.change(account.username, "password_changed", account.username, self._now_ms(),
                                    user=user, revoke=True)
        self._hashes_changed()
        return self._open_session(changed)

    # account management

    def visible(self, manager: User, username: str) -> Account:
        """A login ``manager`` manages; UnknownAccount (404) for one it does not, as for no such login."""
        account = self.store.get(username)
        if account is None or not manages(self.registry, manager, account.user):
            raise UnknownAccount(f"user {username!r} not found")
        return account

    def managed(self, manager: User) -> list[Account]:
        return [a for a in self.store.accounts() if manages(self.registry, manager, a.user)]

    def audit(self, manager: User, username: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        if username is not None:
            self.visible(manager, username)
        names = None if manager.role == "admin" else {a.username for a in self.managed(manager)}
        if username is not None:
            names = {username}
        return self.store.audit(names, limit, offset)

    async def create(self, manager: User, fields: dict[str, Any], password: str) -> Account:
        user = _user({**fields, "password_hash": _PLACEHOLDER})
        check_new_state(self.registry, manager, user)
        if self.store.get(user.username) is not None:
            raise AccountError(f"username {user.username!r} is taken")
        user = user.model_copy(update={"password_hash": await self.pool.hash(password)})
        account = self.store.create(manager.username, user, self._now_ms())
        self._hashes_changed()
        return account

    def change(self, manager: User, username: str, fields: dict[str, Any]) -> Account:
        """Change role and what the login acts as; a new role resets the acts-as keys not given."""
        account = self.visible(manager, username)
        base = account.user.model_dump()
        if "role" in fields:
            base.update(dict.fromkeys(ACTS_AS))
        user = _user({**base, **fields})
        check_new_state(self.registry, manager, user)
        self._keep_an_admin(username, user.role == "admin" and account.enabled)
        return self.store.change(manager.username, "changed", username, self._now_ms(), user=user)

    async def reset_password(self, manager: User, username: str, password: str) -> Account:
        account = self.visible(manager, username)
        user = account.user.model_copy(update={"password_hash": await self.pool.hash(password)})
        changed = self.store.change(manager.username, "password_reset", username, self._now_ms(), user=user,
                                    revoke=True)
        self._hashes_changed()
        return changed

    def set_enabled(self, manager: User, username: str, enabled: bool) -> Account:
        account = self.visible(manager, username)
        self._keep_an_admin(username, enabled and account.user.role == "admin")
        return self.store.change(manager.username, "enabled" if enabled else "disabled", username,
                                 self._now_ms(), enabled=enabled)

    def _keep_an_admin(self, username: str, stays_admin: bool) -> None:
        others = [a for a in self.store.accounts() if a.user.role == "admin" and a.enabled and a.username != username]
        if not others and not stays_admin:
            raise AccountError("the last enabled admin cannot be disabled or given another role")


# A syntactically valid argon2 hash, only to validate a new login's other fields before hashing.
_PLACEHOLDER = "$argon2id$v=19$m=1024,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def _user(fields: dict[str, Any]) -> User:
    try:
        return User.model_validate(fields)
    except ValidationError as exc:
        raise InvalidAccount("; ".join(f"{'.'.join(map(str, e['loc'])) or 'user'}: "
                                       f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())) from exc
