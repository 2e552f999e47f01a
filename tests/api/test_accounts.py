"""Accounts kept by the gateway (issue 10 item 2), through the API of a real gateway under uvicorn:
seeding from ``[[users]]``, create, change, reset, disable and enable with their audit, the
supervisor's area, refresh and logout, password changes, and revocation of every token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.api.test_live_stream import close_code
from tests.server import HASHES, ApiServer, make_config


def login(server: ApiServer, username: str, password: str | None = None) -> httpx.Response:
    return httpx.post(f"{server.base}/auth/token", data={"username": username, "password": password or username})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(server: ApiServer, token: str) -> int:
    return httpx.get(f"{server.base}/me", headers=bearer(token)).status_code


def audit_of(server: ApiServer, username: str) -> list[dict[str, Any]]:
    with server.client("admin") as admin:
        return admin.get("/users/audit", params={"username": username}).json()


def test_config_users_are_seeded_once_and_never_overwritten(tmp_path: Path) -> None:
    with ApiServer(tmp_path / "gw") as server:
        rows = {r["username"]: r for r in audit_of(server, "zhang") + audit_of(server, "admin")}
        assert rows["zhang"]["actor"] == "config" and rows["zhang"]["action"] == "seeded"
        assert rows["zhang"]["new"] == {"role": "officer", "officer": "zhang", "department": None,
                                        "enterprise": None, "area": None, "enabled": True}
        with server.client("admin") as admin:
            assert admin.patch("/users/wang", json={"officer": "li"}).status_code == 200
    cfg = make_config()
    cfg["users"].append({"username": "li", "password_hash": HASHES["zhang"], "role": "officer", "officer": "li"})
    next(u for u in cfg["users"] if u["username"] == "wang")["role"] = "admin"  # ignored: wang is stored
    with ApiServer(tmp_path / "gw", cfg) as server:
        with server.client("admin") as admin:
            assert admin.get("/users/wang").json()["officer"] == "li"
            assert admin.get("/users/wang").json()["role"] == "officer"
            assert login(server, "li", "zhang").status_code == 200
        assert [(r["actor"], r["action"]) for r in audit_of(server, "li")] == [("config", "seeded")]
        assert [r["action"] for r in audit_of(server, "wang")] == ["changed", "seeded"]


def test_create_change_reset_disable_enable_audited(server: ApiServer) -> None:
    admin = server.client("admin")
    r = admin.post("/users", json={"username": "li", "role": "officer", "officer": "li", "password": "first-pass"})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "officer" and r.json()["enabled"] is True and "password_hash" not in r.json()
    assert "hash" not in admin.get("/users").text
    token = login(server, "li", "first-pass").json()["access_token"]
    assert me(server, token) == 200

    r = admin.patch("/users/li", json={"role": "enterprise", "enterprise": "far"})
    assert r.status_code == 200 and (r.json()["officer"], r.json()["enterprise"]) == (None, "far")
    assert me(server, token) == 401  # a role change revokes the login's tokens
    token = login(server, "li", "first-pass").json()["access_token"]
    assert admin.patch("/users/li", json={"enterprise": "far"}).status_code == 200  # no change: tokens stay
    assert me(server, token) == 200

    assert admin.post("/users/li/password", json={"password": "second-pass"}).status_code == 200
    assert me(server, token) == 401
    assert login(server, "li", "first-pass").status_code == 401
    token = login(server, "li", "second-pass").json()["access_token"]

    assert admin.post("/users/li/disable").json()["enabled"] is False
    assert me(server, token) == 401
    assert httpx.get(f"{server.base}/me", headers=bearer(token)).json()["detail"] == "invalid token: login disabled"
    assert login(server, "li", "second-pass").status_code == 401  # the same 401 as a wrong password
    assert admin.post("/users/li/enable").json()["enabled"] is True
    assert me(server, token) == 401  # a disable revoked it for good
    assert login(server, "li", "second-pass").status_code == 200

    rows = audit_of(server, "li")
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("admin", "enabled"), ("admin", "disabled"), ("admin", "password_reset"), ("admin", "changed"),
        ("admin", "created")]
    assert rows[3]["old"] == {"enterprise": None, "officer": "li", "role": "officer"}
    assert rows[3]["new"] == {"enterprise": "far", "officer": None, "role": "enterprise"}
    assert rows[2]["new"] == {"password": "changed"} and rows[2]["old"] is None
    assert rows[1]["old"] == {"enabled": True} and rows[1]["new"] == {"enabled": False}
    assert all(isinstance(r["ts"], int) and r["ts"] > 1_600_000_000_000 for r in rows)
    raw = orjson.dumps(admin.get("/users/audit", params={"limit": 1000}).json())
    assert b"argon2" not in raw and b"second-pass" not in raw
    admin.close()


def test_references_roles_and_conflicts(server: ApiServer) -> None:
    with server.client("admin") as admin:
        cases = [
            ({"username": "x1", "role": "officer", "officer": "ghost"}, 422, "officer 'ghost' does not exist"),
            ({"username": "x2", "role": "enterprise", "enterprise": "nope"}, 422, "enterprise 'nope' does not exist"),
            ({"username": "x3", "role": "department", "department": "police"}, 422, "department 'police'"),
            ({"username": "x4", "role": "officer"}, 422, "role 'officer' needs 'officer'"),
            ({"username": "zhang", "role": "officer", "officer": "li"}, 409, "username 'zhang' is taken"),
        ]
        for body, code, message in cases:
            r = admin.post("/users", json={**body, "password": "long-enough"})
            assert r.status_code == code and message in r.json()["detail"], (body, r.text)
        for body in ({"username": "x5", "role": "admin", "password": "short"},
                     {"username": "bad name", "role": "admin", "password": "long-enough"},
                     {"username": "x6", "role": "root", "password": "long-enough"},
                     {"username": "x7", "role": "admin", "password": "long-enough", "password_hash": "$argon2id$"}):
            assert admin.post("/users", json=body).status_code == 422, body
        assert admin.patch("/users/zhang", json={"officer": "ghost"}).status_code == 422
        assert admin.get("/users/ghost").status_code == 404
        assert admin.post("/users/admin/disable").status_code == 409  # the last enabled admin
        assert admin.patch("/users/admin", json={"role": "officer", "officer": "li"}).status_code == 409
        assert admin.post("/users", json={"username": "root2", "role": "admin", "password": "long-enough"}).is_success
        assert admin.post("/users/root2/disable").status_code == 200
        assert admin.get("/users/zhang").json()["role"] == "officer"


def test_a_supervisor_manages_only_logins_within_its_area(server: ApiServer) -> None:
    town = server.client("town")  # area 430903: grids G1 (zhang) and G2 (wang, shimen)
    assert [u["username"] for u in town.get("/users").json()] == ["shimen", "wang", "zhang"]
    for name in ("admin", "fire", "town", "ghost"):
        assert town.get(f"/users/{name}").status_code == 404, name
        assert town.post(f"/users/{name}/disable").status_code == 404, name
    # li serves G3, far's grid is G3: outside the area, as if they did not exist
    for body in ({"role": "officer", "officer": "li"}, {"role": "enterprise", "enterprise": "far"}):
        r = town.post("/users", json={"username": "new1", "password": "long-enough", **body})
        assert r.status_code == 422 and "does not exist" in r.json()["detail"], r.text
    forbidden = [{"role": "admin"}, {"role": "department", "department": "fire"},
                 {"role": "supervisor", "area": "4309"}, {"role": "supervisor", "area": "430903"}]
    for body in forbidden:
        assert town.post("/users", json={"username": "new2", "password": "long-enough", **body}).status_code == 403
    r = town.post("/users", json={"username": "village", "role": "supervisor", "area": "430903001002",
                                  "password": "long-enough"})
    assert r.status_code == 201, r.text
    assert town.post("/users", json={"username": "wang2", "role": "officer", "officer": "wang",
                                     "password": "long-enough"}).status_code == 201
    assert town.patch("/users/zhang", json={"role": "enterprise", "enterprise": "far"}).status_code == 422
    assert town.patch("/users/zhang", json={"role": "admin"}).status_code == 403
    zhang = login(server, "zhang").json()["access_token"]
    assert town.post("/users/zhang/disable").status_code == 200
    assert me(server, zhang) == 401
    names = {r["username"] for r in town.get("/users/audit").json()}
    assert names == {"zhang", "wang", "shimen", "village", "wang2"}  # nothing of admin, fire or itself
    assert town.get("/users/audit", params={"username": "admin"}).status_code == 404
    assert town.get("/users/audit", params={"username": "zhang"}).json()[0]["actor"] == "town"
    # a narrower supervisor manages within its own narrower area only
    village_token = login(server, "village", "long-enough").json()["access_token"]
    with httpx.Client(base_url=server.base, headers=bearer(village_token)) as village:
        assert [u["username"] for u in village.get("/users").json()] == ["zhang"]  # G1's area
        assert village.get("/users/wang").status_code == 404  # G2: 430903001003
    town.close()


def test_refresh_rotates_and_logout_revokes(server: ApiServer) -> None:
    first = login(server, "zhang").json()
    assert first["token_type"] == "bearer" and first["expires_in"] == 900
    assert first["refresh_expires_in"] == 12 * 3600
    r = httpx.post(f"{server.base}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and me(server, second["access_token"]) == 200
    assert me(server, first["access_token"]) == 200  # same session: still good until it expires
    assert httpx.post(f"{server.base}/auth/refresh", json={"refresh_token": first["access_token"]}).status_code == 401
    # a spent refresh token presented again: the session may be stolen, so it is closed
    r = httpx.post(f"{server.base}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and "already used" in r.json()["detail"]
    assert me(server, second["access_token"]) == 401
    assert httpx.post(f"{server.base}/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401

    third = login(server, "zhang").json()
    other = login(server, "zhang").json()  # another session of the same login
    assert httpx.post(f"{server.base}/auth/logout", headers=bearer(third["access_token"])).status_code == 204
    assert me(server, third["access_token"]) == 401
    assert httpx.post(f"{server.base}/auth/refresh", json={"refresh_token": third["refresh_token"]}).status_code == 401
    assert me(server, other["access_token"]) == 200  # logout ends its own session only
    assert httpx.post(f"{server.base}/auth/logout").status_code == 401


def test_password_change_revokes_every_token(server: ApiServer) -> None:
    a, b = login(server, "wang").json(), login(server, "wang").json()
    url = f"{server.base}/me/password"
    r = httpx.post(url, headers=bearer(a["access_token"]), json={"old_password": "nope", "new_password": "new-secret"})
    assert r.status_code == 403 and me(server, a["access_token"]) == 200
    r = httpx.post(url, headers=bearer(a["access_token"]), json={"old_password": "wang", "new_password": "new-secret"})
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert [me(server, t["access_token"]) for t in (a, b, fresh)] == [401, 401, 200]
    assert httpx.post(f"{server.base}/auth/refresh", json={"refresh_token": b["refresh_token"]}).status_code == 401
    assert login(server, "wang").status_code == 401 and login(server, "wang", "new-secret").status_code == 200
    assert [r["action"] for r in audit_of(server, "wang")][:1] == ["password_changed"]
    assert audit_of(server, "wang")[0]["actor"] == "wang"


def test_the_live_stream_checks_tokens_the_same_way(server: ApiServer) -> None:
    token = login(server, "zhang").json()["access_token"]
    url = f"{server.ws_base}/alarms/live?access_token={token}"
    with connect(url, open_timeout=5) as ws:
        ws.ping().wait(5)  # accepted
    with server.client("admin") as admin:
        assert admin.post("/users/zhang/disable").status_code == 200
    with connect(url, open_timeout=5) as ws:
        assert close_code(ws) == 4401


def test_the_configuration_refuses_token_ttl_and_costly_hashes() -> None:
    cfg = make_config()
    cfg["api"] = {"token_ttl": 3600}
    with pytest.raises(ConfigError, match="token_ttl is replaced by access_ttl"):
        parse_config(cfg)
    cfg = make_config()
    cfg["api"] = {"access_ttl": 3600, "refresh_ttl": 3600}
    with pytest.raises(ConfigError, match="refresh_ttl must be longer"):
        parse_config(cfg)
    for bad in ("plain", "$argon2id$v=19$m=1048576,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
                "$argon2id$v=19$m=1024,t=100,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA"):
        cfg = make_config()
        cfg["users"][0]["password_hash"] = bad
        with pytest.raises(ConfigError, match="password_hash must be an argon2 hash"):
            parse_config(cfg)


def test_an_open_stream_ends_when_its_token_is_revoked(server: ApiServer) -> None:
    mine, other = login(server, "zhang").json(), login(server, "zhang").json()
    with connect(f"{server.ws_base}/alarms/live?access_token={mine['access_token']}", open_timeout=5) as ws:
        assert httpx.post(f"{server.base}/auth/logout", headers=bearer(other["access_token"])).status_code == 204
        alarm = server.raise_alarm("hengyuan/gas/ch4")  # another session's logout leaves this stream alone
        assert orjson.loads(ws.recv(timeout=5))["alarm"]["id"] == alarm["id"]
        with server.client("admin") as admin:
            assert admin.post("/users/zhang/disable").status_code == 200
        assert close_code(ws) == 4401
    token = login(server, "wang").json()["access_token"]
    with connect(f"{server.ws_base}/alarms/live?access_token={token}", open_timeout=5) as ws:
        assert httpx.post(f"{server.base}/auth/logout", headers=bearer(token)).status_code == 204
        assert close_code(ws) == 4401
