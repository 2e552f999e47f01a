"""Notifiers: the readers of the alarm book's event log that push events to people.

Every notifier has the same small interface (:class:`Notifier`): the pipeline ``offer``s it the
events it may push (a hint: a notifier in the gateway reads the book's log after its own durable
cursor, :mod:`alerts.notify.feed`), ``run`` delivers them in order until cancelled, ``health``
and ``lag`` say how it is doing. They share one backoff and one ``Retry-After`` parser
(:mod:`gateway.retry`). :func:`build_notifiers` is where the configuration's notifier types are
registered: the MQTT topics (when the gateway has a broker) and each ``[[notifiers]]`` webhook
(``json``, ``dingtalk``, ``wecom``).
"""

from __future__ import annotations

from typing import Protocol

from alerts.book import AlarmBook
from alerts.model import AlarmEvent
from alerts.notify.feed import BookFeed
from gateway.clock import Clock
from gateway.config import Config


class Notifier(Protocol):
    """One way of pushing alarm events to people."""

    name: str

    def offer(self, events: list[AlarmEvent]) -> None:
        """Events the pipeline may push (never blocks; the book's log is the source of truth)."""
        ...

    async def run(self) -> None:
        """Deliver events in order, at least once, until cancelled."""
        ...

    def health(self) -> dict[str, object]:
        ...

    def lag(self) -> int:
        """Events not confirmed yet (delivered, or refused for good)."""
        ...


def build_notifiers(cfg: Config, book: AlarmBook, clock: Clock, *, mqtt: bool = True) -> dict[str, Notifier]:
    """The configuration's notifiers by name, each reading the book's event log at its own cursor."""
    from alerts.notify.webhook import WebhookNotifier

    notifiers: dict[str, Notifier] = {}
    if mqtt:
        from alerts.notify.mqtt import MqttNotifier

        client_id = (cfg.mqtt.client_id or f"gridgate-{cfg.gateway.id}") + "-alarms"
        notifiers["mqtt"] = MqttNotifier(cfg.mqtt, client_id, feed=BookFeed(book, "mqtt"))
    for n in cfg.notifiers:
        feed = BookFeed(book, n.name, frozenset(n.grids) if n.grids else None)
        notifiers[n.name] = WebhookNotifier(n.name, n.url, n.format, secret=n.secret, timeout=n.timeout,
                                            clock=clock, feed=feed)
    return notifiers
