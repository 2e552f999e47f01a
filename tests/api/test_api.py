"""The HTTP API against a real gateway pipeline and uvicorn (:class:`tests.server.ApiServer`):
logins, scoping, alarms, sensors, health."""

from __future__ import annotations

import time
from typing import Any

import httpx

from api.cursor import EventCursor
from gateway.accounts.passwords import HashParams, verify
from gateway.accounts.tokens import TokenSigner
from tests.helpers import wait_for
from tests.server import G1, G2, ApiServer


def test_password_hash_roundtrip():
    h = HashParams(1024, 1).hasher().hash("秘密 secret")
    assert h.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert verify(h, "秘密 secret")
    assert not verify(h, "wrong")
    assert not verify("not a hash", "x")


def test_login_ok_and_refused(server: ApiServer):
    r = httpx.post(f"{server.base}/auth/token", data={"username": "zhang", "password": "zhang"})
    assert r.status_code == 200
    assert r.json()["token_type"] == "bearer" and r.json()["access_token"]
    for form in ({"username": "zhang", "password": "nope"}, {"username": "ghost", "password": "ghost"}):
        r = httpx.post(f"{server.base}/auth/token", data=form)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"detail": "wrong username or password"}
    assert httpx.post(f"{server.base}/auth/token", data={"username": "zhang"}).status_code == 422

    now = int(time.time())
    sid = server.gw.accounts.store.session  # a session that exists, so only the claim at fault is
    ours, theirs = TokenSigner(server.gw.secret), TokenSigner(b"another secret of 32 bytes or more")
    login = httpx.post(f"{server.base}/auth/token", data={"username": "zhang", "password": "zhang"}).json()
    claims = ours.read(login["access_token"], "access", now)
    assert sid(claims.sid) is not None
    expired = ours.issue("access", "zhang", claims.sid, 0, now - 7200, 3600)[0]
    forged = theirs.issue("access", "zhang", claims.sid, 0, now, 3600)[0]
    gone = ours.issue("access", "nobody", claims.sid, 0, now, 3600)[0]
    old_version = ours.issue("access", "zhang", claims.sid, 7, now, 3600)[0]
    no_session = ours.issue("access", "zhang", "no-such-session", 0, now, 3600)[0]
    refresh = login["refresh_token"]
    assert httpx.get(f"{server.base}/me", headers={"Authorization": f"Bearer {login['access_token']}"}).is_success
    for bad in (None, "garbage", "a.b", expired, forged, gone, old_version, no_session, refresh,
                server.token("zhang")[:-3] + "AAA"):
        headers = {} if bad is None else {"Authorization": f"Bearer {bad}"}
        r = httpx.get(f"{server.base}/me", headers=headers)
        assert r.status_code == 401, bad
        assert r.headers["www-authenticate"] == "Bearer"


def test_me_shows_role_and_scope(server: ApiServer):
    def me(user: str) -> dict[str, Any]:
        with server.client(user) as c:
            return c.get("/me").json()

    z = me("zhang")
    assert (z["username"], z["role"], z["all"]) == ("zhang", "officer", False)
    assert z["acts_as"] == {"officer": "zhang"}
    assert [g["id"] for g in z["grids"]] == [G1]
    assert [e["id"] for e in z["enterprises"]] == ["hengyuan"]
    town = me("town")
    assert [g["id"] for g in town["grids"]] == [G1, G2]
    assert [e["id"] for e in town["enterprises"]] == ["hengyuan", "shimen"]
    assert [e["id"] for e in me("fire")["enterprises"]] == ["far", "hengyuan"]
    assert [e["id"] for e in me("shimen")["enterprises"]] == ["shimen"]
    admin = me("admin")
    assert admin["all"] is True and len(admin["enterprises"]) == 3


