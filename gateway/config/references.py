"""The checks that span sections: references to ids that do not exist, duplicate ids, a device's
points among themselves, and the Modbus endpoints devices share.

Each check looks at one item that validated, against :class:`Known`: the ids the configuration
defines, read as written even from an item that is otherwise wrong (a grid with a misspelt key still
exists, so its enterprises are not also told that their grid does not). The same checks serve the
whole file (:func:`gateway.config.validate.parse_config`) and one item against a configuration
(:func:`gateway.config.validate.check_item`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config.base import RESERVED_ENTERPRISES, shown
from gateway.config.devices import ModbusDevice, ModbusLinkConfig
from gateway.config.points import Point
from gateway.config.report import Loc, Problem, text_of
from gateway.config.sections import User, WebhookNotifierConfig
from gateway.config.site import Enterprise, Grid

IDS = {"officers": "id", "departments": "id", "grids": "id", "enterprises": "id", "users": "username",
       "notifiers": "name"}
PointRef = tuple[Loc, str, Any]  # where a point is, its key, its kind as written


def seq(item: Any, key: str) -> Sequence[Any]:
    """A list under ``key`` of a dict or a model; empty when it is missing or not a list."""
    value = item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)
    return value if isinstance(value, list | tuple) else ()


def device_key(item: Any) -> tuple[str, str] | None:
    ent, ident = text_of(item, "enterprise"), text_of(item, "id")
    return (ent, ident) if ent and ident else None


@dataclass
class Known:
    """What a configuration defines: ids per section, devices with their protocol and points."""

    ids: dict[str, set[str]]
    devices: dict[tuple[str, str], Any]  # (enterprise, id) -> protocol as written
    points: dict[tuple[str, str], list[PointRef]]  # a device's points: nested, then top-level
    endpoints: set[tuple[str, str, str]]  # the link keys of valid Modbus devices

    @classmethod
    def of(cls, lists: Mapping[str, Sequence[Any]], modbus: Sequence[ModbusDevice]) -> Known:
        """From the lists of a document (dicts as written) or of a Config (models), or a mix."""
        ids = {s: {v for item in lists.get(s, ()) if (v := text_of(item, key))} for s, key in IDS.items()}
        devices: dict[tuple[str, str], Any] = {}
        points: dict[tuple[str, str], list[PointRef]] = {}
        for i, d in enumerate(lists.get("devices", ())):
            if (dk := device_key(d)) is not None and dk not in devices:  # a duplicate is refused as such
                devices[dk] = d.get("protocol") if isinstance(d, Mapping) else getattr(d, "protocol", None)
                points[dk] = list(
                    (("devices", i, "points", j), key, _kind(p))
                    for j, p in enumerate(seq(d, "points")) if (key := text_of(p, "key")))
        for k, p in enumerate(lists.get("points", ())):
            ent, dev, key = text_of(p, "enterprise"), text_of(p, "device"), text_of(p, "key")
            if ent and dev and key and (ent, dev) in points:
                points[(ent, dev)].append((("points", k), key, _kind(p)))
        return cls(ids, devices, points, {d.link_key() for d in modbus})

    def owners(self, device: str) -> list[str]:
        return sorted({ent for ent, ident in self.devices if ident == device})


def _kind(point: Any) -> Any:
    return point.get("kind") if isinstance(point, Mapping) else getattr(point, "kind", None)


def _exists(loc: Loc, what: str, ref: str | None, known: set[str]) -> list[Problem]:
    return [(loc, f"{what} {ref!r} does not exist")] if ref is not None and ref not in known else []


def grid_problems(loc: Loc, g: Grid, known: Known) -> list[Problem]:
    out = [p for j, o in enumerate(g.officers) for p in _exists((*loc, "officers", j), "officer", o,
                                                                   known.ids["officers"])]
    for key in ("responsible", "contact"):
        out += _exists((*loc, key), "officer", getattr(g, key), known.ids["officers"])
    return out


def enterprise_problems(loc: Loc, e: Enterprise, known: Known) -> list[Problem]:
    out = [((*loc, "id"), f"{e.id!r} is reserved (MQTT alarm topics)")] if e.id in RESERVED_ENTERPRISES else []
    out += _exists((*loc, "grid"), "grid", e.grid, known.ids["grids"])
    out += _exists((*loc, "lead_department"), "department", e.lead_department, known.ids["departments"])
    for j, d in enumerate(e.cooperating_departments):
        out += _exists((*loc, "cooperating_departments", j), "department", d, known.ids["departments"])
    return out


def user_problems(loc: Loc, u: User, known: Known) -> list[Problem]:
    return [p for key in ("officer", "department", "enterprise")
            for p in _exists((*loc, key), key, getattr(u, key), known.ids[f"{key}s"])]


def notifier_problems(loc: Loc, n: WebhookNotifierConfig, known: Known) -> list[Problem]:
    return [p for j, g in enumerate(n.grids) for p in _exists((*loc, "grids", j), "grid", g, known.ids["grids"])]


def link_problems(loc: Loc, lk: ModbusLinkConfig, known: Known) -> list[Problem]:
    if lk.link_key() in known.endpoints:
        return []
    return [(loc, f"no Modbus device uses {lk.transport} {lk.host or ''}:{lk.port}")]


def device_problems(loc: Loc, d: Any, known: Known) -> list[Problem]:
    """The device's enterprise exists; its points (nested and top-level) have different keys."""
    out = _exists((*loc, "enterprise"), "enterprise", d.enterprise, known.ids["enterprises"])
    seen: set[str] = set()
    for where, key, _ in known.points.get((d.enterprise, d.id), []):
        if key in seen:
            out.append(((*where, "key"), f"duplicate point {d.enterprise}/{d.id}/{key}"))
        seen.add(key)
    return out


