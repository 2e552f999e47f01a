"""The registry as documents: each item as its TOML table (a dict), and back to a :class:`Config`.

The registry is the five lists of ``gridgate.toml`` that say who supervises whom and what is
measured: departments, officers, grids, enterprises, devices (a device with its points inline,
top-level ``[[points]]`` folded into their device). An item's *key* is its id (a device's
``enterprise/id``). :func:`compose` puts lists of items into a configuration through the same
validation as ``gridgate check``, so the registry database and the API refuse exactly what the
file would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from gateway.config import Config, parse_config

SECTIONS = ("departments", "officers", "grids", "enterprises", "devices")
# The other lists that name registry items: validated with them, so a change cannot break them.
KEPT = ("links", "notifiers")
Items = dict[str, list[dict[str, Any]]]


def key_of(section: str, item: Mapping[str, Any]) -> str:
    """The key of an item: its id; a device's ``enterprise/id``."""
    if section == "devices":
        return f"{item.get('enterprise')}/{item.get('id')}"
    return str(item.get("id"))


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def iter_items(cfg: Config) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(section, item)`` of a configuration's registry, one at a time (top-level points inside
    their device): seeding a large registry never holds all of it as dicts at once."""
    for section in SECTIONS:
        if section != "devices":
            for x in getattr(cfg, section):
                yield section, _dump(x)
            continue
        for dev in cfg.devices:
            item = _dump(dev)
            points = []
            for p in cfg.device_points(dev):
                d = _dump(p)
                d.pop("enterprise", None)
                d.pop("device", None)
                points.append(d)
            if points:
                item["points"] = points
            yield section, item


def items_of(cfg: Config) -> Items:
    """The registry of a configuration as items (top-level points inside their device)."""
    out: Items = {s: [] for s in SECTIONS}
    for section, item in iter_items(cfg):
        out[section].append(item)
    return out


def same(a: object, b: object) -> bool:
    """Equal as JSON: ``1`` and ``1.0`` differ (the configuration refuses a float for an integer)."""
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


def _canonical(item: Mapping[str, Any]) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)


def digest(items: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """A digest of a registry's content (equal registries, equal digests; ``1`` and ``1.0`` differ)."""
    h = hashlib.sha256()
    for section in SECTIONS:
        h.update(f"[{section}]".encode())
        for item in items.get(section, []):
            points = item.get("points") if section == "devices" else None
            h.update(_canonical({k: v for k, v in item.items() if k != "points"} if points is not None else item))
            for p in points or ():
                h.update(b"\x00" + _canonical(p))
            h.update(b"\n")
    return h.hexdigest()


def config_digest(cfg: Config) -> str:
    """:func:`digest` of ``items_of(cfg)``, without making them: a point table shared by many devices
    (the configuration shares equal points) is dumped once."""
    h = hashlib.sha256()
    memo: dict[int, bytes] = {}
    for section in SECTIONS:
        h.update(f"[{section}]".encode())
        for model in getattr(cfg, section):
            if section != "devices":
                h.update(_canonical(_dump(model)) + b"\n")
                continue
            points = cfg.device_points(model)
            item = _dump(model)
            item.pop("points", None)
            h.update(_canonical(item))
            for p in points:
                if id(p) not in memo:
                    d = _dump(p)
                    d.pop("enterprise", None)
                    d.pop("device", None)
                    memo[id(p)] = _canonical(d)
                h.update(b"\x00" + memo[id(p)])
            h.update(b"\n")
    return h.hexdigest()


def compose(base: Config, items: Mapping[str, Sequence[Mapping[str, Any]]]) -> Config:
    """``base`` with its registry replaced by ``items``, validated as ``gridgate check`` validates a
    file; raises :class:`~gateway.errors.ConfigError` with every problem, key paths into ``items``."""
    doc: dict[str, Any] = {s: [dict(x) for x in items.get(s, [])] for s in SECTIONS}
    for name in KEPT:
        doc[name] = [_dump(x) for x in getattr(base, name)]
    checked = parse_config(doc)
    update = {s: getattr(checked, s) for s in SECTIONS}
    update["points"] = []
    return base.model_copy(update=update)
