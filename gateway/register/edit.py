"""Registry changes as plans: the items after a change and the :class:`Edit` records of it.

Pure functions of the current items. A plan is checked by composing the whole registry
(:func:`gateway.register.document.compose`), so a change is refused with the messages and key paths
``gridgate check`` gives. Retiring keeps an item's id for good: putting a retired id again is
refused. Retiring an enterprise retires its devices with it; retiring what other items still name
(a grid with enterprises, an officer of a grid, a department of an enterprise) is refused by the
reference checks, naming those items.

``PATCH`` is a JSON merge patch (RFC 7396: objects merge, ``null`` removes a key), except that a
device's ``points`` merge by point ``key``: a listed point is patched (or added, when new), the
others are kept.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GridgateError
from gateway.register.document import SECTIONS, Items, key_of, same
from gateway.register.store import Edit

GAS_KINDS = frozenset({"combustible_gas", "toxic_gas", "oxygen"})


class EditRefused(GridgateError):
    """A change refused before validation: an unknown or retired item, a key that does not match the
    path (``status`` is the HTTP status the API answers with)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Plan:
    """The registry after a change, and what changed."""

    items: Items
    edits: list[Edit] = field(default_factory=list)


def _copy(items: Mapping[str, Sequence[dict[str, Any]]]) -> Items:
    return {s: list(items.get(s, [])) for s in SECTIONS}


def _find(items: Items, section: str, key: str) -> int | None:
    return next((i for i, it in enumerate(items[section]) if key_of(section, it) == key), None)


def _check_section(section: str) -> None:
    if section not in SECTIONS:
        raise EditRefused(f"unknown registry section {section!r}: one of {', '.join(SECTIONS)}", 404)


def put(items: Items, section: str, key: str, body: Any, retired: set[str]) -> Plan:
    """Create or replace the item ``key`` of ``section`` with ``body``."""
    _check_section(section)
    if not isinstance(body, dict):
        raise EditRefused(f"the body must be a JSON object: one [[{section}]] table", 422)
    if key in retired:
        raise EditRefused(f"{section} {key!r} was retired; its id is not given again (choose a new one)")
    given = key_of(section, body)
    if given != key:
        what = "enterprise/id" if section == "devices" else "id"
        raise EditRefused(f"the body's {what} {given!r} does not match the path's {key!r}", 422)
    out = _copy(items)
    i = _find(out, section, key)
    if i is None:
        out[section].append(body)
        return Plan(out, [Edit(section, key, "create", None, body)])
    old = out[section][i]
    out[section][i] = body
    return Plan(out, [] if same(old, body) else [Edit(section, key, "replace", old, body)])


