"""The live hub: fans alarm events out to live-stream subscribers, each within its scope.

Every subscriber has a bounded queue. A subscriber that falls behind is cut off (its queue is
closed with a marker) rather than slowing the pipeline or growing without bound; the client
reconnects with the last event id it saw and the book replays what it missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from alerts.model import AlarmEvent
from alerts.scope import ScopeArg, Within, as_within


class Subscription:
    """One live subscriber: the events within its scope (None: all) in a bounded queue."""

    def __init__(self, hub: AlarmHub, scope: ScopeArg | Callable[[], Within], maxsize: int) -> None:
        self.hub = hub
        # a callable: the scope as it is now (it follows registry changes: an enterprise moved)
        if callable(scope):
            self._scope: Callable[[], Within] = scope
        else:
            fixed = as_within(scope)
            self._scope = lambda: fixed
        self.queue: asyncio.Queue[AlarmEvent | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    @property
    def scope(self) -> Within:
        return self._scope()

    def wants(self, event: AlarmEvent) -> bool:
        return self._scope().covers(event.alarm)

    def offer(self, event: AlarmEvent) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.hub.overflows += 1
            # Make room for the end marker: the client resumes from its last id.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def get(self) -> AlarmEvent | None:
        """The next event, or None once the subscription was cut off for falling behind."""
        return await self.queue.get()

    def close(self) -> None:
        self.hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AlarmHub:
    """In-process publish/subscribe of alarm events; call from the event loop only."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subs: set[Subscription] = set()
        self.queue_size = queue_size
        self.published = 0
        self.delivered = 0
        self.overflows = 0

    def subscribe(self, scope: ScopeArg | Callable[[], Within]) -> Subscription:
        sub = Subscription(self, scope, self.queue_size)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, events: list[AlarmEvent]) -> None:
        for ev in events:
            self.published += 1
            for sub in list(self._subs):
                if sub.wants(ev):
                    sub.offer(ev)
                    self.delivered += 1
