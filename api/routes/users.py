"""Login accounts: ``/users`` for admins, and for supervisors within their area.

List, create, read, change role and scope, reset a password, disable and enable, and the audit of
every change (``GET /users/audit``). Who manages whom is :mod:`gateway.accounts.policy`: a login a
supervisor does not manage is a 404 like an unknown one; a role it may not give is a 403; an
officer, department or enterprise that does not exist (or, for a supervisor, lies outside its
area) is a 422. A username taken is a 409, and so is disabling or demoting the last enabled admin.
Passwords are 8 to 256 characters and are hashed in the account service's bounded pool; the
answers never show a hash.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_roles
from api.deps import GatewayDep
from api.routes.me import NewPassword
from gateway.config import User

router = APIRouter(tags=["users"])

Manager = Annotated[User, require_roles("admin", "supervisor")]
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Username = Annotated[str, Path(pattern=SLUG)]
Role = Literal["admin", "supervisor", "department", "officer", "enterprise"]
Ref = Annotated[str | None, Field(pattern=SLUG)]
Area = Annotated[str | None, Field(pattern=r"^[0-9]{2,12}$")]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(pattern=SLUG)]
    role: Role
    officer: Ref = None
    department: Ref = None
    enterprise: Ref = None
    area: Area = None
    password: NewPassword


class UserChange(BaseModel):
    """The keys given replace the login's; a new ``role`` clears the acts-as keys not given."""

    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    officer: Ref = None
    department: Ref = None
    enterprise: Ref = None
    area: Area = None


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: NewPassword


@router.get("/users")
def list_users(gateway: GatewayDep, manager: Manager) -> list[dict[str, Any]]:
    """The logins the caller manages."""
    return [a.public() for a in gateway.accounts.managed(manager)]


@router.post("/users", status_code=status.HTTP_201_CREATED)
async def create_user(gateway: GatewayDep, manager: Manager, body: NewUser) -> dict[str, Any]:
    fields = body.model_dump(exclude={"password"}, exclude_none=True)
    return (await gateway.accounts.create(manager, fields, body.password)).public()


@router.get("/users/audit")
def audit(gateway: GatewayDep, manager: Manager, username: Annotated[str | None, Query(pattern=SLUG)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100,
          offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[dict[str, Any]]:
    """Account changes, newest first: ``ts``, ``actor``, ``action``, ``username``, ``old``, ``new``."""
    return gateway.accounts.audit(manager, username, limit, offset)


@router.get("/users/{username}")
def get_user(gateway: GatewayDep, manager: Manager, username: Username) -> dict[str, Any]:
    return gateway.accounts.visible(manager, username).public()


@router.patch("/users/{username}")
def change_user(gateway: GatewayDep, manager: Manager, username: Username, body: UserChange) -> dict[str, Any]:
    """Change role and what the login acts as; every token of the login is revoked if either changes."""
    fields = {k: getattr(body, k) for k in body.model_fields_set}
    if fields.get("role", "") is None:
        del fields["role"]
    return gateway.accounts.change(manager, username, fields).public()


@router.post("/users/{username}/password")
async def reset_password(gateway: GatewayDep, manager: Manager, username: Username,
                         body: PasswordReset) -> dict[str, Any]:
    """Set a new password; every token of the login is revoked."""
    return (await gateway.accounts.reset_password(manager, username, body.password)).public()


@router.post("/users/{username}/disable")
def disable(gateway: GatewayDep, manager: Manager, username: Username) -> dict[str, Any]:
    """Refuse the login's password and every token it holds, until enabled again."""
    return gateway.accounts.set_enabled(manager, username, False).public()


@router.post("/users/{username}/enable")
def enable(gateway: GatewayDep, manager: Manager, username: Username) -> dict[str, Any]:
    return gateway.accounts.set_enabled(manager, username, True).public()
