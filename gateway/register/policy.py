"""Who sees and who changes which registry item: pure functions of the registry and the login.

Seeing follows the login's scope: an admin sees everything; the others see the enterprises of
their scope with their devices, the grids of their scope or of those enterprises, the officers of
those grids (a supervisor also the officers of no grid, to put them in one), and every department
(names a dispatch picks from). What a login cannot see is a 404, as if it did not exist.

Changing: an admin changes everything. A supervisor changes grids, enterprises and devices of its
area (before and after the change) and officers who serve no grid outside it; departments are the
admin's. An enterprise login changes its own devices and points, and never loosens a gas point
(:func:`gateway.register.edit.loosened`) nor retires a gas detector. Officers and departments
only read. A change a login may see but not make is a 403.
"""

from __future__ import annotations

from typing import Any

from gateway.config import User
from gateway.register.edit import GAS_KINDS, EditRefused, Plan, loosened
from gateway.registry import Registry


def sees(registry: Registry, user: User) -> tuple[set[str] | None, set[str] | None]:
    """The enterprises and grids a login sees (None: all), under the registry as it is now: an admin
    everything; a supervisor the grids under its area and their enterprises; an officer the grids it
    serves (or is responsible for) and theirs; a department the enterprises where it is lead or
    cooperating, an enterprise itself, and the grids of those enterprises."""
    if user.role == "admin":
        return None, None
    if user.role == "supervisor":
        grids = registry.grids_in_area(user.area) if user.area else set()
    elif user.role == "officer":
        grids = registry.grids_of_officer(user.officer) if user.officer else set()
    elif user.role == "department":
        ents = registry.enterprises_of_department(user.department or "")
        return ents, {registry.enterprises[e].grid for e in ents}
    else:
        ents = {user.enterprise} if user.enterprise in registry.enterprises else set()
        return ents, {registry.enterprises[e].grid for e in ents}
    return registry.enterprises_in_grids(grids), grids


def visible(registry: Registry, user: User, section: str, item: dict[str, Any]) -> bool:
    """Whether ``user`` sees ``item`` of ``section`` (as stored: retired items too)."""
    enterprises, grids = sees(registry, user)
    if enterprises is None or grids is None or section == "departments":
        return True
    if section == "grids":
        return item.get("id") in grids
    if section == "enterprises":
        return item.get("id") in enterprises
    if section == "devices":
        return item.get("enterprise") in enterprises
    # officers: those of the grids seen; a supervisor's also those of no grid
    served = registry.grids_of_officer(str(item.get("id")))
    return bool(served & grids) or (user.role == "supervisor" and not served)


def may_write(user: User, section: str) -> bool:
    """Whether the login's role changes ``section`` at all (the rest is checked per change)."""
    if user.role == "admin":
        return True
    if user.role == "supervisor":
        return section != "departments"  # the admin's
    return user.role == "enterprise" and section == "devices"


def could_see(registry: Registry, user: User, section: str, item: dict[str, Any]) -> bool:
    """Whether ``user`` would see a new ``item`` once made: it lies in the login's scope (a new
    enterprise in a grid it sees, a new device of an enterprise it sees)."""
    enterprises, grids = sees(registry, user)
    if enterprises is None or grids is None or section in ("departments", "officers"):
        return True
    if section == "grids":
        return user.role == "supervisor" and str(item.get("area", "")).startswith(user.area or "\0")
    if section == "enterprises":
        return item.get("grid") in grids
    return item.get("enterprise") in enterprises


def _in_area(registry: Registry, area: str, section: str, item: dict[str, Any] | None) -> bool:
    if item is None:
        return True
    if section == "grids":
        return str(item.get("area", "")).startswith(area)
    if section == "enterprises":
        grid = registry.grids.get(str(item.get("grid")))
        return grid is not None and grid.area.startswith(area)
    if section == "devices":
        ent = registry.enterprises.get(str(item.get("enterprise")))
        grid = registry.grids.get(ent.grid) if ent is not None else None
        return grid is not None and grid.area.startswith(area)
    if section == "officers":
        return all(registry.grids[g].area.startswith(area) for g in registry.grids_of_officer(str(item.get("id"))))
    return False  # departments


def check_plan(registry: Registry, user: User, plan: Plan) -> None:
    """Raise :class:`EditRefused` (403) unless ``user`` may make every edit of ``plan``."""
    for e in plan.edits:
        what = f"{e.section} {e.key}"
        if user.role == "admin":
            continue
        if user.role == "supervisor":
            area = user.area or "\0"
            if e.section == "departments":
                raise EditRefused(f"{what}: departments are changed by an admin", 403)
            if not (_in_area(registry, area, e.section, e.old) and _in_area(registry, area, e.section, e.new)):
                raise EditRefused(f"{what}: outside area {user.area}", 403)
            continue
        if user.role == "enterprise":
            if e.section != "devices" or any(
                    x is not None and x.get("enterprise") != user.enterprise for x in (e.old, e.new)):
                raise EditRefused(f"{what}: an enterprise login changes only its own devices", 403)
            if e.action == "retire" and any(
                    isinstance(p, dict) and p.get("kind") in GAS_KINDS for p in (e.old or {}).get("points", [])):
                raise EditRefused(f"{what}: a gas detector is retired by the grid's supervisor, not the enterprise",
                                  403)
            looser = loosened(e.old, e.new) if e.action != "retire" else []
            if looser:
                raise EditRefused(f"{what}: an enterprise cannot loosen its gas alarms: {'; '.join(looser)}", 403)
            continue
        raise EditRefused(f"{what}: a {user.role} login reads the registry, it does not change it", 403)
