"""The MQTT notifier: publishes alarm events on the grid and officer alarm topics, QoS 1.

Each event goes to ``{prefix}/alarms/{grid}`` and to ``{prefix}/officers/{officer}/alarms`` for each
recipient. The notifier takes events from the pipeline without blocking it (a bounded queue; an
event that does not fit is counted as dropped: the book still has it and the live stream replays
it), and publishes from its own paho client, which keeps QoS 1 messages queued while the broker is
away and resends them on reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from alerts.model import AlarmEvent
from gateway.config import MqttSection

log = logging.getLogger(__name__)


class MqttNotifier:
    """Alarm events to MQTT; ``offer`` from the pipeline, ``run`` as a task."""

    def __init__(self, cfg: MqttSection, client_id: str, queue_size: int = 10_000) -> None:
        self.cfg = cfg
        self.client_id = client_id
        self.queue: asyncio.Queue[AlarmEvent] = asyncio.Queue(queue_size)
        self.published = 0
        self.acked = 0
        self.dropped = 0
        self.connected = False
        self.last_error: str | None = None

    def offer(self, events: list[AlarmEvent]) -> None:
        for ev in events:
            try:
                self.queue.put_nowait(ev)
            except asyncio.QueueFull:
                self.dropped += 1

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
            client.tls_set_context(ssl.create_default_context())
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
            loop.call_soon_threadsafe(self._count_ack)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        return client

    def _count_ack(self) -> None:
        self.acked += 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        url = urlsplit(self.cfg.url)
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        client = self._client(loop)
        delay = 0.5
        while True:
            try:
                await loop.run_in_executor(None, client.connect, url.hostname or "127.0.0.1", port,
                                           self.cfg.keepalive)
                break
            except OSError as exc:
                self.last_error = str(exc)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 10.0)
        client.loop_start()  # paho reconnects by itself from here on
        try:
            while True:
                ev = await self.queue.get()
                payload = ev.to_json()
                for topic in self.topics(ev):
                    client.publish(topic, payload, qos=1)
                    self.published += 1
        finally:
            client.disconnect()
            client.loop_stop()

    def health(self) -> dict[str, object]:
        return {"connected": self.connected, "published": self.published, "acked": self.acked,
                "dropped": self.dropped, "queued": self.queue.qsize(), "last_error": self.last_error}
