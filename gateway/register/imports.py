"""Importing a register into the registry, all or nothing, and exporting the registry as registers.

An import reads a register (:mod:`gateway.register.tabular`), puts each of its items (creates or
replaces; an import never retires), validates the whole registry as ``gridgate check`` would, and
either commits all of it as one change (one version, each item audited) or nothing, with every
problem located to its row and column. A dry run does the same and stops before the commit: it
says what would be created and replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ConfigError
from gateway.register import edit
from gateway.register.document import SECTIONS, Items, key_of
from gateway.register.edit import Plan
from gateway.register.tabular import Table, TableError, locate, read_table, write_table

KINDS = ("grids", "enterprises", "devices")  # the registers: a grids register carries the officers too
FORMATS = ("csv", "xlsx")


@dataclass
class ImportResult:
    """What an import did (or, dry, would do)."""

    kind: str
    dry_run: bool
    version: int | None = None  # after the import; None for a dry run or when nothing changed
    created: dict[str, list[str]] = field(default_factory=dict)  # section -> keys
    replaced: dict[str, list[str]] = field(default_factory=dict)
    unchanged: int = 0

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "dry_run": self.dry_run, "version": self.version,
                "created": {s: len(k) for s, k in self.created.items() if k},
                "replaced": {s: len(k) for s, k in self.replaced.items() if k},
                "unchanged": self.unchanged,
                "items": {a: {s: k[:200] for s, k in d.items() if k}
                          for a, d in (("created", self.created), ("replaced", self.replaced))}}


def read(data: bytes, filename: str, items: Items) -> Table:
    """A register, naming departments by name or id (resolved against the registry)."""
    names = {d["name"]: d["id"] for d in items.get("departments", []) if "name" in d}
    return read_table(data, filename, names)


def merged(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """An item as a register updates it: the register's columns over the item's other keys (a
    register has no column for an officer's duty, say, which it must not wipe). A device's points are
    the register's, each over the point of the same key."""
    if old is None:
        return new
    out = {**old, **new}
    if "points" in new:
        before = {p.get("key"): p for p in old.get("points", []) if isinstance(p, dict)}
        out["points"] = [{**before.get(p.get("key"), {}), **p} for p in new["points"]]
    return out


def planner(table: Table) -> Any:
    """The planner of :meth:`RegisterService.change` that puts every item of ``table``."""
    def plan(items: Items, retired: dict[str, set[str]]) -> Plan:
        incoming = {}
        for section, new in table.items.items():
            now = {key_of(section, it): it for it in items.get(section, [])}
            incoming[section] = [merged(now.get(key_of(section, it)), it) for it in new]
        try:
            return edit.upsert(items, incoming, retired)
        except edit.EditRefused as exc:
            raise TableError([str(exc)]) from exc
    return plan


def located(exc: ConfigError, table: Table, plan_items: Items) -> TableError:
    """The problems of a registry with ``table`` imported, at their rows and columns."""
    positions: dict[tuple[str, int], int] = {}
    for section, imported in table.items.items():
        where = {key_of(section, it): i for i, it in enumerate(plan_items.get(section, []))}
        for j, it in enumerate(imported):
            i = where.get(key_of(section, it))
            if i is not None:
                positions[(section, i)] = j
    return TableError(locate(exc.problems, table, positions))


def result(table: Table, plan: Plan, dry_run: bool, version: int | None) -> ImportResult:
    out = ImportResult(table.kind, dry_run, version, {s: [] for s in SECTIONS}, {s: [] for s in SECTIONS})
    for e in plan.edits:
        (out.created if e.action == "create" else out.replaced)[e.section].append(e.key)
    out.unchanged = sum(len(v) for v in table.items.values()) - len(plan.edits)
    return out


def export(kind: str, items: Mapping[str, list[dict[str, Any]]], fmt: str, chinese: bool = True) -> bytes:
    """The registry as a register of ``kind`` (grids, with their officers; enterprises; devices)."""
    if kind not in KINDS:
        raise ValueError(f"a register is one of {', '.join(KINDS)}, not {kind!r}")
    if fmt not in FORMATS:
        raise ValueError(f"a register is written as {' or '.join(FORMATS)}, not {fmt!r}")
    # what a register has no column for stays in the registry (an import merges): officers' duty,
    # officers of no grid
    grid_officers = {o for g in items.get("grids", []) for o in g.get("officers", [])}
    written = {**items, "officers": [{k: v for k, v in o.items() if k != "duty"} for o in items.get("officers", [])
                                     if o.get("id") in grid_officers]}
    return write_table(kind, written, fmt, chinese)