def merge(target: Any, patch: Any) -> Any:
    """RFC 7396 merge of ``patch`` into ``target`` (a copy is returned)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def _merge_points(old: list[Any], patch: list[Any]) -> list[Any]:
    out = list(old)
    for p in patch:
        if not isinstance(p, dict) or not isinstance(p.get("key"), str):
            raise EditRefused("each point of a device PATCH must be an object with the point's key", 422)
        j = next((n for n, q in enumerate(out) if isinstance(q, dict) and q.get("key") == p["key"]), None)
        if j is None:
            out.append(merge({}, p))
        else:
            out[j] = merge(out[j], p)
    return out


def patch(items: Items, section: str, key: str, body: Any, retired: set[str]) -> Plan:
    """Change part of the item ``key`` of ``section``."""
    _check_section(section)
    if not isinstance(body, dict):
        raise EditRefused("the body must be a JSON object (a merge patch)", 422)
    i = _find(items, section, key)
    if i is None:
        raise EditRefused(f"{section} {key!r} does not exist" + (" (it was retired)" if key in retired else ""), 404)
    old = items[section][i]
    new = merge(old, {k: v for k, v in body.items() if not (section == "devices" and k == "points")})
    if section == "devices" and "points" in body:
        if not isinstance(body["points"], list):
            raise EditRefused("points must be a list of point objects", 422)
        new["points"] = _merge_points(old.get("points", []), body["points"])
    if key_of(section, new) != key:
        raise EditRefused(f"a PATCH cannot change the id of {section} {key!r}; retire it and put a new one", 422)
    return put(items, section, key, new, retired)


def retire(items: Items, section: str, key: str) -> Plan:
    """Retire the item ``key`` of ``section`` (an enterprise with its devices)."""
    _check_section(section)
    out = _copy(items)
    i = _find(out, section, key)
    if i is None:
        raise EditRefused(f"{section} {key!r} does not exist", 404)
    old = out[section].pop(i)
    edits = [Edit(section, key, "retire", old, None)]
    if section == "enterprises":
        keep = []
        for dev in out["devices"]:
            if dev.get("enterprise") == key:
                edits.append(Edit("devices", key_of("devices", dev), "retire", dev, None))
            else:
                keep.append(dev)
        out["devices"] = keep
    return Plan(out, edits)


def upsert(items: Items, incoming: Mapping[str, Sequence[dict[str, Any]]], retired: Mapping[str, set[str]]) -> Plan:
    """Create or replace every item of ``incoming`` (an import): one plan for all of them."""
    out = _copy(items)
    edits: list[Edit] = []
    for section in SECTIONS:
        index = {key_of(section, it): i for i, it in enumerate(out[section])}
        for body in incoming.get(section, []):
            key = key_of(section, body)
            if key in retired.get(section, set()):
                raise EditRefused(f"{section} {key!r} was retired; its id is not given again")
            i = index.get(key)
            if i is None:
                index[key] = len(out[section])
                out[section].append(body)
                edits.append(Edit(section, key, "create", None, body))
            elif not same(out[section][i], body):
                edits.append(Edit(section, key, "replace", out[section][i], body))
                out[section][i] = body
    return Plan(out, edits)


def take_file(items: Items, wanted: Items) -> Plan:
    """The plan that makes the registry ``wanted`` (the configuration file's): puts what differs,
    retires what the file no longer has."""
    plan = upsert(items, wanted, {})
    for section in reversed(SECTIONS):  # devices before their enterprise
        keep = {key_of(section, it) for it in wanted.get(section, [])}
        for it in list(plan.items[section]):
            key = key_of(section, it)
            if key not in keep and _find(plan.items, section, key) is not None:
                sub = retire(plan.items, section, key)
                plan = Plan(sub.items, plan.edits + sub.edits)
    return plan


# -- what an enterprise login may change ----------------------------------------------------------

LIMIT_DIRECTION = {"high": 1, "high_high": 1, "low": -1, "low_low": -1}  # +1: a higher value is looser


def loosened(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """How ``new`` (a device) is looser than ``old`` for its gas points: limits raised (or lowered,
    for a low alarm), removed, delays and deadbands lengthened, gas points removed or retyped."""
    if old is None:
        return []
    olds = {p.get("key"): p for p in old.get("points", []) if isinstance(p, dict) and p.get("kind") in GAS_KINDS}
    news = {p.get("key"): p for p in (new or {}).get("points", []) if isinstance(p, dict)}
    out: list[str] = []
    for key, p in olds.items():
        q = news.get(key)
        if q is None or q.get("kind") != p.get("kind"):
            out.append(f"gas point {key!r} cannot be removed or change kind")
            continue
        for limit, direction in LIMIT_DIRECTION.items():
            a, b = p.get(limit), q.get(limit)
            if a is None:
                continue
            if b is None or not isinstance(b, int | float) or (b - a) * direction > 0:
                out.append(f"point {key!r}: {limit} {a} cannot become {b if b is not None else 'unset'}")
        for slow in ("on_delay", "deadband"):
            if isinstance(q.get(slow, 0), int | float) and q.get(slow, 0) > p.get(slow, 0):
                out.append(f"point {key!r}: {slow} {p.get(slow, 0)} cannot become longer ({q.get(slow)})")
    return out
