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
