"""Validating ``gridgate.toml`` in one pass, and loading it.

Each section and each list item is validated on its own (a device's points each on their own too),
so a misspelt key in ``[mqtt]`` hides nothing: the reference checks
(:mod:`gateway.config.references`) still run on every item that validated, and every problem, of
shape or of reference, comes back in one :class:`~gateway.errors.ConfigError`, in the order of the
file. :func:`check_item` runs the same checks on one item against a valid configuration (the API's
registry edits).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config.base import Strict
from gateway.config.devices import ModbusDevice
from gateway.config.document import LISTS, SECTIONS, Config
from gateway.config.points import Point
from gateway.config.references import (
    ITEM_CHECKS,
    Known,
    device_key,
    duplicate_of_another,
    duplicates,
    point_problems,
    reserved_name_problems,
    serial_line_problems,
)
from gateway.config.report import Loc, Problem, finish, keys_of, shape_problems, unknown_key
from gateway.errors import ConfigError


@dataclass
class Item:
    """One list item as validated: its model (None when its shape is wrong), and for a device its
    points that validated, by position."""

    model: Any = None
    points: list[tuple[int, Point]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _model(model: type[Strict], data: Any, loc: Loc, context: dict) -> Item:
    try:
        return Item(model.model_validate(data, context=context))
    except ValidationError as exc:
        return Item(problems=shape_problems(exc, model, loc))


def validate_item(section: str, data: Any, loc: Loc, context: dict) -> Item:
    """An item of list ``section``; a device's points are validated one by one, so that one wrong
    point leaves the device and its other points to the reference checks."""
    spec = LISTS[section]
    if isinstance(spec, type):
        return _model(spec, data, loc, context)
    tag, models = spec
    model = models.get(data.get(tag)) if isinstance(data, dict) else next(iter(models.values()))
    if model is None:
        choices = " or ".join(repr(t) for t in models)
        msg = f"Field required ({choices})" if tag not in data else f"Input should be {choices}"
        return Item(problems=[((*loc, tag), msg)])
    raw_points = data.get("points") if isinstance(data, dict) else None
    if not isinstance(raw_points, list):
        return _model(model, data, loc, context)
    item = _model(model, {k: v for k, v in data.items() if k != "points"}, loc, context)
    for j, raw in enumerate(raw_points):
        point = _model(Point, raw, (*loc, "points", j), context)
        item.problems += point.problems
        if point.model is not None:
            item.points.append((j, point.model))
    if item.model is not None:
        item.model = item.model.model_copy(update={"points": [p for _, p in item.points]})
    return item


def _shapes(data: dict, context: dict) -> tuple[dict[str, Any], dict[str, list[Item]], list[Problem]]:
    problems = [((key,), unknown_key(key, keys_of(Config))) for key in data if key not in Config.model_fields]
    sections: dict[str, Any] = {}
    for name, model in SECTIONS.items():
        if name in data:
            item = _model(model, data[name], (name,), context)
            sections[name] = item.model
            problems += item.problems
    lists: dict[str, list[Item]] = {}
    for name in LISTS:
        raw = data.get(name, [])
        if not isinstance(raw, list):
            problems.append(((name,), "Input should be a valid list (an array of tables: [[" + name + "]])"))
            raw = []
        lists[name] = [validate_item(name, entry, (name, i), context) for i, entry in enumerate(raw)]
        problems += [p for item in lists[name] for p in item.problems]
    return sections, lists, problems


def _references(data: dict, lists: dict[str, list[Item]]) -> list[Problem]:
    raw = {name: data.get(name) if isinstance(data.get(name), list) else [] for name in LISTS}
    modbus = [(("devices", i), it.model) for i, it in enumerate(lists["devices"]) if isinstance(it.model, ModbusDevice)]
    known = Known.of(raw, [d for _, d in modbus])
    problems: list[Problem] = []
    for name in ("officers", "departments", "grids", "enterprises", "users", "devices", "notifiers"):
        problems += duplicates(name, raw[name])
    problems += duplicates("links", [it.model for it in lists["links"]])
    for name, check in ITEM_CHECKS.items():
        for i, item in enumerate(lists[name]):
            if item.model is not None:
                problems += check((name, i), item.model, known)
    problems += [p for i, n in enumerate(raw["notifiers"]) for p in reserved_name_problems(("notifiers", i), n)]
    for i, item in enumerate(lists["devices"]):
        if item.model is not None:
            dk = (item.model.enterprise, item.model.id)
            problems += [p for j, pt in item.points for p in point_problems(("devices", i, "points", j), pt, dk, known)]
    for k, (loc, d) in enumerate(modbus):
        problems += serial_line_problems(loc, d, modbus[:k])
    return problems


def parse_config(data: dict) -> Config:
    """Validate a parsed TOML document; raise ConfigError with every problem found, shape and
    reference alike, in the order of the file."""
    if not isinstance(data, dict):
        raise ConfigError([("(top level)", "a TOML document is meant here")])
    sections, lists, problems = _shapes(data, {"points": {}})
    problems += _references(data, lists)
    if problems:
        raise ConfigError(finish(problems, data))
    values = {**sections, **{name: [it.model for it in lists[name]] for name in LISTS if name in data}}
    # every part is validated already: build the whole without validating it all again
    return Config.model_construct(_fields_set={k for k in data if k in Config.model_fields}, **values)


def check_item(cfg: Config, section: str, data: Any, index: int | None = None) -> list[tuple[str, str]]:
    """The problems of one item of list ``section`` (a device dict with its points, a grid, a user...)
    if it were added to ``cfg`` (``index`` None) or put in place of item ``index``: its shape, its
    references, and whether it repeats another item's id. The same ``(key path, message)`` pairs
    as ``gridgate check`` gives; empty when the item is fine."""
    if section not in LISTS:
        raise ValueError(f"{section!r} is not a list of the configuration")
    lists: dict[str, list[Any]] = {name: list(getattr(cfg, name)) for name in LISTS}
    items = lists[section]
    if index is None:
        index = len(items)
        items.append(data)
    else:
        items[index] = data
    loc: Loc = (section, index)
    item = validate_item(section, data, loc, {"points": {}})
    problems = list(item.problems)
    if item.model is not None:
        if section == "links":
            items[index] = item.model
        problems += duplicate_of_another(section, items, index)
        others = [(("devices", i), d) for i, d in enumerate(lists["devices"])
                  if isinstance(d, ModbusDevice) and i != (index if section == "devices" else -1)]
        modbus = [d for _, d in others] + ([item.model] if isinstance(item.model, ModbusDevice) else [])
        known = Known.of(lists, modbus)
        if section in ITEM_CHECKS:
            problems += ITEM_CHECKS[section](loc, item.model, known)
        if section == "notifiers":
            problems += reserved_name_problems(loc, data)
        if section == "devices" and (dk := device_key(item.model)) is not None:
            problems += [p for j, pt in item.points for p in point_problems((*loc, "points", j), pt, dk, known)]
            if isinstance(item.model, ModbusDevice):
                problems += serial_line_problems(loc, item.model, others)
    return finish(problems, lists)


def load_config(path: str | Path) -> Config:
    """Read and validate a ``gridgate.toml``."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(file)", f"not valid TOML: {exc}")]) from exc
    except OSError as exc:
        raise ConfigError([("(file)", f"cannot read {path}: {exc.strerror}")]) from exc
    return parse_config(data)
