"""A device's ``offline`` communication alarm clears with its next reading: one accepted after the
offline was recorded, never one that was accepted before it (sent just before the device died)
but evaluated after it. Repeated offlines make no new event."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.batch import ReadingBatch
from gateway.root.runtime import Gateway
from tests.helpers import CH4, district, mqtt_device

S = 1_000_000_000
CFG = district([mqtt_device("e1", "d1", [CH4]), mqtt_device("e1", "d2", [CH4])])


class Rig:
    """A gateway that is not running: the test accepts batches and evaluates them by hand."""

    def __init__(self, data_dir: Path) -> None:
        self.gw = Gateway(CFG, data_dir=data_dir, collectors=False)
        self.outbox = self.gw.storage.outbox
        self.t = time.time_ns()
        self.seen = self.gw.book.last_event_id()

    def accept(self, sensors: list[int], values: list[float]) -> tuple[ReadingBatch, int]:
        self.t += S
        batch = ReadingBatch.of(sensors, [self.t] * len(sensors), values)
        self.outbox.append(batch)
        return batch, self.outbox.last_seq

    def status(self, device: int, online: bool) -> None:
        self.t += S
        dev = self.gw.registry.devices[device]
        self.gw.alarms.dispatch(self.gw.book.communication(dev, online, self.t, "offline", "mqtt status"))

    def events(self) -> list[tuple[str, str, str]]:
        new = self.gw.book.events_since(self.seen, None)
        self.seen = self.gw.book.last_event_id()
        return [(e.type, e.alarm.sensor_id, e.alarm.level) for e in new]

    def close(self) -> None:
        self.gw.book.close()
        self.outbox.close()


def test_offline_clears_with_the_first_reading_accepted_after_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ev = rig.gw.evaluation.evaluate
    ev(*rig.accept([0, 1], [1.0, 1.0]))
    before = rig.accept([0, 1], [2.0, 2.0])  # sent just before d1 died, not evaluated yet
    rig.status(0, False)  # d1's last will
    assert rig.events() == [("raised", "e1/d1", "offline")]
    rig.status(0, False)  # a second offline: nothing new
    assert rig.events() == []
    ev(*before)
    assert rig.events() == [] and rig.gw.book.open_alarms()[0].in_alarm
    ev(*rig.accept([1], [3.0]))  # another device's reading clears nothing
    assert rig.events() == []
    ev(*rig.accept([0], [4.0]))  # d1 is back, without saying "online"
    assert rig.events() == [("cleared", "e1/d1", "offline")]
    assert rig.gw.book.offline == {}
    rig.status(0, True)  # its "online" afterwards: nothing more
    assert rig.events() == []
    rig.close()


def test_a_reading_between_two_offlines_does_not_clear_the_second(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ev = rig.gw.evaluation.evaluate
    rig.status(0, False)
    assert rig.events() == [("raised", "e1/d1", "offline")]
    between = rig.accept([0], [1.0])  # back for a moment...
    rig.status(0, False)  # ...and gone again before that reading was evaluated: no second event
    assert rig.events() == []
    ev(*between)
    assert rig.events() == []  # the alarm of the second offline stays
    ev(*rig.accept([0], [2.0]))
    assert rig.events() == [("cleared", "e1/d1", "offline")]
    rig.status(0, False)  # the same alarm again (its case is still open)
    assert rig.events() == [("raised", "e1/d1", "offline")]
    rig.close()


def test_an_offline_open_at_start_clears_with_the_first_reading(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.status(1, False)
    assert rig.events() == [("raised", "e1/d2", "offline")]
    rig.close()
    rig = Rig(tmp_path)  # restarted
    assert set(rig.gw.book.offline) == {1}
    rig.gw.evaluation.evaluate(*rig.accept([1], [1.0]))
    assert rig.events() == [("cleared", "e1/d2", "offline")]
    rig.close()
