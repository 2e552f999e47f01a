"""The account store: logins, their sessions and the audit of every change, in ``accounts.db``.

One SQLite file in the data dir (WAL, :func:`gateway.sqlite.open_wal`). The store is the only
writer, so it keeps every account and every open session in memory too, updated with each write:
a request's token check reads no disk. Each change is one transaction with its audit row (who,
when, the fields before and after; a password change says only that it happened: hashes are never
in the audit). A change of role or scope, a new password or a disable bumps the account's token
version and closes all its sessions, which revokes every token it holds. Sessions (one per login,
ended by logout or expiry; the refresh token names the session's current refresh id, so a refresh
token works once) are capped per user, the oldest closed first, so memory stays bounded. Whoever
holds a token open (the live stream) can listen for revocations (:meth:`AccountStore.on_revoke`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.config import User
from gateway.errors import AccountError, StoreError, UnknownAccount
from gateway.sqlite import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY, role TEXT NOT NULL, officer TEXT, department TEXT, enterprise TEXT, area TEXT,
    password_hash TEXT NOT NULL, enabled INTEGER NOT NULL, token_version INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    sid TEXT PRIMARY KEY, username TEXT NOT NULL, refresh_jti TEXT NOT NULL, created_s INTEGER NOT NULL,
    expires_s INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    username TEXT NOT NULL, old TEXT, new TEXT);
CREATE INDEX IF NOT EXISTS audit_user ON audit (username, id);
"""
SCOPE_FIELDS = ("role", "officer", "department", "enterprise", "area")
MAX_SESSIONS_PER_USER = 20


@dataclass(frozen=True, slots=True)
class Account:
    user: User
    enabled: bool
    token_version: int
    created_ms: int
    updated_ms: int

    @property
    def username(self) -> str:
        return self.user.username

    def public(self) -> dict[str, Any]:
        """What the API shows of an account: never its hash."""
        return {"username": self.username, **{k: getattr(self.user, k) for k in SCOPE_FIELDS},
                "enabled": self.enabled, "created_at": self.created_ms, "updated_at": self.updated_ms}


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    username: str
    refresh_jti: str
    created_s: int
    expires_s: int


def _scope(user: User) -> dict[str, Any]:
    return {k: getattr(user, k) for k in SCOPE_FIELDS}


