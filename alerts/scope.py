"""The caller's scope over alarms, and the one rule that decides whether an alarm is in it.

A :class:`Within` names what a caller may see: the alarms of some enterprises, the
enterprise-less alarms (public reports, floods) of some grids, and the alarms dispatched to one
department. :func:`scope_sql` turns it into the SQL filter every read of the book's tables uses
(the book's queries and actions, the statistics), for the ``alarms`` table or the ``events``
table; :meth:`Within.covers` is the same rule on one alarm in memory, for the live stream, which
filters events as they are published. A test holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import orjson

if TYPE_CHECKING:
    from alerts.model import Alarm


@dataclass(frozen=True, slots=True)
class Within:
    """The alarms a caller may see: those of ``enterprises`` (None: everything), the enterprise-less
    alarms of ``grids`` (a public report, a grid's flood), and those dispatched to ``department``."""

    enterprises: frozenset[str] | None
    grids: frozenset[str] = frozenset()
    department: str | None = None

    def covers(self, alarm: Alarm) -> bool:
        """Whether ``alarm`` is in scope: the rule of :func:`scope_sql`, clause for clause (change one,
        change the other; ``tests/alerts/test_scope.py`` holds them to the same answers)."""
        if self.enterprises is None:
            return True
        if self.department is not None and alarm.department == self.department:
            return True
        if alarm.enterprise:
            return alarm.enterprise in self.enterprises
        return alarm.grid in self.grids


EVERYTHING = Within(None)
ScopeArg = Within | Collection[str] | None
"""A scope as callers pass it: a Within, a collection of enterprise ids, or None (everything)."""


def as_within(scope: ScopeArg) -> Within:
    """The Within of ``scope`` (None: :data:`EVERYTHING`; enterprise ids: those enterprises)."""
    if scope is None:
        return EVERYTHING
    if isinstance(scope, Within):
        return scope
    return Within(frozenset(scope))


def _json(values: Collection[str]) -> str:
    return orjson.dumps(sorted(values)).decode()


def scope_sql(scope: ScopeArg, table: Literal["alarms", "events"] = "alarms",
              alias: str | None = None) -> tuple[str, list[object]]:
    """The SQL condition selecting the rows of ``table`` in scope, and its arguments.

    ``alias`` is the name the query gives the table (``alarms a``: ``"a"``). An event is in scope
    when its alarm is: the events table carries its alarm's enterprise and grid, and the department
    is the one the alarm is dispatched to now. The clauses are those of :meth:`Within.covers`; the
    id lists go in as one JSON argument each, so a scope of any size binds three values at most.
    """
    w = as_within(scope)
    if w.enterprises is None:
        return "1", []
    col = f"{alias or table}."
    ors = [f"({col}enterprise != '' AND {col}enterprise IN (SELECT value FROM json_each(?)))",
           f"({col}enterprise = '' AND {col}grid IN (SELECT value FROM json_each(?)))"]
    args: list[object] = [_json(w.enterprises), _json(w.grids)]
    if w.department is not None:
        ors.insert(0, f"{col}department = ?" if table == "alarms"
                   else f"{col}alarm_id IN (SELECT id FROM alarms WHERE department = ?)")
        args.insert(0, w.department)
    return "(" + " OR ".join(ors) + ")", args
