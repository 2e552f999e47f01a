"""The registry API as each role sees it: scope (404 outside), rights (403), validation as `gridgate
check` (422), retiring and its references, an enterprise that may not loosen its gas limits, the
audit trail, If-Match, and a register import over HTTP (all or nothing, dry run)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server import G1, G2, G3, ApiServer


@pytest.fixture
def clients(server: ApiServer):
    made: dict[str, httpx.Client] = {}

    def client(user: str) -> httpx.Client:
        if user not in made:
            made[user] = server.client(user)
        return made[user]

    yield client
    for c in made.values():
        c.close()


def keys(listing: dict[str, Any], section: str) -> set[str]:
    return {f"{i['enterprise']}/{i['id']}" if section == "devices" else i["id"] for i in listing["items"]}


def test_each_role_sees_only_its_scope(server: ApiServer, clients):
    assert keys(clients("admin").get("/registry/enterprises").json(), "enterprises") == {"hengyuan", "shimen", "far"}
    assert keys(clients("zhang").get("/registry/enterprises").json(), "enterprises") == {"hengyuan"}
    assert keys(clients("zhang").get("/registry/grids").json(), "grids") == {G1}
    assert keys(clients("zhang").get("/registry/officers").json(), "officers") == {"zhang"}
    assert keys(clients("town").get("/registry/grids").json(), "grids") == {G1, G2}
    assert keys(clients("fire").get("/registry/enterprises").json(), "enterprises") == {"hengyuan", "far"}
    assert keys(clients("shimen").get("/registry/devices").json(), "devices") == {"shimen/gas"}
    # outside the scope: 404, exactly like what does not exist
    for user, path in (("zhang", "/registry/enterprises/far"), ("zhang", "/registry/devices/far/gas"),
                       ("shimen", "/registry/grids/" + G1), ("town", "/registry/grids/" + G3),
                       ("zhang", "/registry/enterprises/nowhere")):
        r = clients(user).get(path)
        assert r.status_code == 404, (user, path, r.text)
    assert clients("zhang").get("/registry/devices/hengyuan/gas").json()["points"][0]["key"] == "ch4"
    counts = clients("zhang").get("/registry").json()
    assert counts["counts"]["enterprises"] == 1 and counts["version"] == server.gw.registry.version


def test_rights_to_change(server: ApiServer, clients):
    ent = clients("admin").get("/registry/enterprises/far").json()
    # an officer reads, never writes; a supervisor stays in its area; departments are the admin's
    r = clients("zhang").patch("/registry/enterprises/hengyuan", json={"name": "x"})
    assert r.status_code == 403 and r.json()["detail"] == "officer logins do not change enterprises"
    r = clients("town").patch("/registry/enterprises/hengyuan", json={"grid": G3})
    assert r.status_code == 403 and "outside area 430903" in r.json()["detail"]
    assert clients("town").patch("/registry/enterprises/far", json={"name": "x"}).status_code == 404
    assert clients("town").put("/registry/departments/new", json={"id": "new", "name": "n"}).status_code == 403
    r = clients("town").patch("/registry/enterprises/hengyuan", json={"grid": G2})
    assert r.status_code == 200 and server.gw.registry.enterprises["hengyuan"].grid == G2
    assert clients("admin").put("/registry/enterprises/far", json={**ent, "name": "远方"}).json()["action"] == "replace"
    assert server.gw.registry.enterprises["far"].name == "远方"


def test_an_enterprise_manages_its_own_devices_and_never_loosens_gas(server: ApiServer, clients):
    me = clients("shimen")
    device = me.get("/registry/devices/shimen/gas").json()
    # stricter is fine
    r = me.patch("/registry/devices/shimen/gas", json={"points": [{"key": "ch4", "high": 15.0}]})
    assert r.status_code == 200, r.text
    assert server.gw.registry.sensor("shimen/gas/ch4").point.high == 15.0
    # looser is refused, whatever the standard would allow
    r = me.patch("/registry/devices/shimen/gas", json={"points": [{"key": "ch4", "high": 20.0}]})
    assert r.status_code == 403 and "cannot loosen" in r.json()["detail"]
    r = me.patch("/registry/devices/shimen/gas", json={"points": [{"key": "ch4", "on_delay": 30}]})
    assert r.status_code == 403
    r = me.put("/registry/devices/shimen/gas", json={**device, "points": device["points"][1:]})
    assert r.status_code == 403 and "cannot be removed" in r.json()["detail"]
    assert me.delete("/registry/devices/shimen/gas").status_code == 403  # a gas detector stays
    # beyond the standard: refused by validation for everyone, with gridgate check's message
    r = clients("admin").patch("/registry/devices/shimen/gas", json={"points": [{"key": "ch4", "high": 30.0}]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["path"].startswith("devices[1] (shimen/gas).points[0] (ch4)")
    # another enterprise's device: not found; a new device of its own: created
    assert me.patch("/registry/devices/hengyuan/gas", json={"name": "x"}).status_code == 404
    new = {"enterprise": "shimen", "id": "temp", "protocol": "mqtt",
           "points": [{"key": "t1", "kind": "temperature", "unit": "°C", "high": 80.0}]}
    assert me.put("/registry/devices/shimen/temp", json=new).status_code == 201
    assert me.put("/registry/devices/hengyuan/temp", json={**new, "enterprise": "hengyuan"}).status_code == 404
    assert me.delete("/registry/devices/shimen/temp").status_code == 200


def test_retiring_what_others_name_is_refused_and_ids_are_never_reused(server: ApiServer, clients):
    admin = clients("admin")
    r = admin.delete(f"/registry/grids/{G3}")
    assert r.status_code == 422
    assert {p["path"] for p in r.json()["detail"]} == {"enterprises[2] (far).grid"}
    assert "grid '43090400100101' does not exist" in r.json()["detail"][0]["message"]
    r = admin.delete("/registry/officers/li")
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "grids[2] (43090400100101).officers[0]"
    # an enterprise retires with its devices; both stay readable, their ids stay taken; every open
    # alarm about it ends and closes, a public report about it too
    server.raise_alarm("far/gas/ch4")
    assert httpx.post(f"{server.base}/reports", json={"enterprise": "far", "text": "气味很大"}).status_code == 201
    assert {a.kind for a in server.gw.book.open_alarms() if a.enterprise == "far"} == {"process", "report"}
    r = admin.delete("/registry/enterprises/far")
    assert r.status_code == 200
    assert [(c["action"], c["section"], c["key"]) for c in r.json()["changed"]] == [
        ("retire", "enterprises", "far"), ("retire", "devices", "far/gas")]
    assert "far" not in server.gw.registry.enterprises
    assert not [a for a in server.gw.book.open_alarms() if a.enterprise == "far"]
    closed = admin.get("/alarms", params={"enterprise": "hengyuan"})  # (far is gone from the scope filters)
    assert closed.status_code == 200
    history = [e for e in server.gw.book.events_since(0, None, 10_000) if e.alarm.enterprise == "far"]
    assert [e.type for e in history[-2:]] == ["closed", "closed"]
    assert all("the enterprise was retired from the registry by admin" in e.note for e in history[-2:])
    assert admin.get("/registry/enterprises/far").headers["X-Retired-At"]
    listing = admin.get("/registry/enterprises", params={"retired": "true"}).json()
    assert [x["item"]["id"] for x in listing["retired"]] == ["far"]
    ent = admin.get("/registry/enterprises/far").json()
    r = admin.put("/registry/enterprises/far", json=ent)
    assert r.status_code == 409 and "not given again" in r.json()["detail"]


def test_bodies_and_preconditions(server: ApiServer, clients):
    admin = clients("admin")
    version = server.gw.registry.version
    r = admin.put("/registry/officers/zhao", json={"id": "qian", "name": "钱"})
    assert r.status_code == 422 and "does not match" in r.json()["detail"]
    r = admin.put("/registry/officers/zhao", json={"id": "zhao", "name": "赵", "phnoe": "1"})
    assert r.status_code == 422
    assert r.json()["detail"] == [{"path": "officers[3] (zhao).phnoe",
                                   "message": "unknown key 'phnoe' (did you mean 'phone'?)"}]
    r = admin.put("/registry/officers/zhao", json={"id": "zhao", "name": "赵"}, headers={"If-Match": str(version + 7)})
    assert r.status_code == 412
    r = admin.put("/registry/officers/zhao", json={"id": "zhao", "name": "赵"},
                  headers={"If-Match": str(version)})
    assert r.status_code == 201 and r.json()["version"] == version + 1
    r = admin.put("/registry/officers/zhao", json={"id": "zhao", "name": "赵"})
    assert r.status_code == 200 and r.json()["action"] == "unchanged" and r.json()["version"] == version + 1
    assert admin.put("/registry/officers/zhao", content=b"[1,2]",
                     headers={"Content-Type": "application/json"}).status_code == 422
    assert admin.get("/registry/widgets").status_code == 422  # not a section
    # PATCH with null removes a key
    assert admin.patch("/registry/officers/zhao", json={"phone": "139"}).json()["item"]["phone"] == "139"
    assert "phone" not in admin.patch("/registry/officers/zhao", json={"phone": None}).json()["item"]


def test_audit_names_who_when_old_and_new(server: ApiServer, clients):
    clients("town").patch("/registry/enterprises/hengyuan", json={"name": "恒源"})
    clients("admin").patch("/registry/enterprises/far", json={"name": "远"})
    town = clients("town").get("/registry/audit", params={"section": "enterprises"}).json()
    assert [(t["actor"], t["key"]) for t in town if t["actor"] != "file"] == [("town", "hengyuan")]
    entry = town[0]
    assert entry["old"]["name"] == "恒源化工" and entry["new"]["name"] == "恒源" and entry["action"] == "replace"
    admin = clients("admin").get("/registry/audit", params={"key": "far"}).json()
    assert admin[0]["actor"] == "admin" and admin[0]["new"]["name"] == "远"
    assert clients("zhang").get("/registry/audit").status_code == 403


def enterprises_csv(rows: list[str]) -> bytes:
    return ("企业编号,企业名称,所属网格,牵头部门\n" + "\n".join(rows) + "\n").encode()


def test_import_over_http_is_all_or_nothing(server: ApiServer, clients):
    admin = clients("admin")
    version = server.gw.registry.version
    good = [f"e{i},企业{i},{G1},yjj" for i in range(20)]
    bad = good[:7] + ["e7,企业7,no-such-grid,yjj"] + good[8:]
    r = admin.post("/registry/import", params={"filename": "enterprises.csv"}, content=enterprises_csv(bad),
                   headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    assert r.json()["detail"] == ["row 9, column 所属网格 (grid): grid 'no-such-grid' does not exist"]
    assert server.gw.registry.version == version and "e0" not in server.gw.registry.enterprises
    r = admin.post("/registry/import", params={"filename": "enterprises.csv", "dry_run": "true"},
                   content=enterprises_csv(good), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["created"] == {"enterprises": 20} and r.json()["dry_run"]
    assert server.gw.registry.version == version
    r = admin.post("/registry/import", params={"filename": "enterprises.csv"}, content=enterprises_csv(good),
                   headers={"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["version"] == version + 1
    assert server.gw.registry.enterprises["e19"].name == "企业19"
    # a supervisor imports only within its area
    far = enterprises_csv([f"x1,远,{G3},market"])
    r = clients("town").post("/registry/import", params={"filename": "e.csv"}, content=far)
    assert r.status_code == 403
    # the export reads back as what was imported
    csv = admin.get("/registry/export", params={"kind": "enterprises"})
    assert csv.status_code == 200 and "恒源化工" in csv.content.decode("utf-8-sig")
    r = admin.post("/registry/import", params={"filename": "enterprises.csv", "dry_run": "true"},
                   content=csv.content)
    assert r.json()["created"] == {} and r.json()["replaced"] == {} and r.json()["unchanged"] == 23


def test_a_large_import_needs_credentials(server: ApiServer, clients):
    body = enterprises_csv([f"e{i},企业{i},{G1},yjj" for i in range(3000)])  # over the 64 KiB max_body
    assert len(body) > 64 * 1024
    r = httpx.post(f"{server.base}/registry/import", params={"filename": "e.csv"}, content=body)
    assert r.status_code == 413
    r = clients("admin").post("/registry/import", params={"filename": "e.csv", "dry_run": "true"}, content=body)
    assert r.status_code == 200 and r.json()["created"] == {"enterprises": 3000}


def test_an_officer_put_in_a_grid_gets_its_open_alarms(server: ApiServer, clients):
    alarm = server.raise_alarm("hengyuan/gas/ch4")

    def ids(user: str) -> set[int]:
        return {a["id"] for a in clients(user).get("/alarms").json()}

    assert alarm["id"] in ids("zhang") and alarm["id"] not in ids("wang")
    r = clients("admin").patch(f"/registry/grids/{G1}", json={"officers": ["wang"]})
    assert r.status_code == 200, r.text
    assert alarm["id"] in ids("wang") and alarm["id"] not in ids("zhang")
    assert clients("zhang").get(f"/alarms/{alarm['id']}").status_code == 404
    assert clients("wang").post(f"/alarms/{alarm['id']}/ack", json={"note": "on my way"}).status_code == 200
