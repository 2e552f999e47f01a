"""The Prometheus exposition: fixed names, per-device and per-sink labels, never one name per device."""

from __future__ import annotations

from api.routes.health import exposition


def test_exposition_labels_devices_and_sinks() -> None:
    health = {
        "gateway": "gw",
        "pipeline": {"evaluated": 10, "stored": 9, "rejected": {"mqtt:not_json": 2}},
        "storage": {"outbox": {"bytes": 2100, "max_bytes": 1048576, "readings": 100, "dropped_readings": 7},
                    "sinks": {"sqlite": {"state": "ok", "backlog_readings": 0, "backlog_seconds": 0.0,
                                         "written": 9, "failures": 0, "rejected": {}},
                              "influxdb": {"state": "failing", "backlog_readings": 100, "backlog_seconds": 3.5,
                                           "written": 0, "failures": 4, "rejected": {"non_finite": 1}}}},
        "collectors": {"modbus": {"e1/gas": {"online": True, "polls": 5, "skipped_ticks": 1,
                                             "errors": {"exception_2": 3, "timeout": 1}},
                                  "e2/gas": {"online": False, "polls": 4, "skipped_ticks": 0}},
                       "mqtt": {"connected": True, "messages": 3}},
        "alarms": {"floods": 2, "chattering": 1, "held_back": 40, "escalated": 3, "refused_transitions": 0},
    }
    lines = exposition(health).splitlines()
    assert 'gridgate_collector_polls{collector="modbus",device="e1/gas"} 5' in lines
    assert 'gridgate_collector_online{collector="modbus",device="e2/gas"} 0' in lines
    assert 'gridgate_collector_messages{collector="mqtt"} 3' in lines
    assert not any("e1_gas" in ln for ln in lines)  # device ids are labels, not parts of names
    # Modbus faults per device and kind (exception code, timeout): a label, not a name each
    assert 'gridgate_collector_errors_total{collector="modbus",device="e1/gas",kind="exception_2"} 3' in lines
    assert 'gridgate_collector_errors_total{collector="modbus",device="e1/gas",kind="timeout"} 1' in lines
    assert not any("errors_exception" in ln for ln in lines)
    assert 'gridgate_sink_state{sink="influxdb",state="failing"} 1' in lines
    assert 'gridgate_sink_state{sink="influxdb",state="ok"} 0' in lines
    assert 'gridgate_sink_backlog_readings{sink="influxdb"} 100' in lines
    assert 'gridgate_sink_rejected_total{sink="influxdb",reason="non_finite"} 1' in lines
    assert "gridgate_outbox_dropped_readings_total 7" in lines
    assert 'gridgate_rejected_total{kind="mqtt",reason="not_json"} 2' in lines
    assert "gridgate_alarm_floods_total 2" in lines and "gridgate_alarm_events_held_total 40" in lines
    assert "gridgate_alarm_chattering_total 1" in lines and "gridgate_alarm_escalations_total 3" in lines
    # each family's samples are contiguous, after its TYPE line
    seen: list[str] = []
    for ln in lines:
        if not ln.startswith("#"):
            name = ln.split("{")[0].split(" ")[0]
            assert not seen or seen[-1] == name or name not in seen, name
            seen.append(name)
