"""Alarm-system statistics over a period: how officers respond, and how loaded each grid is (EEMUA 191).

Everything is read from the alarm book's ``events`` (every step of an alarm, with its time, actor
and recipients) in a few SQL queries, within a :class:`~alerts.scope.Within` (the caller's scope, made SQL by
:func:`~alerts.scope.scope_sql` as in the book's own queries).
A period is half-open, ``start <= ts < end`` (epoch ms), and is read **as of** ``end``: an event at
or after ``end`` counts for nothing, so the figures of a past period do not change later. The
definitions below are the contract of ``/api/v1/stats``. A raise counts whatever the alarm's
state then (the raise of a shelved or out-of-service alarm too, which the book records with its
recipients and shows in the console without pushing it), as the flood monitor counts raises.

Per officer (:func:`officer_stats`), over the alarms *received*: alarms with a ``raised`` event in
the period whose recipients include the officer (floods and public reports included; an alarm
re-raised several times counts once). For each, ``t0`` is the alarm's first raise in the period.

- ``acknowledged``: received alarms with an ``acknowledged`` event at or after ``t0`` (before
  ``end``); ``median_ack_s`` / ``p90_ack_s``: from ``t0`` to the first such event, in seconds.
- ``closed``, ``median_close_s`` / ``p90_close_s``: the same for the ``closed`` event (case closed).
- ``overdue``: received alarms whose first acknowledgement came at or after ``t0`` plus the
  escalation timeout of the alarm's level (:func:`alerts.escalation.timeout_s`; the level is the
  alarm's as the book holds it, the one its priority and the escalator use), or that had none by
  ``end`` when ``end`` is at or past that time. Computed from the times, so it does not depend on
  when the escalator ran, and it covers the alarms the escalator skips (floods, reports without an enterprise).
- ``acked_by_them``: received alarms whose first acknowledgement (the one timed above) was made by
  a login acting as that officer (``User.officer``, whatever the login's role).
- Percentiles are numpy's linear interpolation (``np.percentile``, the default method), rounded to
  the millisecond; null when there is nothing to take them of.

Per grid (:func:`alarm_stats`), alarms counted by their grid (``alarms.grid``; a gateway's own
alarms belong to no grid and are in none):

- ``alarms``: ``raised`` events in the period of alarms other than floods (a re-raise is a new
  alarm annunciation, as the flood monitor counts them); ``rate_per_10min``: ``alarms`` per 10
  minutes of the period; ``priority_mix`` and ``priority_fractions``: those raises by the priority
  of the alarm's level (``PRIORITY``, a level without one is low; fractions null when there are
  none); ``by_kind``: those raises by alarm kind.
- ``floods``: ``raised`` events in the period of the grid's flood alarm (kind ``system``, sensor
  ``grid/<grid>/flood``): each raise is one flood.
- ``chattering``: alarms with a ``chattering`` event (flagged) in the period.
- ``stale``: alarms that at ``end`` are unacknowledged or acknowledged (condition active, shown;
  the state of their last event before ``end``) and whose last raise before ``end`` is more than
  24 h before ``end``: active for more than a day.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import orjson

from alerts.book import AlarmBook
from alerts.escalation import timeout_s
from alerts.model import ACKED, CASE_STATES, CLOSED, KINDS, PRIORITY, PRIORITY_NAMES, UNACK
from alerts.scope import Within, scope_sql
from gateway.config import EscalateAfter, User
from gateway.registry import Registry

STALE_MS = 86_400_000  # EEMUA 191: an alarm active for more than 24 h is stale
PRIORITIES = ("high", "medium", "low")
OPEN_CASES = orjson.dumps([c for c in CASE_STATES if c != CLOSED]).decode()
TARGETS: dict[str, object] = {  # EEMUA 191 / ISA-18.2 practice, for comparison with each grid's figures
    "alarms_per_10min": 1,  # steady state, per operator
    "flood_above_alarms_per_10min": 10,  # more than this is a flood
    "priority_mix": {"high": 0.05, "medium": 0.15, "low": 0.80},
    "chattering": 0,
    "stale_after_h": 24,
}


@dataclass(frozen=True, slots=True)
class Period:
    """``start_ms <= ts < end_ms``, epoch ms; empty or reversed periods are refused."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ValueError(f"a period must end after it starts ({self.start_ms} .. {self.end_ms})")

    @property
    def tens_of_minutes(self) -> float:
        return (self.end_ms - self.start_ms) / 600_000


@dataclass(frozen=True, slots=True)
class OfficerStats:
    officer: str
    alarms_received: int = 0
    acknowledged: int = 0
    median_ack_s: float | None = None
    p90_ack_s: float | None = None
    closed: int = 0
    median_close_s: float | None = None
    p90_close_s: float | None = None
    overdue: int = 0
    acked_by_them: int = 0


