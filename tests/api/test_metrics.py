"""``/metrics`` as Prometheus and its users expect it: written by prometheus_client, every family typed
and described, counters ending in ``_total``, per-device, per-sink and per-reason values as labels
(never one name per device), and the values the gateway's own counters have — after real traffic
through a real broker, a real Modbus farm and a real webhook receiver.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from api.routes.metrics import UNDESCRIBED, exposition
from simulators.devices import gas_detector_points, minimal_config, modbus_device
from tests.helpers import wait_for
from tests.peers import Mosquitto, ThreadedFarm, free_port
from tests.receiver import Receiver
from tests.server import ApiServer, make_config

TOKEN = "scrape-me-please-0123456789"
Labels = frozenset[tuple[str, str]]


def parse(text: str) -> tuple[dict[str, Any], dict[tuple[str, Labels], float]]:
    """The families by name, and every sample as (name, labels) -> value; checks what every family must be."""
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    samples: dict[tuple[str, Labels], float] = {}
    for f in fams.values():
        assert f.type not in ("unknown", "untyped"), f"{f.name} is untyped"
        assert f.documentation.strip(), f"{f.name} has no HELP"
        for s in f.samples:
            assert isinstance(s, Sample)
            if f.type == "counter":
                assert s.name.endswith("_total"), f"counter sample {s.name} does not end in _total"
            assert "/" not in s.name and "e1_gas" not in s.name, s.name  # ids are labels, never parts of names
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return fams, samples


def at(samples: dict[tuple[str, Labels], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


SYNTHETIC = {
    "gateway": "gw",
    "pipeline": {"evaluated": 10, "stored": 9, "rejected": {"mqtt:not_json": 2}},
    "storage": {"outbox": {"bytes": 2100, "max_bytes": 1048576, "readings": 100, "dropped_readings": 7,
                           "dropped_batches": 1, "losing": True, "append_error": None},
                "sinks": {"sqlite": {"state": "ok", "backlog_readings": 0, "backlog_seconds": 0.0,
                                     "written": 9, "failures": 0, "rejected": {}},
                          "influxdb": {"state": "failing", "backlog_readings": 100, "backlog_seconds": 3.5,
                                       "written": 0, "failures": 4, "rejected": {"non_finite": 1}}}},
    "collectors": {"modbus": {"e1/gas": {"online": True, "last_ok": 1_700_000_000_500, "polls": 5,
                                         "skipped_ticks": 1, "errors": {"exception_2": 3, "timeout": 1},
                                         "quarantined": ["holding 100+2"], "link": "tcp 127.0.0.1:502"},
                              "e2/gas": {"online": False, "polls": 4, "skipped_ticks": 0, "last_ok": None}},
                   "mqtt": {"connected": True, "messages": 3, "future_counter": 4}},
    "notifiers": {"hook": {"name": "hook", "format": "json", "state": "retrying", "delivered": 2, "failed": 1,
                           "retries": 5, "cursor": 8, "lag_events": 1, "in_flight": 1}},
    "registry": {"version": 3, "reloads": {"applied": 1, "refused": 2}},
    "alarms": {"floods": 2, "chattering": 1, "held_back": 40, "escalated": 3, "refused_transitions": 0,
               "flooding": ["g1"], "in_maintenance": []},
}


def test_exposition_types_every_family_and_labels_devices_and_sinks() -> None:
    fams, s = parse(exposition(SYNTHETIC))
    assert at(s, "gridgate_info", gateway="gw") == 1
    assert at(s, "gridgate_collector_polls_total", collector="modbus", device="e1/gas") == 5
    assert at(s, "gridgate_collector_online", collector="modbus", device="e2/gas") == 0
    assert at(s, "gridgate_collector_last_ok_timestamp_seconds", collector="modbus", device="e1/gas") == 1.7e9 + 0.5
    assert ("gridgate_collector_last_ok_timestamp_seconds",
            frozenset({"collector": "modbus", "device": "e2/gas"}.items())) not in s  # never answered: no sample
    assert at(s, "gridgate_collector_quarantined_requests", collector="modbus", device="e1/gas") == 1
    assert at(s, "gridgate_collector_messages_total", collector="mqtt") == 3
    # Modbus faults per device and kind (exception code, timeout): a label, not a name each
    assert at(s, "gridgate_collector_errors_total", collector="modbus", device="e1/gas", kind="exception_2") == 3
    assert at(s, "gridgate_collector_errors_total", collector="modbus", device="e1/gas", kind="timeout") == 1
    assert not any("errors_exception" in name for name, _ in s)
    assert at(s, "gridgate_sink_state", sink="influxdb", state="failing") == 1
    assert at(s, "gridgate_sink_state", sink="influxdb", state="ok") == 0
    assert at(s, "gridgate_sink_backlog_readings", sink="influxdb") == 100
    assert at(s, "gridgate_sink_backlog_seconds", sink="influxdb") == 3.5
    assert at(s, "gridgate_sink_rejected_total", sink="influxdb", reason="non_finite") == 1
    assert at(s, "gridgate_outbox_dropped_readings_total") == 7
    assert at(s, "gridgate_outbox_losing") == 1 and at(s, "gridgate_outbox_refusing_writes") == 0
    assert at(s, "gridgate_rejected_total", kind="mqtt", reason="not_json") == 2
    assert at(s, "gridgate_alarm_floods_total") == 2 and at(s, "gridgate_alarm_events_held_total") == 40
    assert at(s, "gridgate_alarm_chattering_total") == 1 and at(s, "gridgate_alarm_escalations_total") == 3
    assert at(s, "gridgate_alarm_flooding_grids") == 1 and at(s, "gridgate_alarm_devices_in_maintenance") == 0
    assert at(s, "gridgate_registry_version") == 3
    assert at(s, "gridgate_registry_reloads_total", result="refused") == 2
    assert at(s, "gridgate_notifier_state", notifier="hook", state="retrying") == 1
    assert at(s, "gridgate_notifier_state", notifier="hook", state="idle") == 0
    assert at(s, "gridgate_notifier_delivered_total", notifier="hook") == 2
    assert at(s, "gridgate_notifier_in_flight_events", notifier="hook") == 1
    # a number a component added that gridgate does not describe yet: still there, a gauge saying so
    assert fams["gridgate_collector_future_counter"].type == "gauge"
    assert UNDESCRIBED in fams["gridgate_collector_future_counter"].documentation
    # the types of the families that were untyped or lacked _total before
    for name, kind in [("gridgate_collector_polls", "counter"), ("gridgate_collector_errors", "counter"),
                       ("gridgate_collector_online", "gauge"), ("gridgate_notifier_delivered", "counter"),
                       ("gridgate_notifier_cursor", "gauge"), ("gridgate_sink_written", "counter")]:
        assert fams[name].type == kind, name


@pytest.fixture
def traffic(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[ApiServer, Receiver]]:
    """A gateway with MQTT and Modbus collectors, a webhook notifier, and the metrics token."""
    live = modbus_device("shimen", "plc", free_port(), gas_detector_points(), interval=0.3, timeout=0.2)
    dead = modbus_device("far", "plc", free_port(), gas_detector_points(), interval=0.3, timeout=0.2)
    hook = Receiver("json", "hook-secret")
    hook.start()
    cfg = make_config()
    cfg["mqtt"] = {"url": mosquitto.url}
    cfg["api"] = {"metrics_token": TOKEN}
    cfg["devices"] = [*cfg["devices"], live, dead]
    cfg["notifiers"] = [{"type": "webhook", "name": "hook", "url": hook.url, "format": "json", "secret": "hook-secret"}]
    try:
        with ThreadedFarm(minimal_config([live])), ApiServer(tmp_path / "gw", cfg, collectors=True) as server:
            yield server, hook
    finally:
        hook.stop()


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="metrics-test")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_metrics_are_the_gateways_counters_after_real_traffic(traffic: tuple[ApiServer, Receiver],
                                                              mosquitto: Mosquitto, tmp_path: Path) -> None:
    server, hook = traffic
    gw = server.gw
    wait_for(lambda: gw.collectors["mqtt"].health().get("subscribed"), 10, "the MQTT collector")
    now = int(time.time() * 1000)
    good = orjson.dumps({"ts": now, "values": {"ch4": 30.0, "t1": 20.0}})  # over the high limit: an alarm
    publish(mosquitto.port, [("gridgate/v1/hengyuan/gas/telemetry", good),
                             ("gridgate/v1/hengyuan/gas/telemetry", b"not json"),
                             ("gridgate/v1/nobody/gas/telemetry", orjson.dumps({"values": {"ch4": 1.0}}))])
    assert httpx.get(f"{server.base}/alarms/999999", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    wait_for(lambda: hook.got, 15, "the webhook delivery of the alarm")
    modbus = gw.collectors["modbus"]
    wait_for(lambda: modbus.health()["shimen/plc"]["polls"] >= 3 and modbus.health()["far/plc"]["errors"], 15,
             "polls of both Modbus devices")
    wait_for(lambda: gw.health()["notifiers"]["hook"]["delivered"] >= 1 and gw.health()["notifiers"]["mqtt"]["acked"],
             10, "both notifiers done")
    url = f"{server.base}/metrics"
    before = gw.health()
    r = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    after = gw.health()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    fams, s = parse(r.text)
    undescribed = [f.name for f in fams.values() if UNDESCRIBED in f.documentation]
    assert undescribed == [], "every leaf of today's components is described"

    def same(name: str, path: tuple[str, ...], **labels: str) -> None:
        """The sample lies between the health read just before the scrape and the one just after."""
        lo, hi = (float(dig(h, path)) for h in (before, after))
        assert min(lo, hi) <= at(s, name, **labels) <= max(lo, hi), (name, labels, lo, hi)

    assert at(s, "gridgate_info", gateway="test-gw") == 1
    same("gridgate_readings_evaluated_total", ("pipeline", "evaluated"))
    same("gridgate_readings_stored_total", ("pipeline", "stored"))
    assert at(s, "gridgate_readings_stored_total") >= 2 + 3
    same("gridgate_sink_written_total", ("storage", "sinks", "sqlite", "written"), sink="sqlite")
    assert at(s, "gridgate_sink_state", sink="sqlite", state="ok") == 1
    for key in ("mqtt:not_json", "mqtt:unknown_enterprise", "api:http_401"):
        kind, _, reason = key.partition(":")
        same("gridgate_rejected_total", ("pipeline", "rejected", key), kind=kind, reason=reason)
        assert at(s, "gridgate_rejected_total", kind=kind, reason=reason) >= 1
    for device in ("shimen/plc", "far/plc"):
        same("gridgate_collector_polls_total", ("collectors", "modbus", device, "polls"),
             collector="modbus", device=device)
        same("gridgate_collector_failures_total", ("collectors", "modbus", device, "failures"),
             collector="modbus", device=device)
    assert at(s, "gridgate_collector_online", collector="modbus", device="shimen/plc") == 1
    assert at(s, "gridgate_collector_failures_total", collector="modbus", device="far/plc") >= 1
    for kind in after["collectors"]["modbus"]["far/plc"]["errors"]:
        same("gridgate_collector_errors_total", ("collectors", "modbus", "far/plc", "errors", kind),
             collector="modbus", device="far/plc", kind=kind)
    for key in ("messages", "readings", "rejected"):
        same(f"gridgate_collector_{key}_total", ("collectors", "mqtt", key), collector="mqtt")
    assert at(s, "gridgate_collector_messages_total", collector="mqtt") == 3
    assert at(s, "gridgate_collector_connected", collector="mqtt") == 1
    same("gridgate_notifier_delivered_total", ("notifiers", "hook", "delivered"), notifier="hook")
    assert at(s, "gridgate_notifier_delivered_total", notifier="hook") >= 1
    assert at(s, "gridgate_notifier_state", notifier="hook", state="idle") == 1
    same("gridgate_notifier_published_total", ("notifiers", "mqtt", "published"), notifier="mqtt")
    same("gridgate_live_events_published_total", ("live", "published"))
    assert at(s, "gridgate_live_events_published_total") >= 1
    same("gridgate_registry_version", ("registry", "version"))
    same("gridgate_outbox_max_bytes", ("storage", "outbox", "max_bytes"))

    # another gateway in the same process has a registry of its own: its own id, its own numbers
    with ApiServer(tmp_path / "other", {**make_config(), "gateway": {"id": "other-gw"}}) as other:
        admin = {"Authorization": f"Bearer {other.token('admin')}"}
        _, s2 = parse(httpx.get(f"{other.base}/metrics", headers=admin).text)
        assert at(s2, "gridgate_info", gateway="other-gw") == 1
        assert ("gridgate_info", frozenset({"gateway": "test-gw"}.items())) not in s2
        assert at(s2, "gridgate_readings_stored_total") == 0
    _, again = parse(httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).text)
    assert at(again, "gridgate_info", gateway="test-gw") == 1


def dig(health: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = health
    for key in path:
        value = value[key]
    return value


def test_metrics_need_the_metrics_token_or_an_admin(tmp_path: Path) -> None:
    cfg = {**make_config(), "api": {"metrics_token": TOKEN}}
    with ApiServer(tmp_path / "gw", cfg) as server:
        url = f"{server.base}/metrics"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer not-the-token"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Bearer {server.token('zhang')}"}).status_code == 403
        for token in (TOKEN, server.token("admin")):
            assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