def test_alarm_outside_scope_does_not_exist(server: ApiServer):
    alarm = server.raise_alarm("hengyuan/gas/ch4")
    with server.client("zhang") as zhang, server.client("wang") as wang, server.client("town") as town:
        assert [a["id"] for a in zhang.get("/alarms").json()] == [alarm["id"]]
        assert [a["id"] for a in town.get("/alarms").json()] == [alarm["id"]]
        assert wang.get("/alarms").json() == []
        assert zhang.get(f"/alarms/{alarm['id']}").status_code == 200
        for r in (wang.get(f"/alarms/{alarm['id']}"),
                  wang.post(f"/alarms/{alarm['id']}/ack", json={"note": "x"}),
                  wang.get("/alarms", params={"enterprise": "hengyuan"}),
                  wang.get("/alarms", params={"grid": G1}),
                  wang.get("/sensors/latest", params={"enterprise": "hengyuan"}),
                  wang.get("/sensors/hengyuan/gas/ch4/readings")):
            assert r.status_code == 404, r.request.url
            assert "detail" in r.json()
        assert zhang.get("/alarms", params={"grid": G1, "state": "active"}).json()[0]["id"] == alarm["id"]
        assert zhang.get("/alarms", params={"state": "normal"}).json() == []
        head = EventCursor(server.gw.secret).decode(wang.get("/alarms").headers["X-Last-Event-Id"])
        assert head == server.gw.book.last_event_id() >= 1
    with server.client("admin") as admin:
        assert admin.get("/alarms/999999").status_code == 404
        assert admin.get("/alarms", params={"enterprise": "nope"}).status_code == 404


def test_ack_is_audited_and_double_ack_conflicts(server: ApiServer):
    alarm = server.raise_alarm("hengyuan/gas/ch4")
    with server.client("zhang") as zhang:
        r = zhang.post(f"/alarms/{alarm['id']}/ack", json={"note": "on my way 已到场"})
        assert r.status_code == 200, r.text
        ev = r.json()
        assert (ev["type"], ev["actor"], ev["note"]) == ("acknowledged", "zhang", "on my way 已到场")
        assert ev["alarm"]["state"] == "acknowledged" and ev["alarm"]["acked_by"] == "zhang"
        got = zhang.get(f"/alarms/{alarm['id']}").json()
        assert got["state"] == "acknowledged"
        steps = [(h["type"], h["actor"]) for h in got["history"]]
        assert steps == [("raised", None), ("acknowledged", "zhang")]
        assert got["history"][1]["note"] == "on my way 已到场"
        r = zhang.post(f"/alarms/{alarm['id']}/ack", json={"note": "again"})
        assert r.status_code == 409
        assert "nothing to acknowledge" in r.json()["detail"]
        assert zhang.post(f"/alarms/{alarm['id']}/ack").status_code == 409  # the body is optional
    own = server.raise_alarm("shimen/gas/ch4")
    with server.client("shimen") as ent:
        assert ent.get(f"/alarms/{own['id']}").status_code == 200
        assert ent.post(f"/alarms/{own['id']}/ack", json={"note": ""}).status_code == 403


BAD_PARAMS = [
    ("/alarms?limit=0", 422), ("/alarms?limit=abc", 422), ("/alarms?limit=100000", 422),
    ("/alarms?offset=-1", 422), ("/alarms?state=bogus", 422), ("/alarms?since=yesterday", 422),
    ("/alarms?since=2024-05-01T08:00:00", 422), ("/alarms?since=99999999999999999", 422),
    ("/alarms/abc", 422), ("/alarms/0", 422), ("/alarms/99999999999999999999", 422),
    ("/sensors/latest?grid=nope", 404), ("/sensors/hengyuan/gas/nope/readings", 404),
    ("/sensors/hengyuan/gas/ch4/readings?start=2000&end=1000", 400),
    ("/sensors/hengyuan/gas/ch4/readings?start=tomorrow", 422),
    ("/sensors/hengyuan/gas/ch4/readings?every=10x", 422),
    ("/sensors/hengyuan/gas/ch4/readings?every=0", 422),
    ("/sensors/hengyuan/gas/ch4/readings?every=10s&agg=median", 422),
    ("/sensors/hengyuan/gas/ch4/readings?agg=mean", 400),
    ("/sensors/hengyuan/gas/ch4/readings?every=1ms", 400),
]


