"""The whole file: the ``Config`` model, the checks that span its sections, and loading.

Checks that span sections (a grid that does not exist, duplicate ids, a point on another
enterprise's device) are collected in one pass, so ``gridgate check`` can print every problem at once.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from gateway.config.base import RESERVED_ENTERPRISES, Strict
from gateway.config.devices import Device, ModbusDevice, ModbusLinkConfig, MqttDevice
from gateway.config.points import Point
from gateway.config.sections import (
    AlarmsSection,
    ApiSection,
    GatewaySection,
    MqttSection,
    NotifierConfig,
    StorageSection,
    User,
)
from gateway.config.site import Department, Enterprise, Grid, Officer
from gateway.errors import ConfigError


class Config(Strict):
    gateway: GatewaySection = GatewaySection()
    mqtt: MqttSection = MqttSection()
    storage: StorageSection = StorageSection()
    api: ApiSection = ApiSection()
    alarms: AlarmsSection = AlarmsSection()
    users: list[User] = []
    departments: list[Department] = []
    officers: list[Officer] = []
    grids: list[Grid] = []
    enterprises: list[Enterprise] = []
    devices: list[Device] = []
    points: list[Point] = []  # top-level points name their enterprise and device
    notifiers: list[NotifierConfig] = []
    links: list[ModbusLinkConfig] = []

    def device_points(self, device: ModbusDevice | MqttDevice) -> list[Point]:
        """A device's points: those nested under it and the top-level ones that name it."""
        extra = [p for p in self.points if p.enterprise == device.enterprise and p.device == device.id]
        return list(device.points) + extra


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and loc[i - 1] != "points" and part in ("modbus", "mqtt") and isinstance(loc[i - 1], int):
            continue  # the discriminated union's tag adds nothing to the path
        elif part.startswith("function-"):
            continue
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _link_problems(cfg: Config) -> list[tuple[str, str]]:
    """Every ``[[links]]`` entry names an endpoint some device uses; devices on one serial port agree
    on its line settings."""
    problems: list[tuple[str, str]] = []
    modbus = [(i, d) for i, d in enumerate(cfg.devices) if isinstance(d, ModbusDevice)]
    used = {d.link_key() for _, d in modbus}
    seen: set[tuple[str, str, str]] = set()
    for i, lk in enumerate(cfg.links):
        if lk.link_key() not in used:
            problems.append((f"links[{i}]", f"no Modbus device uses {lk.transport} {lk.host or ''}:{lk.port}"))
        elif lk.link_key() in seen:
            problems.append((f"links[{i}]", "a second entry for the same endpoint"))
        seen.add(lk.link_key())
    line: dict[str, tuple[int, int, str, int]] = {}
    for i, d in modbus:
        if d.transport == "rtu":
            settings = (d.baudrate, d.bytesize, d.parity, d.stopbits)
            first = line.setdefault(str(d.port), settings)
            if settings != first:
                problems.append((f"devices[{i}]", f"serial settings differ from another device on {d.port}"))
    return problems