class AccountStore:
    """See the module docstring. Thread-safe: writes hold one lock."""

    def __init__(self, path: str | Path) -> None:
        self.db = open_wal(path, SCHEMA, "account store")
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._sessions: dict[str, Session] = {}
        self._listeners: set[Callable[[str], None]] = set()
        for row in self.db.execute("SELECT username, role, officer, department, enterprise, area, password_hash,"
                                   " enabled, token_version, created_ms, updated_ms FROM users"):
            user = User(username=row[0], role=row[1], officer=row[2], department=row[3], enterprise=row[4],
                        area=row[5], password_hash=row[6])
            self._accounts[user.username] = Account(user, bool(row[7]), row[8], row[9], row[10])
        for row in self.db.execute("SELECT sid, username, refresh_jti, created_s, expires_s FROM sessions"):
            self._sessions[row[0]] = Session(*row)

    def close(self) -> None:
        self.db.close()

    def on_revoke(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(username)`` after tokens of a login are revoked (on the writer's thread);
        returns the function that stops it."""
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    def _revoked(self, username: str) -> None:
        for listener in list(self._listeners):
            listener(username)

    # reading (memory only)

    def get(self, username: str) -> Account | None:
        return self._accounts.get(username)

    def require(self, username: str) -> Account:
        account = self._accounts.get(username)
        if account is None:
            raise UnknownAccount(f"user {username!r} not found")
        return account

    def accounts(self) -> list[Account]:
        return sorted(self._accounts.values(), key=lambda a: a.username)

    def session(self, sid: str) -> Session | None:
        return self._sessions.get(sid)

    def sessions_of(self, username: str) -> list[Session]:
        return [s for s in list(self._sessions.values()) if s.username == username]

    def audit(self, usernames: Collection[str] | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        """Audit rows, newest first; only those about ``usernames`` if given."""
        sql = "SELECT id, ts_ms, actor, action, username, old, new FROM audit"
        args: list[Any] = []
        if usernames is not None:
            sql += " WHERE username IN (SELECT value FROM json_each(?))"
            args.append(orjson.dumps(sorted(usernames)).decode())
        rows = self._read(sql + " ORDER BY id DESC LIMIT ? OFFSET ?", [*args, limit, offset])
        return [{"id": r[0], "ts": r[1], "actor": r[2], "action": r[3], "username": r[4],
                 "old": orjson.loads(r[5]) if r[5] else None, "new": orjson.loads(r[6]) if r[6] else None}
                for r in rows]

    def _read(self, sql: str, args: list[Any]) -> list[tuple]:
        try:
            with self._lock:
                return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"account store: {exc}") from exc

    # writing: one transaction each, with its audit row

    def _write(self, actor: str, action: str, username: str, old: dict | None, new: dict | None, now_ms: int,
               statements: Iterable[tuple[str, tuple]]) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self.db.execute(sql, args)
                self.db.execute("INSERT INTO audit (ts_ms, actor, action, username, old, new) VALUES (?,?,?,?,?,?)",
                                (now_ms, actor, action, username, old and orjson.dumps(old).decode(),
                                 new and orjson.dumps(new).decode()))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"account store: {exc}") from exc

    def create(self, actor: str, user: User, now_ms: int, action: str = "created") -> Account:
        with self._lock:
            if user.username in self._accounts:
                raise AccountError(f"username {user.username!r} is taken")
            self._write(actor, action, user.username, None, {**_scope(user), "enabled": True}, now_ms, [(
                "INSERT INTO users VALUES (?,?,?,?,?,?,?,1,0,?,?)",
                (user.username, user.role, user.officer, user.department, user.enterprise, user.area,
                 user.password_hash, now_ms, now_ms))])
            account = self._accounts[user.username] = Account(user, True, 0, now_ms, now_ms)
            return account

    def seed(self, users: Iterable[User], now_ms: int) -> list[str]:
        """Insert the logins of the configuration not in the store yet (actor ``config``); the names."""
        return [self.create("config", u, now_ms, "seeded").username for u in users if u.username not in self._accounts]

    def change(self, actor: str, action: str, username: str, now_ms: int, *, user: User | None = None,
               enabled: bool | None = None, revoke: bool = False) -> Account:
        """Replace the login's role, scope or hash (``user``) and/or ``enabled``, audited as ``action``.

        The token version is bumped and the sessions closed when ``revoke`` or when the role or
        scope changes or the login is disabled. A change that changes nothing writes nothing.
        """
        with self._lock:
            old = self.require(username)
            new_user = user or old.user
            new_enabled = old.enabled if enabled is None else enabled
            before = {k: v for k, v in {**_scope(old.user), "enabled": old.enabled}.items()}
            after = {**_scope(new_user), "enabled": new_enabled}
            diff = {k for k in after if after[k] != before[k]}
            new_hash = new_user.password_hash != old.user.password_hash
            if not diff and not new_hash:
                return old
            revoke = revoke or new_hash or bool(diff & set(SCOPE_FIELDS)) or not new_enabled
            version = old.token_version + int(revoke)
            audit_old = {k: before[k] for k in sorted(diff)} or None
            audit_new = {k: after[k] for k in sorted(diff)} or None
            if new_hash:
                audit_new = {**(audit_new or {}), "password": "changed"}
            statements = [("UPDATE users SET role=?, officer=?, department=?, enterprise=?, area=?, password_hash=?,"
                           " enabled=?, token_version=?, updated_ms=? WHERE username=?",
                           (*(after[k] for k in SCOPE_FIELDS), new_user.password_hash, int(new_enabled), version,
                            now_ms, username))]
            if revoke:
                statements.append(("DELETE FROM sessions WHERE username=?", (username,)))
            self._write(actor, action, username, audit_old, audit_new, now_ms, statements)
            account = self._accounts[username] = Account(new_user, new_enabled, version, old.created_ms, now_ms)
            if revoke:
                for sid in [s.sid for s in self._sessions.values() if s.username == username]:
                    del self._sessions[sid]
        if revoke:
            self._revoked(username)
        return account

    # sessions: not audited (a login is not a change of the account)

    def open_session(self, session: Session) -> None:
        """Record a new session, closing expired ones and the user's oldest past the cap."""
        with self._lock:
            now_s = session.created_s
            gone = [s.sid for s in self._sessions.values() if s.expires_s <= now_s]
            mine = sorted((s for s in self._sessions.values() if s.username == session.username and s.sid not in gone),
                          key=lambda s: s.created_s)
            gone += [s.sid for s in mine[:max(0, len(mine) - MAX_SESSIONS_PER_USER + 1)]]
            self._session_sql([("DELETE FROM sessions WHERE sid=?", (sid,)) for sid in gone]
                              + [("INSERT INTO sessions VALUES (?,?,?,?,?)", (session.sid, session.username,
                                  session.refresh_jti, session.created_s, session.expires_s))])
            closed = {self._sessions.pop(sid).username for sid in gone}
            self._sessions[session.sid] = session
        for username in closed:
            self._revoked(username)

    def rotate(self, sid: str, old_jti: str, new_jti: str, expires_s: int) -> bool:
        """Move a session to a new refresh id if ``old_jti`` is its current one; False otherwise."""
        with self._lock:
            s = self._sessions.get(sid)
            if s is None or s.refresh_jti != old_jti:
                return False
            self._session_sql([("UPDATE sessions SET refresh_jti=?, expires_s=? WHERE sid=?",
                                (new_jti, expires_s, sid))])
            self._sessions[sid] = Session(sid, s.username, new_jti, s.created_s, expires_s)
            return True

    def close_session(self, sid: str) -> None:
        with self._lock:
            self._session_sql([("DELETE FROM sessions WHERE sid=?", (sid,))])
            gone = self._sessions.pop(sid, None)
        if gone is not None:
            self._revoked(gone.username)

    def _session_sql(self, statements: list[tuple[str, tuple]]) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for sql, args in statements:
                self.db.execute(sql, args)
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise StoreError(f"account store: {exc}") from exc
