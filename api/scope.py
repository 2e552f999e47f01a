"""Scoping, computed in one place: which enterprises and grids a login may see.

``admin`` sees everything; ``supervisor`` the enterprises of every grid whose area code starts with
its area (a district or town); ``department`` the enterprises where it is the lead or a cooperating
department; ``officer`` the enterprises of the grids it belongs to; ``enterprise`` itself. A grid
is in scope when it is one of the caller's grids (supervisor, officer) or holds an enterprise in
scope (department, enterprise). Outside the scope a thing does not exist: the checks here raise
:class:`~gateway.errors.RegistryError`, which the app answers with 404, for an id that is unknown
and for one that is outside the scope alike, so nobody can probe for what exists. A list filter
that names something outside the scope is answered the same way (404), not with an empty list.
The scope is computed per request from the live registry, so registry changes apply at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from alerts.scope import Within
from api.auth import CurrentUser
from api.deps import GatewayDep
from gateway.config import User
from gateway.errors import RegistryError
from gateway.register.policy import sees
from gateway.registry import Registry


@dataclass(frozen=True, slots=True)
class Scope:
    """What a caller may see: enterprise and grid ids, or None for everything (admin).

    Alarms are seen through :attr:`within`: those of the enterprises, plus the enterprise-less
    alarms (public reports, floods) of the grids a supervisor or officer serves, plus those
    dispatched to a department login's department.
    """

    enterprises: frozenset[str] | None
    grids: frozenset[str] | None
    alarm_grids: frozenset[str] = frozenset()
    department: str | None = None

    @property
    def within(self) -> Within:
        return Within(self.enterprises, self.alarm_grids, self.department)

    @property
    def everything(self) -> bool:
        return self.enterprises is None

    def has_enterprise(self, enterprise: str) -> bool:
        return self.enterprises is None or enterprise in self.enterprises

    def has_grid(self, grid: str) -> bool:
        return self.grids is None or grid in self.grids

    def require_enterprise(self, registry: Registry, enterprise: str) -> None:
        """Raise RegistryError (404) unless the enterprise exists and is in scope."""
        if enterprise not in registry.enterprises or not self.has_enterprise(enterprise):
            raise RegistryError(f"enterprise {enterprise!r} not found")

    def require_grid(self, registry: Registry, grid: str) -> None:
        """Raise RegistryError (404) unless the grid exists and is in scope."""
        if grid not in registry.grids or not self.has_grid(grid):
            raise RegistryError(f"grid {grid!r} not found")

    def narrow(self, registry: Registry, *, enterprise: str | None = None,
               grid: str | None = None) -> frozenset[str] | None:
        """The enterprises a filtered query covers (None: all); 404 for a filter outside the scope."""
        if enterprise is not None:
            self.require_enterprise(registry, enterprise)
        if grid is not None:
            self.require_grid(registry, grid)
        ents = self.enterprises
        if grid is not None:
            in_grid = frozenset(registry.enterprises_in_grids([grid]))
            ents = in_grid if ents is None else ents & in_grid
        if enterprise is not None:
            ents = frozenset({enterprise}) if ents is None else ents & {enterprise}
        return ents


def scope_of(registry: Registry, user: User) -> Scope:
    """The scope of a login under the current registry (what it sees: :func:`gateway.register.policy.sees`)."""
    enterprises, grids = sees(registry, user)
    if enterprises is None or grids is None:
        return Scope(None, None)
    if user.role in ("supervisor", "officer"):  # the enterprise-less alarms of their grids too
        return Scope(frozenset(enterprises), frozenset(grids), frozenset(grids))
    return Scope(frozenset(enterprises), frozenset(grids),
                 department=user.department if user.role == "department" else None)


def caller_scope(gateway: GatewayDep, user: CurrentUser) -> Scope:
    """The scope of the caller of this request."""
    return scope_of(gateway.registry, user)


CallerScope = Annotated[Scope, Depends(caller_scope)]
