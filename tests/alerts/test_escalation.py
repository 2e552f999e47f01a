"""Escalation with an injected clock: on time, once per step, stopped by an ack, restarted by a re-alarm."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.book import AlarmBook
from alerts.detector import Detector
from alerts.escalation import Escalator
from alerts.notify.mqtt import MqttNotifier
from gateway.batch import ReadingBatch
from gateway.config import EscalateAfter, MqttSection
from gateway.registry import Registry
from tests.helpers import CH4, district, mqtt_device

S = 1_000_000_000
T0 = 1_767_225_600_000  # epoch ms


@pytest.fixture
def reg() -> Registry:
    return Registry(district([mqtt_device("e1", "d1", [CH4, {**CH4, "key": "ch4b"}]), mqtt_device("e2", "d2", [CH4])]))


def feed(book: AlarmBook, det: Detector, sensor: int, value: float, at_ms: int) -> list:
    return book.apply(det.evaluate(ReadingBatch.of([sensor], [at_ms * 1_000_000], [value])))


def steps(events: list) -> list[tuple[str, tuple[str, ...]]]:
    return [(e.alarm.sensor_id, e.recipients) for e in events]


def test_escalates_on_time_once_per_step(tmp_path: Path, reg: Registry) -> None:
    book, det = AlarmBook(tmp_path / "a.db", reg), Detector(reg)
    esc = Escalator(book, reg, EscalateAfter(high_high=300, high=900, other=3600))
    feed(book, det, 0, 60.0, T0)  # high-high: 300 s
    assert esc.check(T0 + 299_999) == []
    assert steps(esc.check(T0 + 300_000)) == [("e1/d1/ch4", ("resp",))]
    assert esc.check(T0 + 300_000) == [] and esc.check(T0 + 599_000) == []
    assert steps(esc.check(T0 + 600_000)) == [("e1/d1/ch4", ("department:yjj",))]
    assert esc.check(T0 + 10**9) == []  # two steps, no more
    history = book.history(1)
    assert [e.type for e in history] == ["raised", "escalated", "escalated"]
    assert "not acknowledged within 300 s" in history[1].note and history[1].actor == "gateway"


def test_ack_stops_and_rise_restarts_and_restart_does_not_repeat(tmp_path: Path, reg: Registry) -> None:
    book, det = AlarmBook(tmp_path / "a.db", reg), Detector(reg)
    esc = Escalator(book, reg, EscalateAfter(high_high=300, high=900, other=3600))
    a = feed(book, det, 0, 30.0, T0)[0].alarm  # high: 900 s
    b = feed(book, det, 1, 30.0, T0)[0].alarm
    book.acknowledge(b.id, "o1", "on it", T0 + 100_000)
    feed(book, det, 0, 60.0, T0 + 800_000)  # re-alarm: the clock starts again, with high-high's 300 s
    assert esc.check(T0 + 1_099_000) == []
    assert steps(esc.check(T0 + 1_100_000)) == [("e1/d1/ch4", ("resp",))]
    book.close()
    book = AlarmBook(tmp_path / "a.db", reg)  # a restarted gateway
    esc = Escalator(book, reg, EscalateAfter(high_high=300, high=900, other=3600))
    assert steps(esc.check(T0 + 1_200_000)) == []  # step 1 is in the history already
    assert steps(esc.check(T0 + 1_400_000)) == [("e1/d1/ch4", ("department:yjj",))]
    assert all(e.type != "escalated" for e in book.history(b.id))  # acknowledged in time
    assert a.id != b.id


def test_grid_without_responsible_records_the_step_and_goes_on_to_the_department(tmp_path: Path, reg: Registry) -> None:
    book, det = AlarmBook(tmp_path / "a.db", reg), Detector(reg)
    esc = Escalator(book, reg, EscalateAfter(high_high=60, high=900, other=3600))
    feed(book, det, 2, 60.0, T0)  # e2 is in grid 2, which has no responsible person
    first = esc.check(T0 + 60_000)
    assert steps(first) == [("e2/d2/ch4", ())] and "none configured" in first[0].note
    assert steps(esc.check(T0 + 120_000)) == [("e2/d2/ch4", ("department:fire",))]


def test_mqtt_topics_of_an_escalation(tmp_path: Path, reg: Registry) -> None:
    book, det = AlarmBook(tmp_path / "a.db", reg), Detector(reg)
    feed(book, det, 0, 60.0, T0)
    esc = Escalator(book, reg, EscalateAfter(high_high=1, high=1, other=1))
    ev = esc.check(T0 + 2_000)
    notifier = MqttNotifier(MqttSection(), "x")
    assert notifier.topics(ev[0]) == ["gridgate/v1/alarms/43090300100201", "gridgate/v1/officers/resp/alarms"]
    assert notifier.topics(ev[1]) == ["gridgate/v1/alarms/43090300100201", "gridgate/v1/departments/yjj/alarms"]


def test_an_alarm_back_from_a_shelf_escalates_from_its_return(tmp_path: Path, reg: Registry) -> None:
    book, det = AlarmBook(tmp_path / "a.db", reg), Detector(reg)
    esc = Escalator(book, reg, EscalateAfter(high_high=300, high=900, other=3600))
    a = feed(book, det, 0, 60.0, T0)[0].alarm  # high-high: 300 s
    book.shelve(a.id, "o1", "sensor being replaced", T0 + 3_600_000, T0 + 10_000)
    assert esc.check(T0 + 3_000_000) == []  # shelved: nobody is chased
    assert [e.alarm.state for e in book.expire(T0 + 3_600_000)] == ["unacknowledged"]
    assert esc.check(T0 + 3_600_000 + 299_999) == []  # not both steps at once on return
    assert steps(esc.check(T0 + 3_600_000 + 300_000)) == [("e1/d1/ch4", ("resp",))]
    assert steps(esc.check(T0 + 3_600_000 + 600_000)) == [("e1/d1/ch4", ("department:yjj",))]
    # escalated, acknowledged, then a rise re-alarms it: the steps start again
    book.acknowledge(a.id, "o1", "", T0 + 4_300_000)
    feed(book, det, 0, 30.0, T0 + 4_310_000)
    feed(book, det, 0, 60.0, T0 + 4_320_000)
    assert steps(esc.check(T0 + 4_320_000 + 300_000)) == [("e1/d1/ch4", ("resp",))]


def test_a_grid_report_escalates_to_the_responsible_person_only(tmp_path: Path, reg: Registry) -> None:
    book = AlarmBook(tmp_path / "a.db", reg)
    esc = Escalator(book, reg, EscalateAfter(high_high=300, high=900, other=3600))
    report = book.report("43090300100201", "", "drums leaking by the road", "bridge", None, "1.2.3.4", T0)
    assert report.recipients == ("o1",)
    assert esc.check(T0 + 3_599_999) == []
    assert steps(esc.check(T0 + 3_600_000)) == [(report.alarm.sensor_id, ("resp",))]
    assert esc.check(T0 + 100 * 3_600_000) == []  # no lead department to go to
