"""The alarm-management API over HTTP against a real gateway and uvicorn: filters, shelving,
maintenance, public reports and their case flow, and the refusals (403, 404, 409, 422, 429)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import wait_for
from tests.server import G1, G2, ApiServer, make_config


@pytest.fixture
def server_config() -> dict[str, Any]:
    cfg = make_config()
    cfg["api"] = {"reports_per_hour": 3}
    return cfg


def ids(r: httpx.Response) -> list[int]:
    assert r.status_code == 200, r.text
    return [a["id"] for a in r.json()]


def test_alarm_filters(server: ApiServer) -> None:
    gas = server.raise_alarm("hengyuan/gas/ch4", 30.0)  # high: medium priority
    hot = server.raise_alarm("hengyuan/gas/t1", 75.0)  # temperature high
    hh = server.raise_alarm("hengyuan/gas/ch4b", 70.0)  # high-high: high priority
    other = server.raise_alarm("shimen/gas/ch4", 30.0)
    with server.client("zhang") as c, server.client("admin") as admin:
        assert ids(c.get("/alarms")) == [hh["id"], hot["id"], gas["id"]]
        assert ids(c.get("/alarms", params={"level": "high_high"})) == [hh["id"]]
        assert ids(c.get("/alarms", params={"priority": "high"})) == [hh["id"]]
        assert ids(c.get("/alarms", params={"sensor": "hengyuan/gas/t1"})) == [hot["id"]]
        assert ids(c.get("/alarms", params={"kind": "fault"})) == []
        assert ids(c.get("/alarms", params={"case": "open_cases", "state": "active"})) == [hh["id"], hot["id"],
                                                                                           gas["id"]]
        assert ids(admin.get("/alarms", params={"enterprise": "shimen"})) == [other["id"]]
        assert ids(c.get("/alarms", params={"until": str(gas["updated_at"])})) == [gas["id"]]
        for bad in ({"state": "sleeping"}, {"case": "lost"}, {"priority": "urgent"}, {"until": "yesterday"}):
            r = c.get("/alarms", params=bad)
            assert r.status_code == 422, (bad, r.text)
        assert c.get("/alarms", params={"enterprise": "shimen"}).status_code == 404
    admin = {"Authorization": f"Bearer {server.token('admin')}"}
    rejected = httpx.get(f"{server.base}/healthz", headers=admin).json()["pipeline"]["rejected"]
    assert rejected["api:http_422"] == 4 and rejected["api:http_404"] == 1  # refused requests are counted


def test_shelving_over_http(server: ApiServer) -> None:
    gas = server.raise_alarm("hengyuan/gas/ch4", 30.0)
    with server.client("zhang") as c, server.client("shimen") as ent:
        path = f"/alarms/{gas['id']}/shelve"
        assert c.post(path, json={"minutes": 10}).status_code == 422  # a reason is required
        assert c.post(path, json={"reason": "x", "minutes": 10, "until": 1}).status_code == 422
        r = c.post(path, json={"reason": "calibration gas test", "minutes": 9 * 60})
        assert r.status_code == 409 and "at most 8 h" in r.json()["detail"]
        assert ent.post(path, json={"reason": "hide it", "minutes": 5}).status_code == 403
        r = c.post(path, json={"reason": "calibration gas test", "minutes": 30})
        assert r.status_code == 200, r.text
        assert r.json()["alarm"]["state"] == "shelved" and r.json()["alarm"]["shelved_until"] is not None
        assert ids(c.get("/alarms", params={"state": "hidden"})) == [gas["id"]]
        server.submit({"hengyuan/gas/ch4": 0.0})  # cleared while shelved: recorded, still shelved
        wait_for(lambda: not server.gw.book.get(gas["id"]).in_alarm, what="the clear recorded")
        assert server.gw.book.get(gas["id"]).state == "shelved"
        assert c.post(f"/alarms/{gas['id']}/ack", json={}).status_code == 409
        r = c.post(f"/alarms/{gas['id']}/unshelve", json={"note": "test over"})
        assert r.status_code == 200 and r.json()["alarm"]["state"] == "normal"  # by the condition
        history = [h["type"] for h in c.get(f"/alarms/{gas['id']}").json()["history"]]
        assert history == ["raised", "shelved", "cleared", "unshelved"]


def test_device_maintenance_takes_alarms_out_of_service(server: ApiServer) -> None:
    before = server.raise_alarm("shimen/gas/ch4", 30.0)
    with server.client("shimen") as ent, server.client("wang") as wang:
        assert ent.post("/devices/hengyuan/gas/maintenance", json={"note": "x"}).status_code == 404
        assert ent.post("/devices/shimen/gas/maintenance", json={}).status_code == 422  # a note is required
        r = ent.post("/devices/shimen/gas/maintenance", json={"note": "detector calibration", "minutes": 60})
        assert r.status_code == 200, r.text
        got = [(e["type"], e["alarm"]["id"], e["alarm"]["level"]) for e in r.json()["events"]]
        assert got[0] == ("out_of_service", before["id"], "high")
        assert got[1][0::2] == ("out_of_service", "maintenance")  # the device's own, pushed record
        record = got[1][1]
        assert wang.get("/devices/shimen/gas/maintenance").json()["in_maintenance"] is True
        during = server.raise_alarm("shimen/gas/ch4b", 30.0)
        assert during["state"] == "out_of_service"
        latest = {s["sensor_id"]: s["state"] for s in wang.get("/sensors/latest").json()}
        assert latest["shimen/gas/ch4b"] == "out_of_service"
        r = wang.post("/devices/shimen/gas/maintenance/end", json={"note": "calibrated"})
        assert r.status_code == 200, r.text
        back = {e["alarm"]["id"]: e["alarm"]["state"] for e in r.json()["events"]}
        assert back == {before["id"]: "unacknowledged", during["id"]: "unacknowledged", record: "normal"}
        recipients = [h["recipients"] for h in wang.get(f"/alarms/{record}").json()["history"]]
        assert recipients == [["wang"], ["wang"]]
        assert wang.post("/devices/shimen/gas/maintenance/end", json={}).status_code == 409


def test_public_report_is_routed_and_handled_as_a_case(server: ApiServer) -> None:
    anon = httpx.Client(base_url=server.base, timeout=10)
    r = anon.post("/reports", json={"enterprise": "hengyuan", "text": "厂区东门有刺鼻气味",
                                    "contact": "13900000000"})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    r = anon.post("/reports", json={"grid": G2, "text": "路边有化工桶漏液", "location": "石门村村口桥下"})
    assert r.status_code == 201
    g2 = r.json()["id"]
    assert anon.post("/reports", json={"text": "somewhere"}).status_code == 422
    assert anon.post("/reports", json={"grid": G2, "text": "no place"}).status_code == 422
    assert anon.post("/reports", json={"enterprise": "nowhere", "text": "x"}).status_code == 404
    assert anon.post("/reports", json={"enterprise": "hengyuan", "grid": G2, "text": "x"}).status_code == 400
    r = anon.post("/reports", json={"enterprise": "hengyuan", "text": "third"})  # the limit is 3 an hour
    assert r.status_code == 201
    r = anon.post("/reports", json={"enterprise": "hengyuan", "text": "fourth"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 3000
    with server.client("zhang") as zhang, server.client("wang") as wang, server.client("fire") as fire:
        mine = zhang.get(f"/alarms/{rid}").json()
        assert (mine["kind"], mine["grid"], mine["state"]) == ("report", G1, "unacknowledged")
        assert (mine["report"]["location"], mine["report"]["contact"]) == (None, "13900000000")
        # the third report was about the same enterprise: one more on its open report alarm
        assert mine["value"] == 2 and [(h["type"], h["note"]) for h in mine["history"]][1] == ("reported", "third")
        assert [m["contact"] for m in mine["report"]["more"]] == [None]
        assert mine["history"][0]["recipients"] == ["zhang"]
        assert zhang.get(f"/alarms/{g2}").status_code == 404  # another grid's report
        assert wang.get(f"/alarms/{g2}").json()["report"]["location"] == "石门村村口桥下"
        assert fire.get(f"/alarms/{g2}").status_code == 404  # a grid-only report is the grid's
        assert fire.get(f"/alarms/{rid}").status_code == 200  # fire cooperates on hengyuan
        # the officer goes, finds the cause, handles it on the spot and closes
        assert zhang.post(f"/alarms/{rid}/resolve", json={}).status_code == 422  # a note is required
        r = zhang.post(f"/alarms/{rid}/resolve", json={"note": "污水池清淤，已通风"})
        assert r.status_code == 200 and [e["type"] for e in r.json()["events"]] == ["resolved", "cleared"]
        r = zhang.post(f"/alarms/{rid}/close", json={"note": "x"})
        assert r.status_code == 409  # cleared but never acknowledged
        assert zhang.post(f"/alarms/{rid}/ack", json={"note": "on site"}).status_code == 200
        r = zhang.post(f"/alarms/{rid}/close", json={"note": "结案"})
        assert r.status_code == 200 and r.json()["alarm"]["case"] == "closed"
    anon.close()
