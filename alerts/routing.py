"""Routing: who receives an enterprise's alarms. A pure function of the registry.

An alarm goes at once to the officers of the grid the enterprise belongs to. (Escalation to the
grid's responsible person and the lead department comes with the alarm-management issue.)
"""

from __future__ import annotations

from gateway.registry import Registry


def recipients_of(registry: Registry, enterprise: str) -> tuple[str, ...]:
    """The officers who receive ``enterprise``'s alarms, in the grid's order.

    A gateway's own (system) alarm has no enterprise and goes to no officer: admins see it.
    """
    if not enterprise:
        return ()
    return tuple(registry.officers_of(enterprise))


def escalation_recipients(registry: Registry, enterprise: str, step: int) -> tuple[str, ...]:
    """Who an unacknowledged alarm goes to at escalation ``step``: 1, the grid's responsible person
    (an officer id); 2, the enterprise's lead department (``department:<id>``). Empty when the grid
    has no responsible person configured: the next step still follows on time."""
    if not enterprise:
        return ()
    if step == 1:
        responsible = registry.grid_of(enterprise).responsible
        return (responsible,) if responsible else ()
    if step == 2:
        return (f"department:{registry.enterprises[enterprise].lead_department}",)
    return ()
