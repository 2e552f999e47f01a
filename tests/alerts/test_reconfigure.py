"""The registry changing under a running detector: numbers kept, state kept, limits taken, the retired
forgotten. Pure: Registry.update and Detector.reconfigure, no database."""

from __future__ import annotations

import pytest

from alerts.detector import PROCESS, Detector
from gateway.batch import ReadingBatch
from gateway.errors import UnknownSensor
from gateway.registry import Registry
from tests.helpers import CH4, district, mqtt_device

S = 1_000_000_000
T1 = {"key": "t1", "kind": "temperature", "unit": "°C", "high": 60.0}


def levels(det: Detector, reg: Registry, values: dict[str, float], ts: int) -> list[tuple[str, int, int, int]]:
    ids = list(values)
    tr = det.evaluate(ReadingBatch.of([reg.layout.sensors[i] for i in ids], [ts] * len(ids), list(values.values())))
    return [(reg.sensors[int(tr.sensor[k])].sensor_id, int(tr.condition[k]), int(tr.old[k]), int(tr.new[k]))
            for k in range(len(tr))]


def test_numbers_state_and_limits_follow_a_change() -> None:
    cfg = district([mqtt_device("e1", "d1", [CH4, T1]), mqtt_device("e2", "d2", [CH4])])
    reg = Registry(cfg)
    det = Detector(reg)
    assert levels(det, reg, {"e1/d1/ch4": 30.0, "e2/d2/ch4": 30.0}, 10 * S) == [
        ("e1/d1/ch4", PROCESS, 0, 1), ("e2/d2/ch4", PROCESS, 0, 1)]
    numbers = dict(reg.layout.sensors)

    # e1/d1 loses t1 and gets a stricter ch4; e2/d2 is retired; e1/d3 is new
    d1 = mqtt_device("e1", "d1", [{**CH4, "high": 10.0, "high_high": 20.0}])
    new = cfg.model_copy(update={"devices": [*district([d1, mqtt_device("e1", "d3", [CH4])]).devices]})
    change = reg.update(new, 2, "admin")
    det.reconfigure(reg)
    assert change.added_devices == {"e1/d3"} and change.changed_devices == {"e1/d1"}
    assert change.retired_devices == {"e2/d2"}
    assert {reg.sensors[i].sensor_id for i in change.retired_sensors} == {"e1/d1/t1", "e2/d2/ch4"}
    assert {k: reg.layout.sensors[k] for k in numbers} == numbers  # nobody's number moved
    assert reg.layout.sensors["e1/d3/ch4"] == len(numbers)  # a new number after the highest
    assert reg.sensors[numbers["e2/d2/ch4"]].retired
    with pytest.raises(UnknownSensor):
        reg.sensor_index("e2/d2/ch4")  # retired: known by number only
    assert reg.any_sensor("e2/d2/ch4").retired

    # the alarm of e1/d1/ch4 went on (no new raise at 15 %LEL): it rises to high-high at 25
    assert levels(det, reg, {"e1/d1/ch4": 25.0}, 11 * S) == [("e1/d1/ch4", PROCESS, 1, 2)]
    # a late reading of the retired sensor is not evaluated; the new device alarms from its first
    assert levels(det, reg, {"e2/d2/ch4": 0.0, "e1/d1/t1": 99.0, "e1/d3/ch4": 30.0}, 12 * S) == [
        ("e1/d3/ch4", PROCESS, 0, 1)]
    assert det.stale_after[reg.layout.devices["e2/d2"]] == 0


def test_a_moved_enterprise_is_a_change_of_its_grid() -> None:
    cfg = district([mqtt_device("e1", "d1", [CH4])])
    reg = Registry(cfg)
    grids = [g.id for g in cfg.grids]
    moved = cfg.model_copy(update={"enterprises": [e.model_copy(update={"grid": grids[1]}) if e.id == "e1" else e
                                                   for e in cfg.enterprises]})
    change = reg.update(moved, 1)
    assert change.moved == {"e1": (grids[0], grids[1])}
    assert reg.officers_of("e1") == list(cfg.grids[1].officers)
    assert reg.sensor("e1/d1/ch4").grid == grids[1]
