"""Escalation: an alarm nobody acknowledges goes further up, on time, and every step is recorded.

An unacknowledged alarm is escalated once its level's timeout (``[alarms] escalate_after``:
high-high and low-low use ``high_high``, high and low ``high``, every other level ``other``) has
passed since it last became unacknowledged (its raise, a re-alarm on a rise, its return from a
shelf, a suppression or maintenance; steps count from there): first to the grid's responsible
person, after twice the timeout to the enterprise's lead department. Each step is an
``escalated`` event in the alarm's history, so a restart does not repeat a step. A grid's own
alarm (a public report naming a place, not an enterprise; a flood) has the first step only. The clock is
injected: :meth:`Escalator.check` takes the time, and tests move it by hand.
"""

from __future__ import annotations

from alerts.book import AlarmBook
from alerts.model import UNACK, Alarm, AlarmEvent
from alerts.routing import escalation_recipients
from gateway.config import EscalateAfter
from gateway.registry import Registry

STEPS = 2
RESTARTS = frozenset({"raised", "rose", "unshelved", "unsuppressed", "returned_to_service"})
WHO = {1: "the grid's responsible person", 2: "the enterprise's lead department"}


def timeout_s(after: EscalateAfter, level: str) -> float:
    if level in ("high_high", "low_low"):
        return after.high_high
    if level in ("high", "low"):
        return after.high
    return after.other


class Escalator:
    """Finds the unacknowledged alarms that are due a step and records it."""

    def __init__(self, book: AlarmBook, registry: Registry, after: EscalateAfter) -> None:
        self.book = book
        self.registry = registry
        self.after = after
        self.escalated = 0
        self._cache: dict[int, tuple[int, int, int]] = {}  # alarm id -> (updated_at, since, steps done)

    def check(self, now_ms: int) -> list[AlarmEvent]:
        """Escalate every alarm that is due at ``now_ms``; the events made (to be dispatched)."""
        out: list[AlarmEvent] = []
        unacked = self.book.list_alarms(None, state=UNACK, limit=100_000)
        for alarm in unacked:
            if not alarm.grid:
                continue  # a gateway's own alarm has no grid to escalate in
            out += self._due(alarm, now_ms)
        if len(self._cache) > 2 * len(unacked) + 1000:
            keep = {a.id for a in unacked}
            self._cache = {k: v for k, v in self._cache.items() if k in keep}
        self.escalated += len(out)
        return out

    def _recipients(self, alarm: Alarm, step: int) -> tuple[str, ...]:
        if alarm.enterprise:
            return escalation_recipients(self.registry, alarm.enterprise, step)
        grid = self.registry.grids.get(alarm.grid)
        return (grid.responsible,) if grid is not None and grid.responsible else ()

    def _clock(self, alarm: Alarm) -> tuple[int, int]:
        """Since when the alarm has been unacknowledged, and how many steps it had since then.

        Read from its history once per change of the alarm (``updated_at``: every step that can
        restart the clock changes it), not every second: a district's open alarms would otherwise
        cost one history query each per check.
        """
        if alarm.unacked_since is not None:  # the book keeps the clock
            return alarm.unacked_since, alarm.escalations
        cached = self._cache.get(alarm.id)  # a book from before it did: from the history
        if cached is not None and cached[0] == alarm.updated_at:
            return cached[1], cached[2]
        history = self.book.history(alarm.id)
        # the clock runs from the last time the alarm became unacknowledged: its raise, a re-alarm,
        # or its return from a shelf, a suppression or maintenance; steps count from there
        last = next((i for i in range(len(history) - 1, -1, -1)
                     if history[i].type in RESTARTS and history[i].alarm.state == UNACK), None)
        since = alarm.raised_at if last is None else history[last].ts
        done = sum(1 for e in history[(last or 0):] if e.type == "escalated")
        self._cache[alarm.id] = (alarm.updated_at, since, done)
        return since, done

    def _due(self, alarm: Alarm, now_ms: int) -> list[AlarmEvent]:
        since, done = self._clock(alarm)
        period_ms = timeout_s(self.after, alarm.level) * 1000
        # a grid's own alarm (a public report about a place, a flood) has no lead department
        steps = STEPS if alarm.enterprise else 1
        due = min(steps, int((now_ms - since) // period_ms)) if now_ms >= since else 0
        events = []
        for step in range(done + 1, due + 1):
            to = self._recipients(alarm, step)
            note = (f"step {step}: not acknowledged within {step * period_ms / 1000:g} s; "
                    f"to {WHO[step]}" + (f" ({', '.join(to)})" if to else " (none configured)"))
            events.append(self.book.record(alarm.id, "escalated", now_ms, note, to))
        if events:
            self._cache[alarm.id] = (alarm.updated_at, since, done + len(events))
        return events
