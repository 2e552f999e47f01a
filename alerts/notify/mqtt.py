"""The MQTT notifier: publishes alarm events on the grid and officer alarm topics, QoS 1.

Each event goes to ``{prefix}/alarms/{grid}`` and to ``{prefix}/officers/{officer}/alarms`` for each
recipient. The notifier reads its events from a feed (:mod:`alerts.notify.feed`; in the gateway the book's
event log after its own durable cursor) and publishes from its own paho client, which keeps QoS 1
messages queued while the broker is away and resends them on reconnect. An event is done, and the
cursor may pass it, once the broker acknowledged (PUBACK) every topic it went to; after a restart
what was not acknowledged is published again, with the same event id.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from alerts.model import AlarmEvent
from alerts.notify.feed import EventFeed, QueueFeed
from gateway.config import MqttSection
from gateway.retry import Backoff
from gateway.tls import client_context, describe

log = logging.getLogger(__name__)


class MqttNotifier:
    """Alarm events to MQTT; ``offer`` from the pipeline, ``run`` as a task."""

    def __init__(self, cfg: MqttSection, client_id: str, feed: EventFeed | None = None,
                 max_in_flight: int = 1000) -> None:
        self.name = "mqtt"
        self.cfg = cfg
        self.client_id = client_id
        self.feed: EventFeed = feed if feed is not None else QueueFeed()
        self.max_in_flight = max_in_flight
        self.published = 0
        self.acked = 0
        self.connected = False
        self.last_error: str | None = None
        self._mids: dict[int, int] = {}  # paho message id -> event id
        self._waiting: dict[int, int] = {}  # event id -> PUBACKs still to come
        self._room = asyncio.Event()

    def offer(self, events: list[AlarmEvent]) -> None:
        self.feed.offer(events)

    def lag(self) -> int:
        return self.feed.lag()

    def topics(self, event: AlarmEvent) -> list[str]:
        p = self.cfg.prefix
        topics = [f"{p}/alarms/{event.alarm.grid}"] if event.alarm.grid else []
        for r in event.recipients:
            kind, sep, ident = r.partition(":")
            topics.append(f"{p}/departments/{ident}/alarms" if sep and kind == "department"
                          else f"{p}/officers/{r}/alarms")
        return topics

    def _client(self, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        url = urlsplit(self.cfg.url)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False)
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self.cfg.password)
        if url.scheme == "mqtts":
            client.tls_set_context(client_context(self.cfg))
        client.max_queued_messages_set(100_000)
        client.reconnect_delay_set(0.5, 10)

        def on_connect(c: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
            if not getattr(rc, "is_failure", False):
                self.connected = True
                log.info("alarm notifier connected to %s", self.cfg.url)

        def on_disconnect(c: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
            if self.connected:
                log.warning("alarm notifier lost the broker: %s", rc)
            self.connected = False

        def on_publish(c: mqtt.Client, userdata: object, mid: int, rc: object, props: object) -> None:
            loop.call_soon_threadsafe(self._acked, mid)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        return client

    def _acked(self, mid: int) -> None:
        self.acked += 1
        event_id = self._mids.pop(mid, None)
        if event_id is None:
            return
        self._waiting[event_id] -= 1
        if not self._waiting[event_id]:
            del self._waiting[event_id]
            self.feed.done(event_id)
            if len(self._waiting) < self.max_in_flight:
                self._room.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        url = urlsplit(self.cfg.url)
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        client = self._client(loop)
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                await loop.run_in_executor(None, client.connect, url.hostname or "127.0.0.1", port,
                                           self.cfg.keepalive)
                break
            except OSError as exc:
                self.last_error = f"cannot connect to {self.cfg.url}: {describe(exc)}"
                await asyncio.sleep(backoff.next())
        client.loop_start()  # paho reconnects by itself from here on
        try:
            while True:
                while len(self._waiting) >= self.max_in_flight:  # the broker is away: stop reading
                    self._room.clear()
                    await self._room.wait()
                for ev in await self.feed.take(100):
                    payload = ev.to_json()
                    topics = self.topics(ev)
                    if not topics:
                        self.feed.done(ev.id)
                        continue
                    self._waiting[ev.id] = len(topics)
                    for topic in topics:
                        info = client.publish(topic, payload, qos=1)
                        self._mids[info.mid] = ev.id
                        self.published += 1
        finally:
            client.disconnect()
            client.loop_stop()

    def health(self) -> dict[str, object]:
        return {"connected": self.connected, "published": self.published, "acked": self.acked,
                "awaiting_ack": len(self._waiting), "last_error": self.last_error, **self.feed.health()}
