"""Escalation: an alarm nobody acknowledges goes further up, on time, and every step is recorded.

An unacknowledged alarm is escalated once its level's timeout (``[alarms] escalate_after``:
high-high and low-low use ``high_high``, high and low ``high``, every other level ``other``) has
passed since it last became unacknowledged (its raise, a re-alarm on a rise, its return from a
shelf, a suppression or maintenance; steps count from there): first to the grid's responsible
person, after twice the timeout to the enterprise's lead department. Each step is an
``escalated`` event in the alarm's history, and the book counts them (``escalations``, reset
with ``unacked_since``), so a restart does not repeat a step. A grid's own alarm (a public report
naming a place, not an enterprise; a flood) has the first step only. The clock is injected:
:meth:`Escalator.check` takes the time, and tests move it by hand.
"""

from __future__ import annotations

from alerts.book import AlarmBook
from alerts.model import UNACK, Alarm, AlarmEvent
from alerts.routing import escalation_recipients
from gateway.config import EscalateAfter
from gateway.registry import Registry

STEPS = 2
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

    def check(self, now_ms: int) -> list[AlarmEvent]:
        """Escalate every alarm that is due at ``now_ms``; the events made (to be dispatched)."""
        out: list[AlarmEvent] = []
        for alarm in self.book.list_alarms(None, state=UNACK, limit=100_000):
            if not alarm.grid:
                continue  # a gateway's own alarm has no grid to escalate in
            out += self._due(alarm, now_ms)
        self.escalated += len(out)
        return out

    def _due(self, alarm: Alarm, now_ms: int) -> list[AlarmEvent]:
        # the book keeps the clock: when the alarm last became unacknowledged, and the steps since
        since = alarm.unacked_since if alarm.unacked_since is not None else alarm.raised_at
        done = alarm.escalations
        period_ms = timeout_s(self.after, alarm.level) * 1000
        # a grid's own alarm (a public report about a place, a flood) has no lead department
        steps = STEPS if alarm.enterprise else 1
        due = min(steps, int((now_ms - since) // period_ms)) if now_ms >= since else 0
        events = []
        for step in range(done + 1, due + 1):
            to = escalation_recipients(self.registry, alarm.enterprise, step, alarm.grid)
            note = (f"step {step}: not acknowledged within {step * period_ms / 1000:g} s; "
                    f"to {WHO[step]}" + (f" ({', '.join(to)})" if to else " (none configured)"))
            events.append(self.book.record(alarm.id, "escalated", now_ms, note, to))
        return events
