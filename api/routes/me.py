"""``GET /me``: the caller's login, role, what it acts as, and the grids and enterprises in its scope."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import CurrentUser
from api.deps import GatewayDep
from api.scope import CallerScope

router = APIRouter(tags=["me"])


@router.get("/me")
def me(gateway: GatewayDep, user: CurrentUser, scope: CallerScope) -> dict[str, Any]:
    reg = gateway.registry
    grids = sorted(reg.grids) if scope.grids is None else sorted(scope.grids)
    ents = sorted(reg.enterprises) if scope.enterprises is None else sorted(scope.enterprises)
    acts_as = {k: getattr(user, k) for k in ("officer", "department", "enterprise", "area")
               if getattr(user, k) is not None}
    return {
        "username": user.username,
        "role": user.role,
        "acts_as": acts_as,
        "all": scope.everything,
        "grids": [{"id": g, "name": reg.grids[g].name} for g in grids if g in reg.grids],
        "enterprises": [{"id": e, "name": reg.enterprises[e].name, "grid": reg.enterprises[e].grid}
                        for e in ents if e in reg.enterprises],
    }
