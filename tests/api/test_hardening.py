"""The API under bad and hostile input (issue 10, hardening): the body limit before parsing, strict
JSON, 422s that never echo, every time and number bounded, health detail behind a login and in
scope, metrics behind a token, X-Forwarded-For only from trusted proxies, security headers, the
maintenance cap. Against a real gateway and uvicorn (:class:`tests.server.ApiServer`).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.guard import client_address
from api.routes.health import scoped_health
from api.scope import scope_of
from gateway.config import parse_config
from gateway.registry import Registry
from tests.server import G1, ApiServer, make_config

METRICS_TOKEN = "scrape-me-please-0123456789"


@pytest.fixture
def server_config() -> dict[str, Any]:
    cfg = make_config()
    cfg["api"] = {"reports_per_hour": 2, "metrics_token": METRICS_TOKEN, "trusted_proxies": ["127.0.0.0/8"]}
    return cfg


def raw_http(server: ApiServer, head: str, chunks: list[bytes] = ()) -> bytes:
    """Send a request by hand (headers, then ``chunks`` as they are) and read the answer until the
    server closes the connection (it does after a 413: the body was left unread)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for chunk in chunks:
            sock.sendall(chunk)
        answer = b""
        while data := sock.recv(65536):
            answer += data
        return answer


def test_a_body_over_the_limit_is_413_before_it_is_read(server: ApiServer) -> None:
    # 30 MB announced and never sent: the answer comes at once, so nothing waited for the body
    answer = raw_http(server, "POST /api/v1/reports HTTP/1.1\nHost: x\nContent-Type: application/json\n"
                              "Content-Length: 31457280\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"max_body" in answer and b"nosniff" in answer
    # chunked: counted as it streams, refused once past 64 KiB
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    answer = raw_http(server, "POST /api/v1/reports HTTP/1.1\nHost: x\nContent-Type: application/json\n"
                              "Transfer-Encoding: chunked\n", [chunk] * 65)  # 65 KiB: just over
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    ok = httpx.post(f"{server.base}/reports", content=iter([b'{"enterprise": "hengyuan",', b' "text": "smell"}']),
                    headers={"Content-Type": "application/json"})
    assert ok.status_code == 201, ok.text  # chunked and under the limit: read whole, then parsed
    rejected = server.gw.intake.rejects.snapshot()
    assert rejected["api:http_413"] == 2


BAD_SHELVES = [
    b'{"reason": "x", "minutes": NaN}',
    b'{"reason": "x", "minutes": Infinity}',
    b'{"reason": "x", "minutes": -Infinity}',
    b'{"reason": "\\ud800", "minutes": 5}',
    b'{"reason": "x", "minutes": 1' + b"0" * 400 + b"}",
    b'{"reason": "x", "minutes": 1e308}',
    b'{"reason": "x", "minutes": 5, "' + b"k" * 50_000 + b'": 1}',
    b'{"reason": "' + b"r" * 50_000 + b'", "minutes": 5}',
    b'{"reason": "x", "until": 9' + b"9" * 30 + b"}",
    b'{"reason": "x", "until": "9999-12-31T00:00:00Z"}',
    b'{"reason": "x", "until": 9300000000000}',
    b"[" * 2000,
]


def test_bad_json_is_a_short_422_without_the_input(server: ApiServer) -> None:
    alarm = server.raise_alarm("hengyuan/gas/ch4")
    with server.client("zhang") as c:
        for body in BAD_SHELVES:
            r = c.post(f"/alarms/{alarm['id']}/shelve", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (body[:60], r.text)
            # at most a short excerpt of a key the caller sent (64 characters), never a value
            assert len(r.content) < 1000 and b"k" * 65 not in r.content and b"rrrrrrrr" not in r.content
            assert all(set(e) == {"loc", "msg", "type"} for e in r.json()["detail"])
        assert server.gw.book.get(alarm["id"]).state == "unacknowledged"


def test_the_public_report_refuses_nan_and_surrogates_too(server: ApiServer) -> None:
    for body in (b'{"enterprise": "hengyuan", "text": NaN}', b'{"enterprise": "hengyuan", "text": "\\udfff"}'):
        r = httpx.post(f"{server.base}/reports", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid", r.text


BAD_READINGS = [
    {"end": "9300000000000"},
    {"end": "9999-01-01T00:00:00Z"},
    {"start": "2262-06-01T00:00:00+00:00"},
    {"start": "0001-01-01T00:00:00+14:00"},
    {"end": "1" * 400},
    {"every": "1" * 400, "agg": "mean"},
    {"every": "1e308", "agg": "mean"},
    {"every": "99999999999d", "agg": "mean"},
]


def test_times_and_widths_storage_cannot_hold_are_422(server: ApiServer) -> None:
    with server.client("zhang") as c:
        for params in BAD_READINGS:
            r = c.get("/sensors/hengyuan/gas/ch4/readings", params=params)
            assert r.status_code == 422, (params, r.text)
            assert c.get("/alarms", params={"since": params.get("end", params.get("start", "x"))}).status_code == 422
        assert c.get("/stats/alarms", params={"end": "9999-01-01T00:00:00Z"}).status_code == 422
    with server.client("admin") as c:  # the last time storage holds is fine
        r = c.get("/sensors/hengyuan/gas/ch4/readings", params={"start": "2261-12-31T00:00:00Z",
                                                                 "end": "2262-01-01T00:00:00Z"})
        assert r.status_code == 200, r.text


def test_maintenance_ends_within_30_days_whatever_is_asked(server: ApiServer) -> None:
    path = "/devices/hengyuan/gas/maintenance"
    with server.client("zhang") as c:
        for body in ({"note": "x", "until": "9999-12-31T00:00:00Z"}, {"note": "x", "until": 253402300799999},
                     {"note": "x", "minutes": 31 * 24 * 60}, {"note": "x", "minutes": 1e308}):
            r = c.post(path, json=body)
            assert r.status_code == 422, (body, r.text)
        now = server.gw.clock.now_ns() // 1_000_000
        r = c.post(path, json={"note": "no end given"})
        assert r.status_code == 200, r.text
        assert 0 <= r.json()["until"] - (now + 30 * 86_400_000) < 60_000
        assert c.get(path).json()["until"] == r.json()["until"]


def test_healthz_says_up_or_down_to_anyone_and_the_detail_in_scope(server: ApiServer) -> None:
    now = server.gw.clock.now_ns() // 1_000_000
    for ent in ("hengyuan", "far"):
        server.gw.book.set_maintenance(server.gw.registry.device(ent, "gas"), "admin", "calibration", now)
    assert httpx.get(f"{server.base}/healthz").json() == {"status": "ok"}
    r = httpx.get(f"{server.base}/healthz", headers={"Authorization": "Bearer forged.token"})
    assert r.status_code == 401
    with server.client("admin") as admin, server.client("zhang") as zhang, server.client("shimen") as shimen:
        full = admin.get("/healthz").json()
        assert full["status"] == "ok" and full["alarms"]["in_maintenance"] == ["far/gas", "hengyuan/gas"]
        assert "pipeline" in full and "evaluation" in full
        mine = zhang.get("/healthz").json()
        assert mine["alarms"]["in_maintenance"] == ["hengyuan/gas"]
        assert not {"pipeline", "evaluation", "notifiers", "live"} & set(mine)
        assert shimen.get("/healthz").json()["alarms"]["in_maintenance"] == []


def test_scoped_health_keeps_only_the_devices_in_scope() -> None:
    health = {"gateway": "gw", "storage": {"outbox": {"losing": False},
                                           "sinks": {"sqlite": {"state": "failing", "last_error": "disk"}}},
              "collectors": {"modbus": {"hengyuan/gas": {"online": True, "last_error": "exception 2 at 40001"},
                                        "far/gas": {"online": False, "last_error": "timeout at 40001"}},
                             "mqtt": {"connected": True, "messages": 10, "last_error": "far/x: not json"}},
              "alarms": {"flooding": [G1, "elsewhere"], "in_maintenance": ["far/gas", "hengyuan/gas"]}}
    cfg = parse_config(make_config())
    zhang = next(u for u in cfg.users if u.username == "zhang")
    view = scoped_health(health, scope_of(Registry(cfg), zhang))
    assert view == {"status": "degraded", "gateway": "gw", "storage": {"sinks": {"sqlite": {"state": "failing"}}},
                    "collectors": {"modbus": {"hengyuan/gas": health["collectors"]["modbus"]["hengyuan/gas"]},
                                   "mqtt": {"connected": True}},
                    "alarms": {"flooding": [G1], "in_maintenance": ["hengyuan/gas"]}}


def test_metrics_need_the_metrics_token_or_an_admin(server: ApiServer) -> None:
    url = f"{server.base}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {server.token('zhang')}"}).status_code == 403
    for token in (METRICS_TOKEN, server.token("admin")):
        r = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and "gridgate_readings_evaluated_total" in r.text


def test_forwarded_for_is_believed_from_a_trusted_proxy_only(server: ApiServer, tmp_path: Path) -> None:
    def report(base: str, forwarded_for: str) -> int:
        return httpx.post(f"{base}/reports", json={"enterprise": "hengyuan", "text": "smell"},
                          headers={"X-Forwarded-For": forwarded_for}).status_code

    # this server trusts 127.0.0.0/8, where the test connects from: each forwarded address has its own limit
    assert [report(server.base, f"203.0.113.{i}") for i in range(1, 6)] == [201] * 5
    assert [report(server.base, "10.9.9.9, 203.0.113.7") for _ in range(3)] == [201, 201, 429]
    # one that trusts nobody: rotating the header buys nothing
    cfg = make_config()
    cfg["api"] = {"reports_per_hour": 2}
    with ApiServer(tmp_path / "untrusting", cfg) as plain:
        assert [report(plain.base, f"203.0.113.{i}") for i in range(1, 4)] == [201, 201, 429]


def test_client_address_walks_the_header_from_the_right() -> None:
    from ipaddress import ip_network
    proxies = [ip_network("10.0.0.0/8")]
    assert client_address("10.0.0.1", ["198.51.100.1, 10.0.0.2"], proxies) == "198.51.100.1"
    assert client_address("10.0.0.1", ["1.1.1.1, 198.51.100.1, 10.0.0.2"], proxies) == "198.51.100.1"
    assert client_address("10.0.0.1", ["1.1.1.1", "198.51.100.1"], proxies) == "198.51.100.1"
    assert client_address("10.0.0.1", ["garbage, 10.0.0.2"], proxies) == "10.0.0.2"
    assert client_address("10.0.0.1", [], proxies) == "10.0.0.1"
    assert client_address("198.51.100.9", ["1.1.1.1"], proxies) == "198.51.100.9"  # not a proxy of ours
    assert client_address("10.0.0.1", ["1.1.1.1"], []) == "10.0.0.1"


def test_security_headers_on_every_response(server: ApiServer) -> None:
    root = f"http://127.0.0.1:{server.port}"
    for url in (f"{root}/", f"{root}/console", f"{server.base}/alarms", f"{server.base}/healthz",
                f"{server.base}/openapi.json", f"{server.base}/docs", f"{root}/nowhere"):
        r = httpx.get(url)
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer", url
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], url
    console = httpx.get(f"{root}/console").headers["content-security-policy"]
    assert "'unsafe-inline'" not in console and "script-src 'sha256-" in console
    assert httpx.get(f"{server.base}/alarms").headers["content-security-policy"].startswith("default-src 'none'")
