"""The role × route walk: every operation of ``/api/v1/openapi.json`` with every login and without one.

The table below says, per operation, who may call it (the rest get 403), which items each login
sees (an item outside a login's scope is a 404, the same as an unknown one), and which routes
are public (no 401 without a token). The walk calls each probe as ``admin``, supervisor ``town``
(area 430903: grids G1 and G2), department ``fire`` (hengyuan and far), officers ``zhang`` (G1)
and ``wang`` (G2), enterprise ``shimen`` (G2) and anonymously, against a real gateway under
uvicorn (a login's tokens serve until a probe spends them or ends their session). "ok" is any
answer that passed authentication, role and scope: a 2xx, or a 409 from an alarm lifecycle the
earlier probes moved along. The spec's operations must be exactly the table's: a new route fails
the walk until its row is added here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.server import G1, G2, G3, ApiServer, make_config

LOGINS = ["admin", "town", "fire", "zhang", "wang", "shimen"]
ROLES: list[str | None] = [*LOGINS, None]  # None: no token
EVERYONE = frozenset(LOGINS)
ACK = frozenset({"admin", "town", "fire", "zhang", "wang"})
HANDLER = frozenset({"admin", "town", "zhang", "wang"})
MAINTAINER = frozenset({"admin", "town", "zhang", "wang", "shimen"})
MANAGER = frozenset({"admin", "town"})
NOBODY: frozenset[str] = frozenset()
DEVICE_WRITER = frozenset({"admin", "town", "shimen"})
SEES = {  # who sees what (enterprise or grid)
    "hengyuan": frozenset({"admin", "town", "fire", "zhang"}), G1: frozenset({"admin", "town", "fire", "zhang"}),
    "shimen": frozenset({"admin", "town", "wang", "shimen"}), G2: frozenset({"admin", "town", "wang", "shimen"}),
    "far": frozenset({"admin", "fire"}), G3: frozenset({"admin", "fire"}),
    "t-near": MANAGER, "t-far": frozenset({"admin"}), "nobody": NOBODY,
}
OK = "ok"


@dataclass
class Probe:
    path: str
    who: frozenset[str] = EVERYONE  # logins the role check admits
    sees: frozenset[str] = EVERYONE  # logins the item is in scope for
    json: Any = None  # a body, or a function of the login giving one
    form: dict[str, str] | None = None
    content: bytes | None = None  # a raw body (a register file)
    public: bool = False  # no login needed: every caller gets "ok"
    expect: dict[str | None, int | str] = field(default_factory=dict)  # overrides

    def expected(self, role: str | None) -> int | str:
        if role in self.expect:
            return self.expect[role]
        if self.public:
            return OK
        if role is None:
            return 401
        if role not in self.who:
            return 403
        return OK if role in self.sees else 404


def alarm_probes(action: str, who: frozenset[str], body: Callable[[str], Any] | Any = None) -> list[Probe]:
    return [Probe(f"/alarms/{{{e}}}/{action}", who, SEES[e], body) for e in ("hengyuan", "far")] + \
        [Probe(f"/alarms/999999/{action}", who, NOBODY, body)]


def device_probes(suffix: str, who: frozenset[str], body: Any = None) -> list[Probe]:
    return [Probe(f"/devices/{e}/gas/maintenance{suffix}", who, SEES[e], body) for e in ("hengyuan", "far")] + \
        [Probe(f"/devices/nope/gas/maintenance{suffix}", who, NOBODY, body)]


def user_probes(suffix: str, body: Any = None) -> list[Probe]:
    return [Probe(f"/users/{u}{suffix}", MANAGER, SEES[u], body) for u in ("t-near", "t-far", "nobody")]


NEW_OFFICER = {"role": "officer", "officer": "wang", "password": "walk-password"}
def WALK_DEVICE(enterprise: str) -> dict[str, Any]:  # noqa: N802
    return {"enterprise": enterprise, "id": "walk-t", "protocol": "mqtt",
            "points": [{"key": "t", "kind": "temperature", "unit": "°C", "high": 80.0}]}


FAR = {"id": "far", "name": "far works", "grid": G3, "lead_department": "market", "cooperating_departments": ["fire"]}


TABLE: dict[tuple[str, str], list[Probe]] = {
    ("POST", "/auth/token"): [Probe("/auth/token", form={"username": "admin", "password": "admin"}, public=True)],
    ("POST", "/auth/refresh"): [Probe("/auth/refresh", json="refresh", public=True)],
    ("POST", "/auth/logout"): [Probe("/auth/logout")],
    ("GET", "/me"): [Probe("/me")],
    ("POST", "/me/password"): [Probe("/me/password", json="password")],
    ("GET", "/users"): [Probe("/users", MANAGER)],
    ("POST", "/users"): [
        Probe("/users", MANAGER, json=lambda role: {"username": f"walk-{role}", **NEW_OFFICER}),
        # outside town's area: as if officer li did not exist
        Probe("/users", MANAGER, json=lambda role: {**NEW_OFFICER, "username": f"far-{role}", "officer": "li"},
              expect={"town": 422}),
        Probe("/users", MANAGER, json=lambda role: {**NEW_OFFICER, "username": f"adm-{role}", "role": "admin"},
              expect={"town": 403}),
    ],
    ("GET", "/users/audit"): [Probe("/users/audit", MANAGER), Probe("/users/audit?username=t-far", MANAGER,
                                                                     SEES["t-far"])],
    ("GET", "/users/{username}"): user_probes(""),
    ("PATCH", "/users/{username}"): [Probe("/users/t-near", MANAGER, SEES["t-near"], {"officer": "wang"}),
                                     Probe("/users/t-far", MANAGER, SEES["t-far"], {"officer": "li"}),
                                     Probe("/users/nobody", MANAGER, NOBODY, {"officer": "wang"})],
    ("POST", "/users/{username}/password"): user_probes("/password", {"password": "walk-password"}),
    ("POST", "/users/{username}/disable"): user_probes("/disable"),
    ("POST", "/users/{username}/enable"): user_probes("/enable"),
    ("GET", "/alarms"): [Probe("/alarms"), Probe("/alarms?enterprise=far", sees=SEES["far"]),
                         Probe(f"/alarms?grid={G2}", sees=SEES[G2])],
    ("GET", "/alarms/{alarm_id}"): [Probe("/alarms/{hengyuan}", sees=SEES["hengyuan"]),
                                    Probe("/alarms/{far}", sees=SEES["far"]), Probe("/alarms/999999", sees=NOBODY)],
    ("POST", "/alarms/{alarm_id}/ack"): alarm_probes("ack", ACK, {"note": "walk"}),
    ("POST", "/alarms/{alarm_id}/shelve"): alarm_probes("shelve", HANDLER, {"reason": "walk", "minutes": 5}),
    ("POST", "/alarms/{alarm_id}/unshelve"): alarm_probes("unshelve", HANDLER, {"note": "walk"}),
    ("POST", "/alarms/{alarm_id}/dispatch"): alarm_probes("dispatch", HANDLER,
                                                          {"department": "market", "note": "walk"}),
    ("POST", "/alarms/{alarm_id}/resolve"): alarm_probes("resolve", ACK, {"note": "walk"}),
    ("POST", "/alarms/{alarm_id}/close"): alarm_probes("close", HANDLER, {"note": "walk"}),
    ("GET", "/devices/{enterprise}/{device}/maintenance"): device_probes("", EVERYONE),
    ("POST", "/devices/{enterprise}/{device}/maintenance"): device_probes("", MAINTAINER,
                                                                          {"note": "walk", "minutes": 5}),
    ("POST", "/devices/{enterprise}/{device}/maintenance/end"): device_probes("/end", MAINTAINER, {"note": ""}),
    ("GET", "/sensors/latest"): [Probe("/sensors/latest"), Probe("/sensors/latest?enterprise=far", sees=SEES["far"]),
                                 Probe(f"/sensors/latest?grid={G3}", sees=SEES[G3])],
    ("GET", "/sensors/{enterprise}/{device}/{point}/readings"): [
        Probe("/sensors/hengyuan/gas/ch4/readings", sees=SEES["hengyuan"]),
        Probe("/sensors/far/gas/ch4/readings", sees=SEES["far"]),
        Probe("/sensors/hengyuan/gas/nope/readings", sees=NOBODY)],
    ("GET", "/stats/officers"): [Probe("/stats/officers", HANDLER)],
    ("GET", "/stats/alarms"): [Probe("/stats/alarms"), Probe(f"/stats/alarms?grid={G3}", sees=SEES[G3])],
    ("GET", "/healthz"): [Probe("/healthz", public=True)],
    ("GET", "/metrics"): [Probe("/metrics", frozenset({"admin"}))],
    ("POST", "/reports"): [Probe("/reports", json={"enterprise": "hengyuan", "text": "walk"}, public=True)],
    ("GET", "/devices/{enterprise}/{device}/connection"): [
        Probe(f"/devices/{e}/gas/connection", sees=SEES[e]) for e in ("hengyuan", "far")],
    ("POST", "/devices/{enterprise}/{device}/test-reading"): [
        Probe(f"/devices/{e}/gas/test-reading", MAINTAINER, SEES[e], {"values": {"t1": 20.0}})
        for e in ("hengyuan", "far")],
    ("GET", "/registry"): [Probe("/registry")],
    ("GET", "/registry/audit"): [Probe("/registry/audit", MANAGER), Probe("/registry/audit?section=grids", MANAGER)],
    ("POST", "/registry/import"): [Probe("/registry/import?filename=e.csv&dry_run=true", MANAGER,
                                         content=f"企业编号,企业名称,所属网格,牵头部门\nwalk,walk,{G1},yjj\n".encode())],
    ("GET", "/registry/export"): [Probe("/registry/export?kind=enterprises", MANAGER)],
    ("GET", "/registry/devices"): [Probe("/registry/devices")],
    ("GET", "/registry/devices/{enterprise}"): [Probe(f"/registry/devices/{e}", sees=SEES[e])
                                                for e in ("hengyuan", "far")],
    ("GET", "/registry/devices/{enterprise}/{device}"): [Probe(f"/registry/devices/{e}/gas", sees=SEES[e])
                                                         for e in ("hengyuan", "far")],
    ("PUT", "/registry/devices/{enterprise}/{device}"): [
        Probe(f"/registry/devices/{e}/walk-t", DEVICE_WRITER, SEES[e], WALK_DEVICE(e)) for e in ("shimen", "far")],
    ("PATCH", "/registry/devices/{enterprise}/{device}"): [
        Probe(f"/registry/devices/{e}/walk-t", DEVICE_WRITER, SEES[e], {"name": "walk"}) for e in ("shimen", "far")],
    ("DELETE", "/registry/devices/{enterprise}/{device}"): [  # the first call retires it: then it is gone
        Probe("/registry/devices/shimen/walk-t", DEVICE_WRITER, SEES["shimen"], expect={"town": 404, "shimen": 404}),
        Probe("/registry/devices/far/walk-t", DEVICE_WRITER, SEES["far"])],
    ("GET", "/registry/{section}"): [Probe(f"/registry/{s}") for s in ("grids", "officers", "departments")],
    ("GET", "/registry/{section}/{key}"): [Probe(f"/registry/grids/{G1}", sees=SEES[G1]),
                                           Probe(f"/registry/grids/{G3}", sees=SEES[G3]),
                                           Probe("/registry/officers/li", sees=SEES[G3]),
                                           Probe("/registry/enterprises/far", sees=SEES["far"]),
                                           Probe("/registry/departments/fire"),
                                           Probe("/registry/grids/nowhere", sees=NOBODY)],
    ("PUT", "/registry/{section}/{key}"): [
        Probe("/registry/officers/walk-o", MANAGER, json={"id": "walk-o", "name": "walk"}),
        Probe("/registry/enterprises/far", MANAGER, SEES["far"], FAR),
        Probe("/registry/departments/walk-d", MANAGER, json={"id": "walk-d", "name": "walk"}, expect={"town": 403})],
    ("PATCH", "/registry/{section}/{key}"): [
        Probe("/registry/enterprises/hengyuan", MANAGER, SEES["hengyuan"], {"name": "恒源化工"}),
        Probe("/registry/enterprises/far", MANAGER, SEES["far"], {"name": "far works"})],
    ("DELETE", "/registry/{section}/{key}"): [
        Probe("/registry/officers/walk-o", MANAGER, expect={"town": 404}),
        Probe(f"/registry/grids/{G3}", MANAGER, SEES[G3], expect={"admin": 422})],  # far is in it
}


@pytest.fixture
def server_config() -> dict[str, Any]:
    cfg = make_config()
    cfg["api"] = {"reports_per_hour": 1000}
    return cfg


def test_the_table_covers_every_route_of_the_spec(server: ApiServer) -> None:
    spec = httpx.get(f"{server.base}/openapi.json").json()
    routes = {(method.upper(), path.removeprefix("/api/v1")) for path, ops in spec["paths"].items() for method in ops}
    assert routes - set(TABLE) == set(), "routes the walk does not cover: add them to TABLE"
    assert set(TABLE) - routes == set(), "the walk names routes the spec does not have"


def test_every_route_with_every_role(server: ApiServer) -> None:
    alarms = {e: server.raise_alarm(f"{e}/gas/ch4")["id"] for e in ("hengyuan", "far")}
    passwords = {name: name for name in LOGINS}
    admin = server.client("admin")
    http = httpx.Client(base_url=server.base, timeout=10)  # one connection: the walk makes about 900 calls
    for name, officer in (("t-near", "wang"), ("t-far", "li")):
        r = admin.post("/users", json={"username": name, "role": "officer", "officer": officer,
                                       "password": "walk-password"})
        assert r.status_code == 201, r.text

    def pair(role: str) -> dict[str, Any]:
        r = http.post("/auth/token", data={"username": role, "password": passwords[role]})
        assert r.status_code == 200, (role, r.text)
        return r.json()

    held: dict[str | None, dict[str, Any]] = {}  # each login's tokens
    wrong: list[str] = []
    statuses: Counter[int] = Counter()
    for (method, _), probes in TABLE.items():
        for probe in probes:
            for role in ROLES:
                if role is not None and role not in held:
                    held[role] = pair(role)
                tokens = held.get(role) if role is not None else None
                headers = {"Authorization": f"Bearer {tokens['access_token']}"} if tokens else {}
                body = probe.json(role) if callable(probe.json) else probe.json
                if body == "refresh":
                    body = {"refresh_token": (tokens or pair("admin"))["refresh_token"]}
                elif body == "password" and role is not None:
                    body = {"old_password": passwords[role], "new_password": f"{passwords[role]}-walk-2"}
                elif body == "password":
                    body = {"old_password": "x", "new_password": "walk-password"}
                path = probe.path.format(**alarms)
                r = http.request(method, path, headers=headers, json=body, data=probe.form, content=probe.content)
                statuses[r.status_code] += 1
                want = probe.expected(role)
                got: int | str = OK if r.is_success or (r.status_code == 409 and want == OK) else r.status_code
                if got != want:
                    wrong.append(f"{method} {path} as {role}: {r.status_code} (want {want}) {r.text[:120]}")
                if probe.path == "/me/password" and r.is_success and role is not None:
                    passwords[role] = body["new_password"]
                if probe.path.startswith(("/auth/", "/me/password")):
                    held.pop(role, None)  # spent, or its session ended: the next probe logs in again
    admin.close()
    http.close()
    calls = sum(statuses.values())
    print(f"{calls} calls, by status {dict(sorted(statuses.items()))}")
    assert wrong == [], f"{len(wrong)} of {calls} calls:\n" + "\n".join(wrong)
    assert calls == 7 * sum(len(p) for p in TABLE.values()) and all(statuses[s] > 20 for s in (200, 401, 403, 404))
