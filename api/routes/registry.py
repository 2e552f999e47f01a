"""The registry: ``/registry/{grids,officers,departments,enterprises}/{id}`` and
``/registry/devices/{enterprise}/{device}``, their collections, the audit trail, import and export.

``GET`` lists (``{"version", "items"}``; ``?retired=true`` adds the retired ones) and reads one
item, shaped as its TOML table (a device with its points inline). ``PUT`` creates (201) or
replaces an item; ``PATCH`` merges into it (a device's ``points`` by key); ``DELETE`` retires it
(its id is never given again, its history stays). Every change is validated as ``gridgate check``
validates the file (422 with ``[{path, message}]``, the same paths and messages), checked against
the caller's rights (:mod:`gateway.register.policy`: 403; what the caller cannot see is a 404),
audited, and applied to the running gateway before the answer. The answer carries the registry's
``version``; ``If-Match: <version>`` refuses the change with 412 when the registry moved on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Path, Query, Request, Response, status

from api.auth import CurrentUser, require_roles
from api.deps import GatewayDep, GatewayView
from gateway.config import User
from gateway.errors import RegistryError
from gateway.register import edit, imports, policy
from gateway.register.document import SECTIONS, key_of

router = APIRouter(tags=["registry"])

SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Section = Literal["grids", "officers", "departments", "enterprises"]
Id = Annotated[str, Path(pattern=SLUG)]
Manager = Annotated[User, require_roles("admin", "supervisor")]
IfMatch = Annotated[str | None, Header(alias="If-Match")]
ItemBody = Annotated[dict[str, Any], Body()]


def _item(gateway: GatewayView, user: User, section: str, key: str) -> tuple[dict[str, Any], int | None]:
    found = gateway.register.get(section, key)
    if found is None or not policy.visible(gateway.registry, user, section, found[0]):
        raise RegistryError(f"{section[:-1]} {key!r} not found")
    return found


def _listing(gateway: GatewayView, user: User, section: str, retired: bool,
             enterprise: str | None = None) -> dict[str, Any]:
    reg = gateway.registry
    items = [it for it in gateway.register.items[section]
             if (enterprise is None or it.get("enterprise") == enterprise) and policy.visible(reg, user, section, it)]
    out: dict[str, Any] = {"version": reg.version, "items": items}
    if retired:
        out["retired"] = [{"item": b, "retired_at": at} for b, at in gateway.register.store.retired(section)
                          if (enterprise is None or b.get("enterprise") == enterprise)
                          and policy.visible(reg, user, section, b)]
    return out


def _precondition(gateway: GatewayView, if_match: str | None) -> None:
    if if_match is not None and if_match.strip('"W/ ') != str(gateway.registry.version):
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED,
                            f"the registry is at version {gateway.registry.version}, not {if_match}")


async def _change(gateway: GatewayView, user: User, section: str, key: str, planner: Any, if_match: str | None,
                  response: Response, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Make a change as ``user``: its role first (403), then what it sees (404: an item, or where a
    new one would be), then the change itself (403), validated (422) and applied."""
    if not policy.may_write(user, section):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{user.role} logins do not change {section}")
    found = gateway.register.get(section, key)
    reg = gateway.registry
    if (found is not None and not policy.visible(reg, user, section, found[0])) or (
            found is None and body is not None and not policy.could_see(reg, user, section, body)):
        raise RegistryError(f"{section[:-1]} {key!r} not found")
    _precondition(gateway, if_match)
    plan, change = await gateway.register.change(
        planner, user.username, check=lambda p: policy.check_plan(gateway.registry, user, p))
    action = plan.edits[0].action if plan.edits else "unchanged"
    if action == "create":
        response.status_code = status.HTTP_201_CREATED
    item = next((it for it in plan.items.get(section, []) if key_of(section, it) == key), None)
    return {"version": gateway.registry.version, "action": action, "item": item,
            "changed": [{"action": e.action, "section": e.section, "key": e.key} for e in plan.edits]}


# -- the registry as a whole ---------------------------------------------------------------------


@router.get("/registry")
def summary(gateway: GatewayDep, user: CurrentUser) -> dict[str, Any]:
    """The registry's version and how many items of each section the caller sees."""
    reg = gateway.registry
    return {"version": reg.version,
            "counts": {s: sum(1 for it in gateway.register.items[s] if policy.visible(reg, user, s, it))
                       for s in SECTIONS}}


