"""The MQTT collector: telemetry and status topics in, ReadingBatches and device statuses out.

paho runs its network loop in its own thread (``loop_start``), with a persistent session (MQTT
3.1.1, ``clean_session=False``) and QoS 1 subscriptions to ``{prefix}/+/+/telemetry`` and ``/status``.
The paho thread decodes each payload straight into numpy arrays (``collectors.mqtt_payload``, one
registry lookup per message) and appends them to the open *group*, handed to the asyncio loop by
``call_soon_threadsafe``; under load the loop lingers ``linger`` s so one batch carries many messages. At most
``max_groups`` groups are in flight: when the pipeline is behind, the paho thread blocks on a
condition (backpressure to the broker; no drop, no unbounded buffer; note that a block longer than
1.5 x keepalive makes the broker drop the connection, and the session then redelivers). Acks: the
client uses ``manual_ack``; a QoS 1 message gets its PUBACK, in arrival order, only once
``Intake.submit`` has accepted its batch. That is at-least-once into the intake queue, not into
storage (a crash loses what the intake held until the durable outbox lands); what was received but
not accepted when the collector stops is redelivered, so duplicates can occur. A message with some
bad readings keeps its good ones; problems are counted by reason (message-level ones once per
message, reading-level ones once per reading) and a message with a problem gets one short JSON
answer on ``{prefix}/{ent}/{dev}/errors`` naming its first problem, within the device's
:class:`ErrorBudget` (a broken publisher must not double its own traffic: answers beyond it are
counted, not sent). Timestamps must lie within ``max_clock_skew`` ahead of the gateway's clock and
within the storage retention behind it. Retained telemetry is refused (stale on delivery). paho
reconnects on the delay we set after each failure: backoff with jitter.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from collectors.mqtt_payload import Part, Window, batch_of, decode_telemetry
from gateway.clock import Clock, SystemClock
from gateway.config import RESERVED_ENTERPRISES, MqttSection
from gateway.errors import PayloadError
from gateway.ingest.intake import DeviceStatus, Intake
from gateway.registry import Registry
from gateway.retry import Backoff
from gateway.tls import client_context, describe

log = logging.getLogger(__name__)
DAY_NS = 86_400 * 1_000_000_000
ERRORS_PER_SECOND = 1.0  # answers on a device's errors topic, on average...
ERRORS_BURST = 5  # ...and at most this many at once


class ErrorBudget:
    """A token bucket per device for the answers on its ``errors`` topic (paho's thread only).

    Configured devices have a bucket each; every unknown topic shares one, so that publishers
    inventing device names cannot grow the table.
    """

    def __init__(self, clock: Clock, rate: float = ERRORS_PER_SECOND, burst: int = ERRORS_BURST) -> None:
        self.clock = clock
        self.rate, self.burst = rate, float(burst)
        self._buckets: dict[object, tuple[float, int]] = {}  # key -> (tokens, at ns)
        self.sent = 0
        self.suppressed = 0

    def allow(self, key: object) -> bool:
        now = self.clock.now_ns()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0, now - at) * self.rate / 1e9)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if allowed:
            self.sent += 1
        else:
            self.suppressed += 1
        return allowed


@dataclass(slots=True)
class _Group:
    """Messages handed to the loop together: their readings, statuses, and the acks they owe."""

    parts: list[Part] = field(default_factory=list)
    statuses: list[DeviceStatus] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)  # mids of QoS 1 messages, in arrival order
    readings: int = 0


class MqttCollector:
    """Reads the MQTT devices of the registry; ``run()`` until cancelled."""

    def __init__(self, cfg: MqttSection, registry: Registry, intake: Intake, client_id: str, *,
                 clock: Clock | None = None, max_groups: int = 4, group_readings: int = 50_000,
                 group_messages: int = 2_000, linger: float = 0.002,
                 backoff: tuple[float, float] = (0.5, 30.0),
                 errors: tuple[float, int] = (ERRORS_PER_SECOND, ERRORS_BURST)) -> None:
        self.cfg = cfg
        self.registry = registry
        self.intake = intake
        self.client_id = client_id
        self.clock = clock or SystemClock()
        self._max_ahead_ns = int(cfg.max_clock_skew * 1e9)
        self._max_age_ns = registry.config.storage.retention_days * DAY_NS
        self.errors = ErrorBudget(self.clock, *errors)
        self.prefix = cfg.prefix.rstrip("/")
        self._devices = {k: d for k, d in registry.devices_by_id.items() if d.protocol == "mqtt"}
        self._max_groups = max_groups
        self._group_readings, self._group_messages = group_readings, group_messages
        self._backoff = Backoff(*backoff)
        self._linger = linger
        self._cond = threading.Condition()
        self._groups: deque[_Group] = deque()  # guarded by _cond; the last one is open
        self._in_flight = 0  # groups opened and not yet delivered; guarded by _cond
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._client: paho.Client | None = None
        self._connected_once = False
        self._refused = False  # the broker's CONNACK refused this attempt (said in last_error already)
        self.connected = False
        self.subscribed = False  # the broker granted both subscriptions on this connection
        self.messages = 0
        self.readings = 0
        self.rejected = 0
        self.reconnects = 0
        self.last_error = ""

    def reconfigure(self, registry: Registry, devices: frozenset[str] = frozenset()) -> None:
        """Take the registry's MQTT devices as they are now: a new device is read from its next
        message, a retired one's messages are refused as unknown."""
        self._devices = {k: d for k, d in registry.devices_by_id.items() if d.protocol == "mqtt"}

    def health(self) -> dict:
        return {"connected": self.connected, "subscribed": self.subscribed, "messages": self.messages,
                "readings": self.readings, "rejected": self.rejected, "reconnects": self.reconnects,
                "last_error": self.last_error, "errors_sent": self.errors.sent,
                "errors_suppressed": self.errors.suppressed}

    # -- the asyncio side --------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._closing = False
        client = self._client = self._make_client()
        url = urlsplit(self.cfg.url)
        default_port = 8883 if url.scheme == "mqtts" else 1883
        client.connect_async(url.hostname or "127.0.0.1", url.port or default_port, self.cfg.keepalive)
        client.loop_start()  # paho's thread connects, and reconnects on the schedule we set
        try:
            await self._deliver_forever()
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            self.connected = self.subscribed = False
            self._groups.clear()  # never acknowledged: the broker redelivers them
            self._in_flight = 0

    async def _deliver_forever(self) -> None:
        assert self._wake is not None
        last = 0.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._linger and time.monotonic() - last < self._linger:
                # Under load, let the open group fill for a moment: one hand-over per few ms
                # instead of one per message (each costs a loop wake-up and a GIL hand-off).
                await asyncio.sleep(self._linger)
            while True:
                with self._cond:
                    if not self._groups:
                        break
                    group = self._groups.popleft()
                await self._deliver(group)
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify()
                last = time.monotonic()
                await asyncio.sleep(0)  # let the pipeline run between groups

    async def _deliver(self, group: _Group) -> None:
        if group.parts:
            await self.intake.submit(batch_of(group.parts))
            self.readings += group.readings
        for status in group.statuses:
            await self.intake.device_status(status)
        client = self._client
        if client is not None:
            for mid in group.acks:
                client.ack(mid, 1)

    # -- the paho thread ---------------------------------------------------------------------

    def _make_client(self) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False,
                             protocol=paho.MQTTv311, manual_ack=True)
        if self.cfg.username is not None:
            client.username_pw_set(self.cfg.username, self.cfg.password)
        if self.cfg.url.startswith("mqtts://"):
            client.tls_set_context(client_context(self.cfg))
        client.reconnect_delay_set(self._backoff.first, self._backoff.first)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _schedule_retry(self, client: paho.Client) -> None:
        # Exponential backoff with "equal jitter": a herd of gateways does not reconnect in step.
        client.reconnect_delay_set(self._backoff.next(), self._backoff.cap)

    def _on_connect(self, client: paho.Client, _u: object, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:  # the broker closes the connection next: on_disconnect retries
            self._refused = True
            self._fail(f"broker refused the connection: {reason}")
            return
        if self._connected_once:
            self.reconnects += 1
            log.info("MQTT collector reconnected to %s (session present: %s)", self.cfg.url,
                     flags.session_present)
        else:
            log.info("MQTT collector connected to %s", self.cfg.url)
        self._connected_once = True
        self.connected = True
        self._backoff.reset()
        client.reconnect_delay_set(self._backoff.first, self._backoff.cap)
        client.subscribe([(f"{self.prefix}/+/+/telemetry", 1), (f"{self.prefix}/+/+/status", 1)])

    def _on_subscribe(self, client: paho.Client, _u: object, mid: int, reasons: list, props: Any) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            self._fail(f"broker refused a subscription: {refused[0]}")
        self.subscribed = not refused

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        # paho calls this inside its ``except OSError`` and does not pass the error: a refused
        # certificate or a refused TCP connection is only visible here.
        exc = sys.exc_info()[1]
        self._fail(f"cannot connect to {self.cfg.url}" + (f": {describe(exc)}" if exc is not None else ""))
        self._schedule_retry(client)

    def _on_disconnect(self, client: paho.Client, _u: object, flags: Any, reason: Any, props: Any) -> None:
        was = self.connected
        self.connected = self.subscribed = False
        if self._closing:
            return
        if was:
            self._fail(f"connection lost: {reason}")
        elif not self._refused:  # e.g. a TLS listener that wants a client certificate, after the handshake
            self._fail(f"{self.cfg.url} closed the connection before accepting it: {reason}")
        self._refused = False
        self._schedule_retry(client)

    def _fail(self, error: str) -> None:
        if error != self.last_error:  # log the state change, not every retry
            log.warning("MQTT collector: %s", error)
        self.last_error = error

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        if self._closing:
            return  # not acknowledged: redelivered to the next session
        self.messages += 1
        topic = msg.topic
        _, ent, dev, kind = topic.rsplit("/", 3)
        readings: list[Part] = []
        status: DeviceStatus | None = None
        n = 0
        try:
            device = self._device(ent, dev)
            if len(msg.payload) > self.cfg.max_payload:
                size = len(msg.payload)
                raise PayloadError("too_large", f"{size} bytes > max_payload {self.cfg.max_payload}")
            if kind == "status":
                status = self._status(device.index, msg.payload)
            elif msg.retain:
                raise PayloadError("retained", "retained telemetry is stale on delivery: use retain=false")
            else:
                window = Window(self.clock.now_ns(), self._max_ahead_ns, self._max_age_ns)
                decoded = decode_telemetry(msg.payload, device.points, window)
                readings, n = decoded.parts, decoded.readings
                if decoded.problems:
                    self._report(client, topic, ent, dev, decoded.problems, n, msg.payload)
        except PayloadError as exc:
            self._report(client, topic, ent, dev, {exc.reason: [1, exc.detail]}, 0, msg.payload)
        except Exception as exc:  # a bug here must not kill paho's thread, and with it the collector
            log.exception("MQTT collector could not decode a message from %s", topic)
            self._report(client, topic, ent, dev, {"decode_error": [1, type(exc).__name__]}, 0, msg.payload)
            readings, n = [], 0
        self._hand_over(readings, n, status, msg.mid if msg.qos == 1 else None)

    def _device(self, ent: str, dev: str) -> Any:
        if ent in RESERVED_ENTERPRISES:
            raise PayloadError("reserved_enterprise", f"{ent!r} is reserved for gateway output")
        device = self._devices.get((ent, dev))
        if device is None:
            if ent not in self.registry.enterprises:
                raise PayloadError("unknown_enterprise", f"enterprise {ent!r:.70} is not configured")
            raise PayloadError("unknown_device", f"no MQTT device {dev!r:.70} configured for {ent}")
        return device

    def _status(self, device_index: int, payload: bytes) -> DeviceStatus:
        word = payload.strip().lower()
        if word not in (b"online", b"offline"):
            raise PayloadError("bad_status", f"status must be online or offline, not {payload[:30]!r}")
        online = word == b"online"
        return DeviceStatus(device_index, online, self.clock.now_ns(), f"mqtt status {word.decode()}")

    def _report(self, client: paho.Client, topic: str, ent: str, dev: str, problems: dict, kept: int,
                payload: bytes = b"") -> None:
        first_reason, (_, first_detail) = next(iter(problems.items()))
        device = self._devices.get((ent, dev))
        named = device.device_id if device is not None else None  # only a registered device is named
        for reason, (count, detail) in problems.items():
            self.intake.rejects.reject("mqtt", reason, topic, detail, n=count, device=named, payload=payload)
            self.rejected += count
        if ent in RESERVED_ENTERPRISES:
            return  # never write into the gateway's own output namespace
        if not self.errors.allow(None if device is None else device.index):
            return  # counted above all the same
        more = sum(c for c, _ in problems.values()) - 1
        detail = first_detail + (f" (+{more} more rejected)" if more else "")
        detail += f"; {kept} readings kept" if kept else ""
        body = orjson.dumps({"reason": first_reason, "detail": detail, "topic": topic})
        client.publish(f"{self.prefix}/{ent}/{dev}/errors", body, qos=0)

    def _hand_over(self, parts: list[Part], n: int, status: DeviceStatus | None, mid: int | None) -> None:
        """Add a message's outcome to the open group, opening one (and waiting for room) if needed."""
        with self._cond:
            group = self._groups[-1] if self._groups else None
            full = group is None or group.readings + n > self._group_readings
            if full or len(group.acks) >= self._group_messages:
                while self._in_flight >= self._max_groups and not self._closing:
                    self._cond.wait()  # backpressure: the pipeline is behind
                if self._closing:
                    return
                group = _Group()
                self._groups.append(group)
                self._in_flight += 1
                opened = True
            else:
                opened = False
            group.parts.extend(parts)
            group.readings += n
            if status is not None:
                group.statuses.append(status)
            if mid is not None:
                group.acks.append(mid)
        if opened:
            assert self._loop is not None and self._wake is not None
            self._loop.call_soon_threadsafe(self._wake.set)