def point_problems(loc: Loc, p: Point, device: tuple[str, str], known: Known) -> list[Problem]:
    """A point of ``device``: its suppressing point, its register, and whose point it says it is."""
    ent, dev = device
    out = []
    if p.suppressed_by is not None:
        kinds = {key: kind for _, key, kind in known.points.get(device, [])}
        if kinds.get(p.suppressed_by) != "status" or p.suppressed_by == p.key:
            out.append(((*loc, "suppressed_by"), f"suppressed_by must name another status point of {ent}/{dev}, "
                                                 f"not {p.suppressed_by!r}"))
    if known.devices.get(device) == "modbus" and p.register_type is None:
        out.append((loc, f"point {p.key!r} of Modbus device {dev!r} needs register"))
    if loc[0] == "devices" and (p.enterprise is not None or p.device is not None):
        if (p.enterprise or ent) != ent or (p.device or dev) != dev:
            out.append((loc, f"point {p.key!r} names another device than {ent}/{dev}"))
    return out


def loose_point_problems(loc: Loc, p: Point, known: Known) -> list[Problem]:
    """A top-level ``[[points]]`` entry: the device it names exists, in the enterprise it names."""
    if p.enterprise is None or p.device is None:
        return [(loc, "a top-level point needs enterprise and device")]
    if (p.enterprise, p.device) in known.devices:
        return point_problems(loc, p, (p.enterprise, p.device), known)
    owners = known.owners(p.device)
    if owners:
        return [((*loc, "device"), f"device {p.device!r} belongs to enterprise {', '.join(owners)}, "
                                   f"not {p.enterprise!r}")]
    return [((*loc, "device"), f"device {p.enterprise}/{p.device} does not exist")]


ITEM_CHECKS: dict[str, Callable[[Loc, Any, Known], list[Problem]]] = {
    "grids": grid_problems,
    "enterprises": enterprise_problems,
    "users": user_problems,
    "notifiers": notifier_problems,
    "links": link_problems,
    "devices": device_problems,
    "points": loose_point_problems,
}


def identity(section: str, item: Any) -> object | None:
    """What must be unique in a list: an id, a device's enterprise and id, a link's endpoint."""
    if section == "devices":
        return device_key(item)
    if section == "links":
        return item.link_key() if isinstance(item, ModbusLinkConfig) else None
    return text_of(item, IDS[section]) if section in IDS else None


def duplicates(section: str, items: Sequence[Any]) -> list[Problem]:
    """Every item of a list that repeats the identity of one before it."""
    seen: set[object] = set()
    out: list[Problem] = []
    for i, item in enumerate(items):
        ident = identity(section, item)
        if ident is not None and ident in seen:
            out += _duplicate((section, i), section, ident)
        seen.add(ident)
    return out


def duplicate_of_another(section: str, items: Sequence[Any], index: int) -> list[Problem]:
    """Whether item ``index`` repeats the identity of any other item of the list."""
    ident = identity(section, items[index])
    if ident is None or not any(j != index and identity(section, it) == ident for j, it in enumerate(items)):
        return []
    return _duplicate((section, index), section, ident)


def _duplicate(loc: Loc, section: str, ident: Any) -> list[Problem]:
    if section == "devices":
        return [((*loc, "id"), f"duplicate device {ident[0]}/{ident[1]}")]
    if section == "links":
        return [(loc, "a second entry for the same endpoint")]
    if section == "notifiers":
        return [((*loc, "name"), f"duplicate or reserved notifier name {ident!r}")]
    return [((*loc, IDS[section]), f"duplicate id {ident!r}")]


def reserved_name_problems(loc: Loc, item: Any) -> list[Problem]:
    name = text_of(item, "name")
    return [((*loc, "name"), f"duplicate or reserved notifier name {name!r}")] if name == "mqtt" else []


def serial_line_problems(loc: Loc, d: ModbusDevice, others: Sequence[tuple[Loc, ModbusDevice]]) -> list[Problem]:
    """Devices on one serial port agree on its line settings: ``d`` against the first other one."""
    if d.transport != "rtu":
        return []
    first = next((o for o in others if o[1].transport == "rtu" and str(o[1].port) == str(d.port)), None)
    if first is None:
        return []
    keys = ("baudrate", "bytesize", "parity", "stopbits")
    differ = [k for k in keys if getattr(d, k) != getattr(first[1], k)]
    if not differ:
        return []
    theirs = ", ".join(shown(first[1], k) for k in differ)
    return [(loc, f"serial settings differ from another device on {d.port} "
                  f"({first[1].enterprise}/{first[1].id}): {', '.join(shown(d, k) for k in differ)} here, "
                  f"{theirs} there")]
