"""Event feeds: where a notifier takes the alarm events it pushes, and where it says it is done.

The alarm book's event log is durable, with ids that increase across the whole book. A
:class:`BookFeed` reads it after the notifier's own cursor, kept in the book (``cursors``, as
``notifier:<name>``), and moves that cursor only over events the notifier confirmed (``done``):
delivered, or refused for good. After a crash or a restart the notifier resumes at its cursor, so
every event is pushed at least once, in order; one in flight at the moment of the crash may be
pushed twice, with the same event id (the idempotency key receivers dedupe on). Events the noise
monitor held back or that belong to hidden alarms are marked in the book (``push = 0``) and
skipped; an event the gateway died before marking is pushed (better twice than never).

A :class:`QueueFeed` is the in-memory feed of a notifier on its own (tests, tools): what the
pipeline offers, in a bounded queue, counted as dropped when it is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Protocol

from alerts.book import AlarmBook
from alerts.model import AlarmEvent


class EventFeed(Protocol):
    """What a notifier reads: the pipeline ``offer``s, the notifier ``take``s and says ``done``."""

    def offer(self, events: list[AlarmEvent]) -> None: ...

    async def take(self, limit: int) -> list[AlarmEvent]: ...

    def done(self, event_id: int) -> None: ...

    def lag(self) -> int:
        """Events offered or in the log that the notifier has not confirmed yet."""
        ...

    def health(self) -> dict[str, int]: ...


class QueueFeed:
    """Events in memory, as offered; nothing survives the process."""

    def __init__(self, size: int = 10_000) -> None:
        self.queue: asyncio.Queue[AlarmEvent] = asyncio.Queue(size)
        self.dropped = 0
        self._out = 0  # taken, not done yet

    def offer(self, events: list[AlarmEvent]) -> None:
        for ev in events:
            try:
                self.queue.put_nowait(ev)
            except asyncio.QueueFull:
                self.dropped += 1

    async def take(self, limit: int) -> list[AlarmEvent]:
        out = [await self.queue.get()]
        while len(out) < limit and not self.queue.empty():
            out.append(self.queue.get_nowait())
        self._out += len(out)
        return out

    def done(self, event_id: int) -> None:
        self._out = max(0, self._out - 1)

    def lag(self) -> int:
        return self.queue.qsize() + self._out

    def health(self) -> dict[str, int]:
        return {"queued": self.queue.qsize() + self._out, "dropped": self.dropped}


class BookFeed:
    """The book's event log after a durable cursor, filtered to what this notifier pushes."""

    def __init__(self, book: AlarmBook, name: str, grids: frozenset[str] | None = None,
                 poll: float = 1.0, save_every: float = 0.1) -> None:
        self.book = book
        self.consumer = f"notifier:{name}"
        self.grids = grids
        self.poll = poll
        self.save_every = save_every
        cursor = book.cursor(self.consumer)
        if cursor is None:  # a new notifier starts with what happens from now on, not the whole history
            cursor = book.last_event_id()
            book.set_cursor(self.consumer, cursor)
        self.cursor = cursor  # everything up to here is done, and saved (or about to be)
        self._saved = cursor
        self._saved_at = 0.0
        self._read = cursor  # everything up to here has been read
        self._handed: deque[int] = deque()  # ids read, in order, not yet done
        self._done: set[int] = set()
        self.wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def offer(self, events: list[AlarmEvent]) -> None:
        """A hint that the log grew; the events themselves are read from the book."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is loop:
                self.wakeup.set()
                return
        loop.call_soon_threadsafe(self.wakeup.set)  # offered from an API worker thread

    async def take(self, limit: int) -> list[AlarmEvent]:
        self._loop = asyncio.get_running_loop()
        while True:
            self.wakeup.clear()
            rows = self.book.events_to_push(self._read, limit)
            out: list[AlarmEvent] = []
            for event_id, event in rows:
                self._read = event_id
                self._handed.append(event_id)
                if event is None or (self.grids is not None and event.alarm.grid not in self.grids):
                    self._done.add(event_id)  # not ours to push: done as soon as read
                else:
                    out.append(event)
            self._advance()
            if out:
                return out
            self._save(force=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self.wakeup.wait()

    def done(self, event_id: int) -> None:
        self._done.add(event_id)
        self._advance()

    def _advance(self) -> None:
        moved = False
        while self._handed and self._handed[0] in self._done:
            self._done.discard(self._handed[0])
            self.cursor = self._handed.popleft()
            moved = True
        if moved:
            self._save(force=not self._handed)

    def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.cursor != self._saved and (force or now - self._saved_at >= self.save_every):
            self.book.set_cursor(self.consumer, self.cursor)
            self._saved, self._saved_at = self.cursor, now

    def lag(self) -> int:
        return max(0, self.book.last_event_id() - self.cursor)

    def health(self) -> dict[str, int]:
        return {"cursor": self.cursor, "lag_events": self.lag(), "in_flight": len(self._handed)}
