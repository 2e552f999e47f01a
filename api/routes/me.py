"""``GET /me``: the caller's login, role, what it acts as, and the grids and enterprises in its scope;
``POST /me/password``: the caller's own password (every token of the login is revoked; the answer
is a fresh token pair).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import CurrentLogin, CurrentUser
from api.deps import GatewayDep
from api.routes.auth import MAX_PASSWORD, client_of
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


NewPassword = Annotated[str, Field(min_length=8, max_length=256, description="8 to 256 characters")]


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old_password: Annotated[str, Field(max_length=MAX_PASSWORD)]
    new_password: NewPassword


@router.post("/me/password")
async def change_password(request: Request, gateway: GatewayDep, login: CurrentLogin,
                          body: PasswordChange) -> dict[str, Any]:
    """Change the caller's password (the current one is checked, throttled like a login)."""
    pair = await gateway.accounts.change_password(login[0], body.old_password, body.new_password, client_of(request))
    return pair.to_dict()
