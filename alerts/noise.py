"""Alarm floods and chattering alarms (EEMUA 191, ISA-18.2): found, counted, and kept off the pushes.

A **flood**: a grid with more than ``[alarms.flood] alarms`` new alarms within ``window`` seconds.
Public reports are not counted: they have limits of their own (the API's per address, the
book's per place and grid). At the alarm that crosses the line the grid gets one aggregated
notification (a ``flood`` alarm of kind system, to the grid's officers, with the count), and from
then on the condition events (raised, rose, lowered, cleared) of that grid's low and medium
priority alarms are not pushed to the MQTT topics and webhooks: they are in the book, the console
and the live stream. The flood ends when the window holds no more than half the threshold
(hysteresis, so it does not flap at the line); the flood alarm then clears with the total in its
value, and pushes resume. Actions (acknowledgements, dispatches), escalations and the alarms of
other grids pass as always.

A **chattering** alarm: ``[alarms.chatter] cycles`` raise/clear cycles within ``window`` seconds.
It is flagged once (a ``chattering`` event in its history, ``chattering`` true on the alarm) and
its further raises and clears are not pushed until it has been quiet for the window.

Neither ever holds back what must reach the officer (:func:`always_pushed`): high-high, low-low
and the gateway's own high priority alarms, and a gas detector's fault or communication loss. A
flood is a reason to summarise the rest, never to hide a gas leak or a dead gas detector; a
chattering high-high is flagged (it needs fixing, ISA-18.2) but each of its raises is pushed. A
further public report about a place with an open report alarm (a ``reported`` event) is never
pushed: the officer has that alarm, and its count and texts are in the console.

The monitor keeps its windows in memory and reads the clock it is given: tests drive it with
explicit times. It writes the flood alarms and chattering flags through the alarm book.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from alerts.book import AlarmBook
from alerts.model import PRIORITY, Alarm, AlarmEvent
from gateway.config import ChatterSection, FloodSection
from gateway.registry import Registry

CONDITION_TYPES = frozenset({"raised", "rose", "lowered", "cleared"})
GAS_KINDS = frozenset({"combustible_gas", "toxic_gas", "oxygen"})
DETECTOR_TROUBLE = frozenset({"fault", "communication"})  # kinds of a gas detector's own trouble


def gas_detectors(registry: Registry) -> frozenset[str]:
    """Ids (``enterprise/device``) of the devices with a combustible gas, toxic gas or oxygen point."""
    return frozenset(d.device_id for d in registry.devices
                     if any(registry.sensors[i].kind in GAS_KINDS for i in d.points.values()))


def always_pushed(alarm: Alarm, gas: frozenset[str]) -> bool:
    """High priority for the pushes: never held by a flood or chattering.

    The high priority levels of :data:`~alerts.model.PRIORITY` (high-high, low-low, data loss),
    and a fault (a fault reading, a read error) or a communication loss (offline, stale) of a
    device in ``gas`` (:func:`gas_detectors`), which count as high here: a gas detector that
    cannot tell is as urgent as one that reads high-high.
    """
    if PRIORITY.get(alarm.level, 3) == 1:
        return True
    return (alarm.kind in DETECTOR_TROUBLE and alarm.level != "maintenance"
            and f"{alarm.enterprise}/{alarm.device}" in gas)


@dataclass
class _Flood:
    started_at: int
    count: int  # new alarms in the grid since the flood began
    held: int = 0


@dataclass
class NoiseCounters:
    floods: int = 0
    chattering: int = 0
    held: int = 0  # events kept off the pushes
    by_grid: dict[str, int] = field(default_factory=dict)  # floods per grid


class NoiseMonitor:
    """Sees every alarm event; says which to push, and makes the flood and chattering events."""

    def __init__(self, book: AlarmBook, flood: FloodSection, chatter: ChatterSection) -> None:
        self.book = book
        self.gas = gas_detectors(book.registry)
        self.configure(flood, chatter)
        self._raises: dict[str, deque[int]] = {}  # grid -> times of new alarms in the window
        self._floods: dict[str, _Flood] = {}
        self._cycles: dict[int, deque[int]] = {}  # alarm id -> times it was raised
        self._chattering: dict[int, int] = {}  # alarm id -> last raise while chattering
        self.counters = NoiseCounters()

    def configure(self, flood: FloodSection, chatter: ChatterSection) -> None:
        """The flood and chatter settings from now on (a configuration reload)."""
        self.threshold = flood.alarms
        self.flood_window = int(flood.window * 1000)
        self.cycles = chatter.cycles
        self.chatter_window = int(chatter.window * 1000)

    def flooding(self, grid: str) -> bool:
        return grid in self._floods

    @property
    def flooding_grids(self) -> list[str]:
        return sorted(self._floods)

    def observe(self, events: list[AlarmEvent]) -> tuple[list[AlarmEvent], list[AlarmEvent]]:
        """``events`` plus the ones this made (flood, chattering), and those of them to push."""
        push: list[AlarmEvent] = []
        made: list[AlarmEvent] = []  # after the given ones: their ids are higher, the stream keeps order
        for ev in events:
            made += self._see(ev)
            if ev.type == "reported":  # one more report on an open report alarm: in the book only
                continue
            if self._held(ev):
                self.counters.held += 1
                if ev.alarm.grid in self._floods:
                    self._floods[ev.alarm.grid].held += 1
            elif ev.pushed:
                push.append(ev)
        return events + made, push + made

    def _see(self, ev: AlarmEvent) -> list[AlarmEvent]:
        a = ev.alarm
        if ev.type != "raised" or a.level == "flood" or a.kind == "report":
            return []
        made: list[AlarmEvent] = []
        # chattering: the same alarm raised again and again
        times = self._cycles.setdefault(a.id, deque())
        times.append(ev.ts)
        while times and times[0] < ev.ts - self.chatter_window:
            times.popleft()
        if len(times) >= self.cycles:
            if a.id not in self._chattering:
                self.counters.chattering += 1
                flag = self.book.flag_chattering(
                    a.id, ev.ts, f"{len(times)} raise/clear cycles within {self.chatter_window / 1000:g} s")
                if flag is not None:
                    made.append(flag)
            self._chattering[a.id] = ev.ts
        # flood: new alarms of one grid
        if not a.grid:
            return made
        window = self._raises.setdefault(a.grid, deque())
        window.append(ev.ts)
        self._prune(window, ev.ts)
        flood = self._floods.get(a.grid)
        if flood is not None:
            flood.count += 1
            self.book.flood(a.grid, True, ev.ts, flood.count, self._reason(a.grid, flood))
        elif len(window) > self.threshold:
            flood = self._floods[a.grid] = _Flood(ev.ts, len(window))
            self.counters.floods += 1
            self.counters.by_grid[a.grid] = self.counters.by_grid.get(a.grid, 0) + 1
            made += self.book.flood(a.grid, True, ev.ts, flood.count, self._reason(a.grid, flood))
        return made

    def _reason(self, grid: str, flood: _Flood) -> str:
        return (f"alarm flood: {flood.count} new alarms in grid {grid} since the flood began (more than "
                f"{self.threshold} in {self.flood_window / 60_000:g} min); high priority alarms are still pushed,"
                f" the others are in the console")

    def _prune(self, window: deque[int], now_ms: int) -> None:
        while window and window[0] <= now_ms - self.flood_window:
            window.popleft()

    def _held(self, ev: AlarmEvent) -> bool:
        a = ev.alarm
        if ev.type not in CONDITION_TYPES or a.level == "flood" or always_pushed(a, self.gas):
            return False
        if a.grid in self._floods:
            return True
        # the raise that flagged it is pushed with its flag; later ones are held
        return a.id in self._chattering and not (ev.type == "raised" and a.chattering is False)

    def tick(self, now_ms: int) -> list[AlarmEvent]:
        """Floods that calmed down and chattering that stopped by ``now_ms``; the events to push."""
        out: list[AlarmEvent] = []
        for grid, flood in list(self._floods.items()):
            window = self._raises.get(grid, deque())
            self._prune(window, now_ms)
            if len(window) <= self.threshold // 2:
                del self._floods[grid]
                reason = (f"the flood is over: {flood.count} new alarms from {flood.started_at} to {now_ms},"
                          f" {flood.held} notifications held back")
                out += self.book.flood(grid, False, now_ms, flood.count, reason)
        for alarm_id, last in list(self._chattering.items()):
            if last <= now_ms - self.chatter_window:
                del self._chattering[alarm_id]
        for alarm_id, times in list(self._cycles.items()):
            if times and times[-1] <= now_ms - self.chatter_window:
                del self._cycles[alarm_id]
        return out
