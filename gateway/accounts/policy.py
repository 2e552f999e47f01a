"""Who may manage which login, and whether a login's references exist: pure functions of the registry.

An admin manages every login. A supervisor manages the logins within its area: an officer all of
whose grids lie in the area, an enterprise whose grid does, and a supervisor of a narrower area
(a longer code under its own). Never an admin, a department (departments serve enterprises across
areas: an admin's business) or a supervisor of its own or a wider area, so it cannot disable or
demote its peers or itself. A login a supervisor does not manage does not exist for it (404), and
a new or changed login that would fall outside its area is refused as if the officer or
enterprise it names did not exist (422), so nothing outside the area can be probed.
"""

from __future__ import annotations

from gateway.config import User
from gateway.errors import AccountForbidden, InvalidAccount
from gateway.registry import Registry


def reference_problems(registry: Registry, user: User) -> list[str]:
    """What the login names that the registry lacks, like ``gridgate check`` says it."""
    refs = {"officer": registry.officers, "department": registry.departments, "enterprise": registry.enterprises}
    return [f"{key} {getattr(user, key)!r} does not exist" for key, known in refs.items()
            if getattr(user, key) is not None and getattr(user, key) not in known]


def within_area(registry: Registry, area: str, target: User) -> bool:
    """Whether a supervisor of ``area`` manages ``target``."""
    if target.role == "officer" and target.officer is not None:
        grids = registry.grids_of_officer(target.officer)
        return bool(grids) and all(registry.grids[g].area.startswith(area) for g in grids)
    if target.role == "enterprise" and target.enterprise in registry.enterprises:
        return registry.grid_of(target.enterprise).area.startswith(area)
    if target.role == "supervisor" and target.area is not None:
        return target.area.startswith(area) and len(target.area) > len(area)
    return False


def manages(registry: Registry, manager: User, target: User) -> bool:
    """Whether ``manager`` may see and change ``target``."""
    if manager.role == "admin":
        return True
    return manager.role == "supervisor" and manager.area is not None and within_area(registry, manager.area, target)


def check_new_state(registry: Registry, manager: User, user: User) -> None:
    """Raise unless ``manager`` may make a login look like ``user`` (create it, or change it into it)."""
    if manager.role == "supervisor":
        if user.role in ("admin", "department"):
            raise AccountForbidden(f"a supervisor may not manage {user.role} logins")
        if user.role == "supervisor" and not within_area(registry, manager.area or "", user):
            raise AccountForbidden("a supervisor may manage supervisors only of an area within its own")
    elif manager.role != "admin":
        raise AccountForbidden(f"a {manager.role} login may not manage logins")
    problems = reference_problems(registry, user)
    if not problems and not manages(registry, manager, user):
        key = "officer" if user.role == "officer" else "enterprise"
        problems = [f"{key} {getattr(user, key)!r} does not exist"]
    if problems:
        raise InvalidAccount("; ".join(problems))