def cross_check(cfg: Config) -> list[tuple[str, str]]:
    """Every problem that spans sections, as ``(key path, message)``."""
    problems: list[tuple[str, str]] = []

    def dupes(section: str, ids: list[str]) -> set[str]:
        seen: set[str] = set()
        bad: set[str] = set()
        for i, ident in enumerate(ids):
            if ident in seen:
                problems.append((f"{section}[{i}].id", f"duplicate id {ident!r}"))
                bad.add(ident)
            seen.add(ident)
        return seen

    officers = dupes("officers", [o.id for o in cfg.officers])
    departments = dupes("departments", [d.id for d in cfg.departments])
    grids = dupes("grids", [g.id for g in cfg.grids])
    enterprises = dupes("enterprises", [e.id for e in cfg.enterprises])
    dupes("users", [u.username for u in cfg.users])
    names = [n.name for n in cfg.notifiers]
    for i, name in enumerate(names):
        if name in names[:i] or name == "mqtt":
            problems.append((f"notifiers[{i}].name", f"duplicate or reserved notifier name {name!r}"))
        for j, g in enumerate(cfg.notifiers[i].grids):
            if g not in {gr.id for gr in cfg.grids}:
                problems.append((f"notifiers[{i}].grids[{j}]", f"grid {g!r} does not exist"))
    for i, g in enumerate(cfg.grids):
        for j, o in enumerate(g.officers):
            if o not in officers:
                problems.append((f"grids[{i}].officers[{j}]", f"officer {o!r} does not exist"))
        for key in ("responsible", "contact"):
            ref = getattr(g, key)
            if ref is not None and ref not in officers:
                problems.append((f"grids[{i}].{key}", f"officer {ref!r} does not exist"))
    for i, e in enumerate(cfg.enterprises):
        if e.id in RESERVED_ENTERPRISES:
            problems.append((f"enterprises[{i}].id", f"{e.id!r} is reserved (MQTT alarm topics)"))
        if e.grid not in grids:
            problems.append((f"enterprises[{i}].grid", f"grid {e.grid!r} does not exist"))
        for j, d in enumerate([e.lead_department, *e.cooperating_departments]):
            key = "lead_department" if j == 0 else f"cooperating_departments[{j - 1}]"
            if d not in departments:
                problems.append((f"enterprises[{i}].{key}", f"department {d!r} does not exist"))
    device_owner: dict[str, list[str]] = {}
    seen_devices: set[tuple[str, str]] = set()
    for i, d in enumerate(cfg.devices):
        if d.enterprise not in enterprises:
            problems.append((f"devices[{i}].enterprise", f"enterprise {d.enterprise!r} does not exist"))
        if (d.enterprise, d.id) in seen_devices:
            problems.append((f"devices[{i}].id", f"duplicate device {d.enterprise}/{d.id}"))
        seen_devices.add((d.enterprise, d.id))
        device_owner.setdefault(d.id, []).append(d.enterprise)
        keys: set[str] = set()
        kinds = {p.key: p.kind for p in cfg.device_points(d)}
        for j, p in enumerate(cfg.device_points(d)):
            if p.suppressed_by is not None:
                where = f"devices[{i}].points[{j}]" if j < len(d.points) else "points"
                if kinds.get(p.suppressed_by) != "status" or p.suppressed_by == p.key:
                    problems.append((f"{where}.suppressed_by", f"suppressed_by must name another status point"
                                     f" of {d.enterprise}/{d.id}, not {p.suppressed_by!r}"))
        for j, p in enumerate(cfg.device_points(d)):
            where = f"devices[{i}].points[{j}]" if j < len(d.points) else "points"
            if p.key in keys:
                problems.append((f"{where}.key", f"duplicate point {d.enterprise}/{d.id}/{p.key}"))
            keys.add(p.key)
            if isinstance(d, ModbusDevice) and p.register_type is None:
                problems.append((where, f"point {p.key!r} of Modbus device {d.id!r} needs register"))
            if j < len(d.points) and (p.enterprise is not None or p.device is not None):
                if (p.enterprise or d.enterprise) != d.enterprise or (p.device or d.id) != d.id:
                    msg = f"point {p.key!r} names another device than {d.enterprise}/{d.id}"
                    problems.append((where, msg))
    for i, p in enumerate(cfg.points):
        if p.enterprise is None or p.device is None:
            problems.append((f"points[{i}]", "a top-level point needs enterprise and device"))
        elif (p.enterprise, p.device) not in seen_devices:
            owners = device_owner.get(p.device)
            if owners:
                problems.append(
                    (f"points[{i}].device", f"device {p.device!r} belongs to enterprise "
                     f"{', '.join(sorted(set(owners)))}, not {p.enterprise!r}")
                )
            else:
                problems.append((f"points[{i}].device", f"device {p.enterprise}/{p.device} does not exist"))
    problems += _link_problems(cfg)
    for i, u in enumerate(cfg.users):
        refs = {"officer": officers, "department": departments, "enterprise": enterprises}
        for key, known in refs.items():
            ref = getattr(u, key)
            if ref is not None and ref not in known:
                problems.append((f"users[{i}].{key}", f"{key} {ref!r} does not exist"))
    return problems


def parse_config(data: dict) -> Config:
    """Validate a parsed TOML document; raise ConfigError with every problem found."""
    try:
        cfg = Config.model_validate(data, context={"points": {}})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append((_loc(err["loc"]), msg))
        raise ConfigError(problems) from exc
    problems = cross_check(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | Path) -> Config:
    """Read and validate a ``gridgate.toml``."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(file)", f"not valid TOML: {exc}")]) from exc
    except OSError as exc:
        raise ConfigError([("(file)", f"cannot read {path}: {exc.strerror}")]) from exc
    return parse_config(data)
