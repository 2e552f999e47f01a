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


def read(files: list[tuple[bytes, str]], items: Items) -> list[Register]:
    """Registers, naming departments by name or id (resolved against the registry); every problem of
    every file in one :class:`TableError`."""
    names = {d["name"]: d["id"] for d in items.get("departments", []) if "name" in d}
    out: list[Register] = []
    problems: list[str] = []
    for data, filename in files:
        try:
            out.append(Register(filename, read_table(data, filename, names)))
        except TableError as exc:
            problems += exc.problems if len(files) == 1 else [f"{filename}: {p}" for p in exc.problems]
    if problems:
        raise TableError(problems)
    return out


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


ORDER = {"grids": 0, "enterprises": 1, "devices": 2}


@dataclass
class Register:
    """A register read from a file."""

    name: str
    table: Table


def planner(registers: list[Register]) -> Any:
    """The planner of :meth:`RegisterService.change` that puts every item of every register: grids
    before enterprises before devices, later registers over earlier ones."""
    def plan(items: Items, retired: dict[str, set[str]]) -> Plan:
        incoming: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in SECTIONS}
        now = {s: {key_of(s, it): it for it in items.get(s, [])} for s in SECTIONS}
        for reg in sorted(registers, key=lambda r: ORDER[r.table.kind]):
            for section, new in reg.table.items.items():
                for it in new:
                    key = key_of(section, it)
                    incoming[section][key] = merged(incoming[section].get(key) or now[section].get(key), it)
        try:
            return edit.upsert(items, {s: list(v.values()) for s, v in incoming.items()}, retired)
        except edit.EditRefused as exc:
            raise TableError([str(exc)]) from exc
    return plan


def located(exc: ConfigError, registers: list[Register], plan_items: Items) -> TableError:
    """The problems of a registry with ``registers`` imported, at their files, rows and columns."""
    out: list[str] = []
    for path, message in exc.problems:
        where = f"{path}: {message}"
        for reg in registers:
            positions: dict[tuple[str, int], int] = {}
            for section, imported in reg.table.items.items():
                index = {key_of(section, it): i for i, it in enumerate(plan_items.get(section, []))}
                for j, it in enumerate(imported):
                    i = index.get(key_of(section, it))
                    if i is not None:
                        positions[(section, i)] = j
            said = locate([(path, message)], reg.table, positions)[0]
            if said != where:
                where = said if len(registers) == 1 else f"{reg.name}: {said}"
                break
        out.append(where)
    return TableError(out)


def result(registers: list[Register], plan: Plan, dry_run: bool, version: int | None) -> ImportResult:
    kinds = "+".join(r.table.kind for r in sorted(registers, key=lambda r: ORDER[r.table.kind]))
    out = ImportResult(kinds, dry_run, version, {s: [] for s in SECTIONS}, {s: [] for s in SECTIONS})
    for e in plan.edits:
        (out.created if e.action == "create" else out.replaced)[e.section].append(e.key)
    keys = {(s, key_of(s, it)) for r in registers for s, v in r.table.items.items() for it in v}
    out.unchanged = len(keys) - len(plan.edits)
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