@dataclass(frozen=True, slots=True)
class GridStats:
    grid: str | None  # None: the total over the grids asked for
    alarms: int
    rate_per_10min: float
    floods: int
    chattering: int
    stale: int
    priority_mix: dict[str, int]
    priority_fractions: dict[str, float | None]
    by_kind: dict[str, int]


def _json(values: Iterable[str]) -> str:
    return orjson.dumps(sorted(values)).decode()


def officers_serving(registry: Registry, grids: Collection[str] | None) -> list[str]:
    """The officers of ``grids`` (members, responsible and contact persons), in the registry's
    order; every officer when ``grids`` is None (an admin)."""
    if grids is None:
        return list(registry.officers)
    serving = set()
    for gid in grids:
        g = registry.grids.get(gid)
        if g is not None:
            serving.update(o for o in (*g.officers, g.responsible, g.contact) if o)
    return [o for o in registry.officers if o in serving]


def login_officers(users: Iterable[User]) -> dict[str, str]:
    """Login username -> the officer it acts as (the actor of an event is the username)."""
    return {u.username: u.officer for u in users if u.officer}


def _seconds(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    median, p90 = np.percentile(np.asarray(values, dtype=np.float64), [50, 90])
    return round(float(median), 3), round(float(p90), 3)


# CROSS JOIN fixes SQLite's join order: the period's events by time (events_ts), then each alarm's
# own events by alarm (events_alarm), never a scan of the whole history.
OFFICER_SQL = """
WITH raises AS (
    SELECT e.alarm_id, e.ts, e.recipients FROM events e CROSS JOIN alarms a ON a.id = e.alarm_id
    WHERE e.type = 'raised' AND e.ts >= ? AND e.ts < ? AND {scope}
),
first AS (SELECT alarm_id, MIN(ts) AS t0 FROM raises GROUP BY alarm_id),
got AS (
    SELECT DISTINCT r.alarm_id, j.value AS officer FROM raises r, json_each(r.recipients) j
    WHERE j.value IN (SELECT value FROM json_each(?))
),
acks AS (
    SELECT e.alarm_id, e.ts, e.actor, ROW_NUMBER() OVER (PARTITION BY e.alarm_id ORDER BY e.ts, e.id) AS n
    FROM first f CROSS JOIN events e ON e.alarm_id = f.alarm_id
    WHERE e.type = 'acknowledged' AND e.ts >= f.t0 AND e.ts < ?
),
closes AS (
    SELECT e.alarm_id, MIN(e.ts) AS ts FROM first f CROSS JOIN events e ON e.alarm_id = f.alarm_id
    WHERE e.type = 'closed' AND e.ts >= f.t0 AND e.ts < ? GROUP BY e.alarm_id
)
SELECT g.officer, f.t0, a.level, k.ts, k.actor, c.ts
FROM got g JOIN first f ON f.alarm_id = g.alarm_id JOIN alarms a ON a.id = g.alarm_id
LEFT JOIN acks k ON k.alarm_id = g.alarm_id AND k.n = 1
LEFT JOIN closes c ON c.alarm_id = g.alarm_id
"""


def officer_stats(book: AlarmBook, officers: Collection[str], logins: Mapping[str, str],
                  after: EscalateAfter, within: Within, period: Period) -> list[OfficerStats]:
    """The response figures of each of ``officers`` (in the order given) over alarms in ``within``."""
    scope, scope_args = scope_sql(within, alias="a")
    rows = book.read(OFFICER_SQL.format(scope=scope),
                     [period.start_ms, period.end_ms, *scope_args, _json(officers), period.end_ms, period.end_ms])
    per: dict[str, list[tuple]] = {o: [] for o in officers}
    for row in rows:
        per[row[0]].append(row[1:])
    return [_one_officer(o, per[o], logins, after, period.end_ms) for o in officers]


def _one_officer(officer: str, rows: list[tuple], logins: Mapping[str, str], after: EscalateAfter,
                 end_ms: int) -> OfficerStats:
    acks, closes = [], []
    overdue = by_them = 0
    for t0, level, ack_ts, ack_actor, close_ts in rows:
        limit_ms = timeout_s(after, level) * 1000
        if ack_ts is not None:
            acks.append((ack_ts - t0) / 1000)
            if logins.get(ack_actor or "") == officer:
                by_them += 1
        if (ack_ts if ack_ts is not None else end_ms) - t0 >= limit_ms:
            overdue += 1
        if close_ts is not None:
            closes.append((close_ts - t0) / 1000)
    median_ack, p90_ack = _seconds(acks)
    median_close, p90_close = _seconds(closes)
    return OfficerStats(officer, len(rows), len(acks), median_ack, p90_ack, len(closes), median_close,
                        p90_close, overdue, by_them)


COUNTS_SQL = """
SELECT e.type, a.grid, a.kind, a.level, a.kind = 'system' AND a.sensor_id = 'grid/' || a.grid || '/flood',
       COUNT(*), COUNT(DISTINCT e.alarm_id)
FROM events e CROSS JOIN alarms a ON a.id = e.alarm_id
WHERE e.type IN ('raised', 'chattering') AND e.ts >= ? AND e.ts < ?
  AND a.grid IN (SELECT value FROM json_each(?)) AND {scope}
GROUP BY 1, 2, 3, 4, 5
"""

# Candidates first: an alarm active at end since more than 24 h before it was raised before then
# (raised_at is its first raise) and was not closed before then: its case is open now, or it has a
# ``closed`` event since. Only those alarms' events are read.
STALE_SQL = """
WITH cand AS (
    SELECT a.id, a.grid FROM alarms a
    WHERE a.id IN (SELECT id FROM alarms WHERE case_state IN (SELECT value FROM json_each(?))
                   UNION SELECT alarm_id FROM events WHERE type = 'closed' AND ts >= ?)
      AND a.raised_at < ? AND a.grid IN (SELECT value FROM json_each(?)) AND {scope}
),
last AS (
    SELECT e.alarm_id, json_extract(CAST(e.snapshot AS TEXT), '$.state') AS state,
           ROW_NUMBER() OVER (PARTITION BY e.alarm_id ORDER BY e.ts DESC, e.id DESC) AS n
    FROM cand c CROSS JOIN events e ON e.alarm_id = c.id WHERE e.ts < ?
),
raised AS (
    SELECT e.alarm_id, MAX(e.ts) AS ts FROM cand c CROSS JOIN events e ON e.alarm_id = c.id
    WHERE e.type = 'raised' AND e.ts < ? GROUP BY e.alarm_id
)
SELECT c.grid, COUNT(*) FROM cand c
JOIN last l ON l.alarm_id = c.id AND l.n = 1 JOIN raised r ON r.alarm_id = c.id
WHERE l.state IN (?, ?) AND r.ts < ?
GROUP BY c.grid
"""


def alarm_stats(book: AlarmBook, grids: Collection[str], within: Within, period: Period) -> list[GridStats]:
    """The load figures of each of ``grids`` (in the order given) over alarms in ``within``."""
    scope, scope_args = scope_sql(within, alias="a")
    grid_list = _json(grids)
    raises: dict[str, dict[tuple[str, str], int]] = {g: {} for g in grids}  # grid -> (kind, level) -> n
    floods = dict.fromkeys(grids, 0)
    chattering = dict.fromkeys(grids, 0)
    for etype, grid, kind, level, is_flood, n, distinct in book.read(
            COUNTS_SQL.format(scope=scope), [period.start_ms, period.end_ms, grid_list, *scope_args]):
        if etype == "chattering":
            chattering[grid] += distinct
        elif is_flood:
            floods[grid] += n
        else:
            raises[grid][(kind, level)] = raises[grid].get((kind, level), 0) + n
    cut = period.end_ms - STALE_MS
    stale = dict.fromkeys(grids, 0)
    args = [OPEN_CASES, cut, cut, grid_list, *scope_args, period.end_ms, period.end_ms, UNACK, ACKED, cut]
    for grid, n in book.read(STALE_SQL.format(scope=scope), args):
        stale[grid] = n
    return [_grid(g, raises[g], floods[g], chattering[g], stale[g], period) for g in grids]


def _grid(grid: str | None, raises: Mapping[tuple[str, str], int], floods: int, chattering: int, stale: int,
          period: Period) -> GridStats:
    mix = dict.fromkeys(PRIORITIES, 0)
    by_kind = dict.fromkeys(KINDS, 0)
    for (kind, level), n in raises.items():
        mix[PRIORITY_NAMES[PRIORITY.get(level, 3)]] += n
        by_kind[kind] = by_kind.get(kind, 0) + n
    total = sum(raises.values())
    fractions = {p: (n / total if total else None) for p, n in mix.items()}
    return GridStats(grid, total, total / period.tens_of_minutes, floods, chattering, stale, mix, fractions,
                     by_kind)


def total_stats(rows: Iterable[GridStats], period: Period) -> GridStats:
    """The figures of several grids together (``grid`` None): sums, and the rate and mix of the sums."""
    rows = list(rows)
    mix = {p: sum(r.priority_mix[p] for r in rows) for p in PRIORITIES}
    by_kind = dict.fromkeys(KINDS, 0)
    for r in rows:
        for kind, n in r.by_kind.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
    alarms = sum(r.alarms for r in rows)
    return GridStats(None, alarms, alarms / period.tens_of_minutes, sum(r.floods for r in rows),
                     sum(r.chattering for r in rows), sum(r.stale for r in rows), mix,
                     {p: (n / alarms if alarms else None) for p, n in mix.items()}, by_kind)