def test_bad_parameters_are_4xx_never_500(server: ApiServer):
    alarm = server.raise_alarm("hengyuan/gas/ch4")
    with server.client("admin") as admin:
        for path, code in BAD_PARAMS:
            r = admin.get(path)
            assert r.status_code == code, (path, r.status_code, r.text)
            assert "detail" in r.json()
        for body in ({"note": 5}, {"note": "x", "extra": 1}, {"note": "x" * 2001}):
            assert admin.post(f"/alarms/{alarm['id']}/ack", json=body).status_code == 422, body
        r = admin.post(f"/alarms/{alarm['id']}/ack", content=b"{not json",
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        assert admin.get("/alarms", params={"since": "2024-05-01T08:00:00+08:00"}).status_code == 200
        assert admin.get("/alarms", params={"since": str(alarm["raised_at"] + 1)}).json() == []
        assert len(admin.get("/alarms", params={"since": str(alarm["raised_at"])}).json()) == 1


def test_readings_raw_and_aggregated(server: ApiServer):
    sid = "far/gas/t1"
    t0_ms = (time.time_ns() // 1_000_000 - 600_000) // 10_000 * 10_000  # 10 min ago, on a 10 s boundary
    server.submit_series(sid, [(t0_ms + i * 1000) * 1_000_000 for i in range(60)],
                         [float(i) for i in range(60)])
    wait_for(lambda: server.gw.store.count(sid) == 60, what="60 stored readings")
    with server.client("fire") as c:
        raw = c.get(f"/sensors/{sid}/readings", params={"start": t0_ms, "end": t0_ms + 59_000}).json()
        assert (raw["sensor_id"], raw["unit"], raw["truncated"]) == (sid, "°C", False)
        assert [p["ts"] for p in raw["points"]] == [t0_ms + i * 1000 for i in range(60)]
        assert [p["value"] for p in raw["points"]] == [float(i) for i in range(60)]
        assert raw["points"][0]["quality"] == "good"
        assert len(c.get(f"/sensors/{sid}/readings").json()["points"]) == 60  # default: the last hour
        mean = c.get(f"/sensors/{sid}/readings",
                     params={"start": t0_ms, "end": t0_ms + 59_999, "every": "10s", "agg": "mean"}).json()
        assert [p["ts"] for p in mean["points"]] == [t0_ms + k * 10_000 for k in range(6)]
        assert [p["value"] for p in mean["points"]] == [10 * k + 4.5 for k in range(6)]
        mx = c.get(f"/sensors/{sid}/readings", params={"start": t0_ms, "end": t0_ms + 59_999, "every": "1m",
                                                      "agg": "max"}).json()
        assert sum(p["value"] == 59.0 for p in mx["points"]) == 1
        start_iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t0_ms / 1000 + 30))
        iso = c.get(f"/sensors/{sid}/readings", params={"start": start_iso, "every": 10}).json()
        assert len(iso["points"]) == 3


def test_latest_values_and_states(server: ApiServer):
    with server.client("zhang") as zhang:
        rows = zhang.get("/sensors/latest").json()
        assert {r["sensor_id"].split("/")[0] for r in rows} == {"hengyuan"}
        t1 = next(r for r in rows if r["sensor_id"] == "hengyuan/gas/t1")
        assert t1 == {"sensor_id": "hengyuan/gas/t1", "value": None, "ts": None, "unit": "°C",
                      "state": "no_data"}
        ts_ns = time.time_ns()
        server.submit({"hengyuan/gas/t1": 65.0, "hengyuan/gas/ch4": 3.0}, ts_ns=ts_ns)
        wait_for(lambda: server.gw.evaluated >= 2, what="the readings evaluated")
        rows = {r["sensor_id"]: r for r in zhang.get("/sensors/latest", params={"grid": G1}).json()}
        assert rows["hengyuan/gas/t1"] == {"sensor_id": "hengyuan/gas/t1", "value": 65.0,
                                           "ts": ts_ns // 1_000_000, "unit": "°C", "state": "high"}
        assert rows["hengyuan/gas/ch4"]["state"] == "normal"
        assert zhang.get("/sensors/latest", params={"enterprise": "far"}).status_code == 404
    with server.client("admin") as admin:
        assert len(admin.get("/sensors/latest").json()) == 18


def test_health_metrics_and_console(server: ApiServer):
    server.submit({"far/gas/ch4": 1.0})
    wait_for(lambda: server.gw.evaluated >= 1, what="a reading evaluated")
    admin = {"Authorization": f"Bearer {server.token('admin')}"}
    r = httpx.get(f"{server.base}/healthz", headers=admin)
    assert r.status_code == 200 and r.json()["gateway"] == "test-gw"
    r = httpx.get(f"{server.base}/metrics", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'gridgate_info{gateway="test-gw"} 1.0' in r.text
    assert "# TYPE gridgate_readings_evaluated_total counter\ngridgate_readings_evaluated_total 1.0\n" in r.text
    for path in ("/", "/console"):
        page = httpx.get(f"http://127.0.0.1:{server.port}{path}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "app.js" in page.text  # the console's modules, served from the package
    store = httpx.get(f"http://127.0.0.1:{server.port}/static/store.js")
    assert store.status_code == 200 and "/alarms/live" in store.text and "last_event_id" in store.text