@router.get("/registry/audit")
def audit(gateway: GatewayDep, manager: Manager,
          section: Annotated[Literal["grids", "officers", "departments", "enterprises", "devices"] | None,
                             Query()] = None,
          key: Annotated[str | None, Query(max_length=140)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100,
          before: Annotated[int | None, Query(ge=1)] = None) -> list[dict[str, Any]]:
    """Changes of the registry, newest first: ``at``, ``actor``, ``version``, ``section``, ``key``,
    ``action`` (create, replace, retire), ``old`` and ``new`` bodies, ``note``."""
    reg = gateway.registry
    rows = gateway.register.store.audit(section, key, limit if manager.role == "admin" else 10 * limit, before)
    seen = [r for r in rows if any(b is not None and policy.visible(reg, manager, r["section"], b)
                                   for b in (r["old"], r["new"]))]
    return seen[:limit]


@router.post("/registry/import")
async def import_register(request: Request, gateway: GatewayDep, manager: Manager,
                          filename: Annotated[str, Query(min_length=5, max_length=200,
                                                         pattern=r"(?i)\.(csv|xlsx)$")],
                          dry_run: bool = False) -> dict[str, Any]:
    """Import a register (the body: the CSV or .xlsx file's bytes; ``filename`` says which); all or
    nothing. ``dry_run``: what would change, validated, without changing it. A refused import is a
    422 listing every problem with its row and column."""
    data = await request.body()
    result = await gateway.register.import_registers(
        [(data, filename)], manager.username, dry_run=dry_run,
        check=lambda p: policy.check_plan(gateway.registry, manager, p))
    return result.summary()


@router.get("/registry/export")
def export(gateway: GatewayDep, manager: Manager, kind: Literal["grids", "enterprises", "devices"],
           format: Literal["csv", "xlsx"] = "csv", english: bool = False) -> Response:  # noqa: A002
    """The register of ``kind`` as the caller sees it, as a file to open in a spreadsheet."""
    reg = gateway.registry
    items = {s: [it for it in gateway.register.items[s] if policy.visible(reg, manager, s, it)] for s in SECTIONS}
    data = imports.export(kind, items, format, chinese=not english)
    media = "text/csv; charset=utf-8" if format == "csv" else \
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(data, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{kind}.{format}"'})


# -- devices -------------------------------------------------------------------------------------


@router.get("/registry/devices")
def list_devices(gateway: GatewayDep, user: CurrentUser, retired: bool = False) -> dict[str, Any]:
    return _listing(gateway, user, "devices", retired)


@router.get("/registry/devices/{enterprise}")
def list_enterprise_devices(gateway: GatewayDep, user: CurrentUser, enterprise: Id,
                            retired: bool = False) -> dict[str, Any]:
    _item(gateway, user, "enterprises", enterprise)
    return _listing(gateway, user, "devices", retired, enterprise)


@router.get("/registry/devices/{enterprise}/{device}")
def get_device(gateway: GatewayDep, user: CurrentUser, enterprise: Id, device: Id, response: Response) -> dict:
    body, retired_at = _item(gateway, user, "devices", f"{enterprise}/{device}")
    if retired_at is not None:
        response.headers["X-Retired-At"] = str(retired_at)
    return body


@router.put("/registry/devices/{enterprise}/{device}")
async def put_device(gateway: GatewayDep, user: CurrentUser, enterprise: Id, device: Id, body: ItemBody,
                     response: Response, if_match: IfMatch = None) -> dict[str, Any]:
    """Create or replace a device (its ``points`` inline, as ``[[devices.points]]``)."""
    key = f"{enterprise}/{device}"
    return await _change(gateway, user, "devices", key,
                         lambda items, retired: edit.put(items, "devices", key, body, retired["devices"]),
                         if_match, response, body)


@router.patch("/registry/devices/{enterprise}/{device}")
async def patch_device(gateway: GatewayDep, user: CurrentUser, enterprise: Id, device: Id, body: ItemBody,
                       response: Response, if_match: IfMatch = None) -> dict[str, Any]:
    """Change part of a device; ``points`` listed are merged by their ``key`` (new keys are added)."""
    key = f"{enterprise}/{device}"
    return await _change(gateway, user, "devices", key,
                         lambda items, retired: edit.patch(items, "devices", key, body, retired["devices"]),
                         if_match, response)


@router.delete("/registry/devices/{enterprise}/{device}")
async def retire_device(gateway: GatewayDep, user: CurrentUser, enterprise: Id, device: Id, response: Response,
                        if_match: IfMatch = None) -> dict[str, Any]:
    """Retire a device: it is no longer polled or read, its open alarms close, its history stays."""
    key = f"{enterprise}/{device}"
    return await _change(gateway, user, "devices", key, lambda items, _: edit.retire(items, "devices", key),
                         if_match, response)


# -- grids, officers, departments, enterprises ---------------------------------------------------


@router.get("/registry/{section}")
def list_items(gateway: GatewayDep, user: CurrentUser, section: Section, retired: bool = False) -> dict[str, Any]:
    return _listing(gateway, user, section, retired)


@router.get("/registry/{section}/{key}")
def get_item(gateway: GatewayDep, user: CurrentUser, section: Section, key: Id, response: Response) -> dict:
    body, retired_at = _item(gateway, user, section, key)
    if retired_at is not None:
        response.headers["X-Retired-At"] = str(retired_at)
    return body


@router.put("/registry/{section}/{key}")
async def put_item(gateway: GatewayDep, user: CurrentUser, section: Section, key: Id, body: ItemBody,
                   response: Response, if_match: IfMatch = None) -> dict[str, Any]:
    """Create or replace an item with the body of its TOML table."""
    return await _change(gateway, user, section, key,
                         lambda items, retired: edit.put(items, section, key, body, retired[section]),
                         if_match, response, body)


@router.patch("/registry/{section}/{key}")
async def patch_item(gateway: GatewayDep, user: CurrentUser, section: Section, key: Id, body: ItemBody,
                     response: Response, if_match: IfMatch = None) -> dict[str, Any]:
    """Change part of an item (a JSON merge patch: ``null`` removes a key)."""
    return await _change(gateway, user, section, key,
                         lambda items, retired: edit.patch(items, section, key, body, retired[section]),
                         if_match, response)


@router.delete("/registry/{section}/{key}")
async def retire_item(gateway: GatewayDep, user: CurrentUser, section: Section, key: Id, response: Response,
                      if_match: IfMatch = None) -> dict[str, Any]:
    """Retire an item (an enterprise with its devices); refused (422) while other items name it."""
    return await _change(gateway, user, section, key, lambda items, _: edit.retire(items, section, key),
                         if_match, response)
