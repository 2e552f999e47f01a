"""Routing: who receives an enterprise's alarms. Pure functions of the registry (and the event time).

An alarm goes at once to those officers of the enterprise's grid who are on duty at the event's
time (``Officer.duty``, read in ``gateway.timezone``; see :mod:`gateway.duty`), and to all of the
grid's officers when none of them is on duty. An officer without a duty schedule is always on
duty. Unacknowledged alarms escalate to the grid's responsible person, then to the enterprise's
lead department, whatever their duty.
"""

from __future__ import annotations

from gateway.registry import Registry


def recipients_of(registry: Registry, enterprise: str, at_ms: int | None = None) -> tuple[str, ...]:
    """The officers who receive ``enterprise``'s alarms, in the grid's order: those on duty at
    ``at_ms`` (epoch ms); all of them when none is on duty, or when ``at_ms`` is None.

    A gateway's own (system) alarm has no enterprise and goes to no officer: admins see it.
    """
    if not enterprise or enterprise not in registry.enterprises:  # none, or retired from the registry
        return ()
    officers = registry.officers_of(enterprise)
    if at_ms is None:
        return tuple(officers)
    return tuple(registry.duty.on_duty_among(officers, at_ms) or officers)


def escalation_recipients(registry: Registry, enterprise: str, step: int, grid: str = "") -> tuple[str, ...]:
    """Who an unacknowledged alarm goes to at escalation ``step``: 1, the grid's responsible person
    (an officer id); 2, the enterprise's lead department (``department:<id>``). Empty when the grid
    has no responsible person configured: the next step still follows on time. A grid's own alarm
    (no ``enterprise``, its ``grid`` given: a public report of a place, a flood) has step 1 only."""
    known = enterprise in registry.enterprises  # not retired
    if step == 1:
        g = registry.grid_of(enterprise) if known else registry.grids.get(grid)
        return (g.responsible,) if g is not None and g.responsible else ()
    if step == 2 and known:
        return (f"department:{registry.enterprises[enterprise].lead_department}",)
    return ()
