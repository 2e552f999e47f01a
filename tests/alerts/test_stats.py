"""Alarm statistics: officers' response times and grids' alarm load, on a real book with explicit
times (expected medians and p90s worked out by hand, numpy's linear interpolation), and the
``/stats`` endpoints' scoping and errors through a real gateway and uvicorn."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.book import AlarmBook
from alerts.detector import Detector
from alerts.scope import EVERYTHING, Within
from alerts.stats import (
    TARGETS,
    GridStats,
    OfficerStats,
    Period,
    alarm_stats,
    login_officers,
    officer_stats,
    officers_serving,
    total_stats,
)
from gateway.batch import ReadingBatch
from gateway.config import EscalateAfter
from gateway.registry import Registry
from tests.helpers import CH4, district, mqtt_device
from tests.server import G1 as API_G1
from tests.server import G2 as API_G2
from tests.server import G3 as API_G3
from tests.server import HASHES, ApiServer

T0 = 1_767_225_600_000  # epoch ms
S, MIN, HOUR = 1000, 60_000, 3_600_000
G1, G2 = "43090300100201", "43090300100301"
USERS = [{"username": "u1", "password_hash": HASHES["admin"], "role": "officer", "officer": "o1"},
         {"username": "boss", "password_hash": HASHES["admin"], "role": "admin"}]


@pytest.fixture
def reg() -> Registry:
    e1 = [mqtt_device("e1", f"d{k}", [CH4]) for k in range(6)]
    e2 = [mqtt_device("e2", f"d{k}", [CH4]) for k in (6, 7)]
    return Registry(district(e1 + e2, users=USERS))


@pytest.fixture
def book(tmp_path: Path, reg: Registry) -> AlarmBook:
    return AlarmBook(tmp_path / "a.db", reg)


def offline(book: AlarmBook, ent: str, dev: str, at_ms: int, level: str = "offline") -> int:
    events = book.communication(book.registry.device(ent, dev), False, at_ms * 1_000_000, level, "no answer")
    return events[0].alarm.id


def online(book: AlarmBook, ent: str, dev: str, at_ms: int) -> None:
    book.communication(book.registry.device(ent, dev), True, at_ms * 1_000_000, "offline", "")


def reading(book: AlarmBook, det: Detector, sensor_id: str, value: float, at_ms: int) -> int:
    idx = book.registry.sensor_index(sensor_id)
    return book.apply(det.evaluate(ReadingBatch.of([idx], [at_ms * 1_000_000], [value])))[0].alarm.id


def test_officer_response_times(book: AlarmBook, reg: Registry) -> None:
    ids = [offline(book, "e1", f"d{k}", T0 + k * S) for k in range(5)]
    for k, alarm_id in enumerate(ids):  # acknowledged after 10, 20, 30, 40, 50 s
        book.acknowledge(alarm_id, "u1" if k < 4 else "boss", "", T0 + k * S + (k + 1) * 10 * S)
    for k, delay_s in enumerate((100, 200, 300)):  # closed 100, 200, 300 s after the raise
        online(book, "e1", f"d{k}", T0 + k * S + MIN)
        book.close_case(ids[k], "u1", "verified", T0 + k * S + delay_s * S)
    offline(book, "e2", "d6", T0 + 5 * S)  # o2's, never acknowledged
    after = EscalateAfter(high_high=300, high=900, other=40)  # offline: 40 s
    got = officer_stats(book, ["o1", "o2", "resp"], login_officers(reg.config.users), after, EVERYTHING,
                        Period(T0, T0 + HOUR))
    assert got == [
        # median of 10..50 is 30, p90 is 40 + 0.6 * 10; closes: 200 and 200 + 0.8 * 100; overdue: 40 s and 50 s
        OfficerStats("o1", alarms_received=5, acknowledged=5, median_ack_s=30.0, p90_ack_s=46.0, closed=3,
                     median_close_s=200.0, p90_close_s=280.0, overdue=2, acked_by_them=4),
        OfficerStats("o2", alarms_received=1, overdue=1),  # still unacknowledged at the end
        OfficerStats("resp"),  # escalations are not receipts
    ]


def test_officer_period_is_read_as_of_its_end(book: AlarmBook) -> None:
    a = offline(book, "e1", "d0", T0 - 100 * S)  # acknowledged and cleared before the period...
    book.acknowledge(a, "u1", "", T0 - 90 * S)
    online(book, "e1", "d0", T0 - 80 * S)
    offline(book, "e1", "d0", T0 + 10 * S)  # ...raised again inside it: timed from this raise
    book.acknowledge(a, "u1", "", T0 + 30 * S)  # 20 s
    b = offline(book, "e1", "d1", T0 + S)
    book.acknowledge(b, "u1", "", T0 + HOUR)  # at the end: not seen
    offline(book, "e1", "d2", T0 - S)  # raised before the period only: not received
    d = offline(book, "e1", "d3", T0 + 100 * S)  # raised twice: counted once, from the first raise
    online(book, "e1", "d3", T0 + 110 * S)
    offline(book, "e1", "d3", T0 + 120 * S)
    book.acknowledge(d, "u1", "", T0 + 160 * S)  # 60 s
    e = offline(book, "e1", "d4", T0 + 200 * S)
    book.acknowledge(e, "u1", "", T0 + 250 * S)  # 50 s: exactly the timeout is overdue
    after = EscalateAfter(high_high=300, high=900, other=50)
    [o1] = officer_stats(book, ["o1"], {"u1": "o1"}, after, EVERYTHING, Period(T0, T0 + HOUR))
    # acks 20, 50, 60 s: median 50, p90 50 + 0.8 * 10; overdue: b (never, by the end), d, e
    assert o1 == OfficerStats("o1", alarms_received=4, acknowledged=3, median_ack_s=50.0, p90_ack_s=58.0,
                              overdue=3, acked_by_them=3)


def test_officer_stats_count_only_alarms_in_scope(book: AlarmBook, reg: Registry) -> None:
    offline(book, "e1", "d0", T0 + S)  # to o1, outside the scope below
    offline(book, "e2", "d6", T0 + S)  # to o2
    book.flood(G1, True, T0 + 2 * S, 11, "flood")  # an enterprise-less alarm of g1, to o1
    within = Within(frozenset({"e2"}), frozenset({G1}))
    got = officer_stats(book, ["o1", "o2"], {}, EscalateAfter(), within, Period(T0, T0 + HOUR))
    assert [(s.officer, s.alarms_received) for s in got] == [("o1", 1), ("o2", 1)]
    assert officers_serving(reg, {G2}) == ["o2"]
    assert officers_serving(reg, {G1}) == ["o1", "resp"]
    assert officers_serving(reg, None) == ["o1", "o2", "resp"]
    assert login_officers(reg.config.users) == {"u1": "o1"}


def test_grid_load_rate_mix_floods_chattering(book: AlarmBook, reg: Registry) -> None:
    det = Detector(reg)
    reading(book, det, "e1/d0/ch4", 60.0, T0 + S)  # high-high: high priority
    d1 = reading(book, det, "e1/d1/ch4", 30.0, T0 + 2 * S)  # high: medium
    offline(book, "e1", "d2", T0 + 3 * S)  # offline: medium
    offline(book, "e1", "d3", T0 + 4 * S, level="degraded")  # a level without a priority: low
    online(book, "e1", "d2", T0 + 5 * S)
    offline(book, "e1", "d2", T0 + 6 * S)  # raised again: another annunciation
    book.report(G1, "e1", "a smell of gas", None, None, "test", T0 + 7 * S)  # report: medium
    book.flood(G1, True, T0 + 8 * S, 11, "flood")
    book.flood(G1, False, T0 + 9 * S, 11, "over")
    book.flood(G1, True, T0 + 10 * S, 12, "flood again")  # a second flood, the same alarm
    book.flag_chattering(d1, T0 + 20 * S, "3 cycles")
    old = offline(book, "e1", "d4", T0 - 10 * S)  # before the period: neither raise nor flag counts
    book.flag_chattering(old, T0 - 5 * S, "3 cycles")
    offline(book, "e1", "d5", T0 + HOUR)  # at the end: outside
    offline(book, "e2", "d6", T0 + S)
    period = Period(T0, T0 + HOUR)
    g1, g2 = alarm_stats(book, [G1, G2], EVERYTHING, period)
    kinds = {"process": 2, "fault": 0, "communication": 3, "system": 0, "report": 1}
    assert g1 == GridStats(G1, alarms=6, rate_per_10min=1.0, floods=2, chattering=1, stale=0,
                           priority_mix={"high": 1, "medium": 4, "low": 1},
                           priority_fractions={"high": 1 / 6, "medium": 4 / 6, "low": 1 / 6}, by_kind=kinds)
    assert (g2.alarms, g2.rate_per_10min, g2.floods, g2.priority_mix["medium"]) == (1, 1 / 6, 0, 1)
    total = total_stats([g1, g2], period)
    assert (total.grid, total.alarms, total.rate_per_10min, total.floods, total.chattering) == (None, 7, 7 / 6, 2, 1)
    assert total.priority_mix == {"high": 1, "medium": 5, "low": 1} and total.by_kind["communication"] == 4
    # in the scope of e2 only, g1 shows nothing; a grid with no alarms has null fractions
    g1_e2, _ = alarm_stats(book, [G1, G2], Within(frozenset({"e2"})), period)
    assert (g1_e2.alarms, g1_e2.floods, g1_e2.chattering, g1_e2.rate_per_10min) == (0, 0, 0, 0.0)
    assert g1_e2.priority_fractions == {"high": None, "medium": None, "low": None}
    assert TARGETS["alarms_per_10min"] == 1 and TARGETS["flood_above_alarms_per_10min"] == 10


def test_stale_alarms_are_active_at_the_end_for_more_than_a_day(book: AlarmBook) -> None:
    end = T0 + 48 * HOUR
    offline(book, "e1", "d1", end - 25 * HOUR)  # unacknowledged for 25 h: stale
    acked = offline(book, "e1", "d2", end - 25 * HOUR)  # acknowledged, condition still active: stale
    book.acknowledge(acked, "u1", "", end - 24 * HOUR - 30 * MIN)
    offline(book, "e1", "d3", end - 25 * HOUR)  # cleared before the end (returned, unacknowledged)
    online(book, "e1", "d3", end - 2 * HOUR)
    offline(book, "e1", "d4", end - 24 * HOUR)  # exactly 24 h: not more than a day
    offline(book, "e1", "d5", end - 30 * HOUR)  # cleared, then raised again 2 h before the end
    online(book, "e1", "d5", end - 26 * HOUR)
    offline(book, "e1", "d5", end - 2 * HOUR)
    shelved = offline(book, "e1", "d0", end - 25 * HOUR)  # shelved at the end: not shown, not stale
    book.shelve(shelved, "u1", "known", end + HOUR, end - HOUR)
    offline(book, "e2", "d6", end - 25 * HOUR)  # cleared only after the end: stale as of the end
    online(book, "e2", "d6", end + HOUR)
    closed = offline(book, "e2", "d7", end - 48 * HOUR)  # closed long ago
    book.acknowledge(closed, "u1", "", end - 47 * HOUR)
    online(book, "e2", "d7", end - 47 * HOUR)
    book.close_case(closed, "u1", "ok", end - 47 * HOUR)
    g1, g2 = alarm_stats(book, [G1, G2], EVERYTHING, Period(end - HOUR, end))
    assert (g1.stale, g2.stale) == (2, 1)
    assert g1.alarms == 0  # nothing was raised in the last hour
    # two hours on: d4 has passed a day too, and e2's alarm has cleared
    assert [g.stale for g in alarm_stats(book, [G1, G2], EVERYTHING, Period(end, end + 2 * HOUR))] == [3, 0]


def test_period_must_not_be_empty() -> None:
    with pytest.raises(ValueError):
        Period(T0, T0)


# -- through the API ------------------------------------------------------------------------------


def test_stats_api_scoping(server: ApiServer) -> None:  # noqa: F811
    alarm = server.raise_alarm("hengyuan/gas/ch4")  # grid 1: zhang
    server.raise_alarm("shimen/gas/ch4")  # grid 2: wang
    with server.client("zhang") as zhang:
        assert zhang.post(f"/alarms/{alarm['id']}/ack", json={"note": "on my way"}).status_code == 200
        body = zhang.get("/stats/officers").json()
        assert body["end"] - body["start"] == 7 * 86_400_000
        [z] = body["officers"]
        assert (z["officer"], z["name"], z["alarms_received"], z["acknowledged"], z["acked_by_them"]) == \
            ("zhang", "zhang", 1, 1, 1)
        assert (z["overdue"], z["closed"], z["median_close_s"]) == (0, 0, None)
        assert 0 <= z["median_ack_s"] == z["p90_ack_s"] < 60
        load = zhang.get("/stats/alarms").json()
        assert [g["grid"] for g in load["grids"]] == [API_G1]
        assert load["grids"][0]["alarms"] == 1 and load["grids"][0]["priority_mix"] == {
            "high": 0, "medium": 1, "low": 0}
        assert load["total"]["alarms"] == 1 and "grid" not in load["total"]
        assert load["targets"]["priority_mix"] == {"high": 0.05, "medium": 0.15, "low": 0.8}
        assert zhang.get("/stats/alarms", params={"grid": API_G2}).status_code == 404
        assert zhang.get("/stats/alarms", params={"grid": API_G1}).json()["grids"][0]["alarms"] == 1
    with server.client("town") as town:
        assert [o["officer"] for o in town.get("/stats/officers").json()["officers"]] == ["zhang", "wang"]
        assert [(g["grid"], g["alarms"]) for g in town.get("/stats/alarms").json()["grids"]] == [
            (API_G1, 1), (API_G2, 1)]
    with server.client("admin") as admin:
        officers = admin.get("/stats/officers").json()["officers"]
        assert [(o["officer"], o["alarms_received"]) for o in officers] == [("zhang", 1), ("wang", 1), ("li", 0)]
        load = admin.get("/stats/alarms").json()
        assert [g["grid"] for g in load["grids"]] == [API_G1, API_G2, API_G3] and load["total"]["alarms"] == 2
    with server.client("shimen") as ent, server.client("fire") as dept:
        assert ent.get("/stats/officers").status_code == 403
        assert dept.get("/stats/officers").status_code == 403
        assert [(g["grid"], g["alarms"]) for g in ent.get("/stats/alarms").json()["grids"]] == [(API_G2, 1)]
        assert [(g["grid"], g["alarms"]) for g in dept.get("/stats/alarms").json()["grids"]] == [
            (API_G1, 1), (API_G3, 0)]


BAD_TIMES = [
    ("start=yesterday", 422), ("end=2024-05-01T08:00:00", 422), ("start=99999999999999999", 422),
    ("start=2000&end=1000", 400), ("start=1000&end=1000", 400),
    ("start=2024-05-01T08:00:00%2B08:00&end=2024-05-02T08:00:00%2B08:00", 200),
]


def test_stats_api_bad_times(server: ApiServer) -> None:  # noqa: F811
    with server.client("admin") as admin:
        for query, code in BAD_TIMES:
            for path in ("/stats/officers", "/stats/alarms"):
                r = admin.get(f"{path}?{query}")
                assert r.status_code == code, (path, query, r.text)
                assert code == 200 or "detail" in r.json()
