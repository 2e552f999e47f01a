"""The towns' registers as registry items: a grids, enterprises or devices register read from a CSV or
.xlsx file (:func:`read_table`), a validation problem of an imported item traced back to its row and
column (:func:`locate`), and registry items written as a register (:func:`write_table`).

The columns are in :mod:`gateway.register.columns` and ``docs/registers.md``. Items come out in the
TOML shape (a device with its points inline), typed as the configuration wants them (an int where it
wants an int, a float for a number), with no key for an empty cell, so that defaults apply.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.config.report import label
from gateway.register.columns import (
    COLUMNS,
    DEVICE_COLUMNS,
    ENTERPRISES,
    POINT_COLUMNS,
    REQUIRED,
    Column,
    TableError,
    blank,
    column_of,
    csv_bytes,
    csv_rows,
    describe,
    letter,
    normal,
    required_text,
    split_list,
    where,
    xlsx_bytes,
    xlsx_rows,
)

__all__ = ["Origin", "Table", "TableError", "locate", "read_table", "write_table"]

KINDS = ("grids", "enterprises", "devices")
ITEM = re.compile(r"([A-Za-z_]+)\[(\d+)\]")
POINT = re.compile(r"\.points\[(\d+)\]")
KEY = re.compile(r"\.([A-Za-z_]+)")
LABEL = re.compile(r" \([^)]*\)")
ROW = re.compile(r"row (\d+)")
GRID_KEYS = ("id", "name", "area", "officers", "responsible", "contact")


@dataclass
class Origin:
    """Where an item came from: its (first) row, the header each of its keys was read from, the row
    of a key that was given on a later row (a device's columns), and a device's points' own origins."""

    row: int
    columns: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    points: list[Origin] = field(default_factory=list)


@dataclass
class Table:
    """A register read: ``items`` by section (a grids register gives ``grids`` and ``officers``), and
    the origin of each item by ``(section, index in items[section])``."""

    kind: str
    items: dict[str, list[dict[str, Any]]]
    origin: dict[tuple[str, int], Origin]


@dataclass
class _Row:
    number: int
    cells: dict[str, Any]  # column key -> value, for the non-empty cells that converted


# ---------------------------------------------------------------- reading


def read_table(data: bytes, filename: str, departments: Mapping[str, str] | None = None) -> Table:
    """A register from a ``.csv`` (UTF-8, with or without BOM, or GB18030) or ``.xlsx`` file (its
    first worksheet). ``departments`` maps a department's name to its id, for the registers that name
    departments as people do. Raises :class:`TableError` with every problem of the file."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix == "csv":
        raw_rows = csv_rows(data)
    elif suffix == "xlsx":
        raw_rows = xlsx_rows(data)
    else:
        hint = " (save the .xls as .xlsx)" if suffix == "xls" else ""
        raise TableError([f"{filename}: a register is a .csv or .xlsx file{hint}"])
    rows = [(n, cells) for n, cells in raw_rows if any(not blank(c) for c in cells)]
    if not rows:
        raise TableError([f"{filename}: the file has no header row"])
    problems: list[str] = []
    kind, columns = _header(*rows[0], problems)
    headers = {c.key: str(h).strip() for c, h in zip(columns, rows[0][1], strict=False) if c is not None}
    unknown = {p for p, h in enumerate(rows[0][1]) if not blank(h) and columns[p] is None}
    parsed = [_parse(n, cells, columns, unknown, headers, problems) for n, cells in rows[1:]]
    build = {"grids": _grids, "enterprises": _enterprises, "devices": _devices}[kind]
    table = build(parsed, headers, problems, departments or {})
    if problems:
        raise TableError(sorted(problems, key=_row_of))  # stable: a row's problems in column order
    return table


def _row_of(problem: str) -> int:
    m = ROW.match(problem)
    return int(m[1]) if m else 0


def _header(number: int, cells: Sequence[Any], problems: list[str]) -> tuple[str, list[Column | None]]:
    """The register's kind and the column under each header; unknown and repeated headers are problems."""
    scored = []
    for kind in KINDS:
        columns = [None if blank(h) else column_of(kind, str(h)) for h in cells]
        keys = {c.key for c in columns if c is not None}
        if all(keys & set(group) for group in REQUIRED[kind]):
            scored.append((len(keys), kind, columns))
    scored.sort(key=lambda s: -s[0])
    if not scored:
        expected = "; ".join(f"a {k} register needs {required_text(k)} (its columns: {describe(k)})" for k in KINDS)
        raise TableError([f"row {number}: the header row is not that of a register: {expected}"])
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        raise TableError([f"row {number}: the header row fits both a {scored[0][1]} register and a {scored[1][1]} "
                          "register: add a column only one of them has, or use the Chinese headers"])
    _, kind, columns = scored[0]
    known = [name for c in COLUMNS[kind] for name in (c.names + (c.key,))]
    seen: dict[str, str] = {}
    for p, (h, c) in enumerate(zip(cells, columns, strict=True)):
        if blank(h):
            continue
        if c is None:
            close = difflib.get_close_matches(normal(h), [normal(k) for k in known], n=1, cutoff=0.6)
            hint = f" (did you mean {next(k for k in known if normal(k) == close[0])!r}?)" if close else ""
            problems.append(f"row {number}, column {letter(p)}: unknown column {str(h).strip()!r} in a {kind} "
                            f"register{hint}")
        elif c.key in seen:
            problems.append(f"row {number}, column {letter(p)}: {str(h).strip()!r} and {seen[c.key]!r} are the "
                            f"same column ({c.key})")
            columns[p] = None
        else:
            seen[c.key] = str(h).strip()
    return kind, columns


def _parse(number: int, cells: Sequence[Any], columns: list[Column | None], unknown: set[int],
           headers: dict[str, str], problems: list[str]) -> _Row:
    out: dict[str, Any] = {}
    for p, raw in enumerate(cells):
        if blank(raw) or p in unknown:
            continue
        column = columns[p] if p < len(columns) else None
        if column is None:
            problems.append(f"row {number}, column {letter(p)}: a value ({raw!r}) under no header")
            continue
        try:
            out[column.key] = column.value(raw)
        except ValueError as exc:
            problems.append(f"{where(number, headers[column.key], column.key)}: {exc}")
    return _Row(number, out)


def _entries(row: _Row, key: str, headers: dict[str, str], problems: list[str], expected: int | None = None,
             empty: bool = False) -> list[str]:
    """A list cell's entries; an empty entry is a problem unless ``empty`` (a missing phone)."""
    entries = split_list(row.cells.get(key, ""), expected)
    if not empty and "" in entries:
        problems.append(f"{where(row.number, headers[key], key)}: an empty entry in {row.cells[key]!r}")
        entries = [e for e in entries if e]
    return entries


def _grids(rows: list[_Row], headers: dict[str, str], problems: list[str], _: Mapping[str, str]) -> Table:
    grids: list[dict[str, Any]] = []
    officers: list[dict[str, Any]] = []
    origin: dict[tuple[str, int], Origin] = {}
    first: dict[str, tuple[int, int]] = {}  # officer id -> (index in officers, row)
    for r in rows:
        c = r.cells
        ids = _entries(r, "officers", headers, problems)
        names = _entries(r, "officer_names", headers, problems, len(ids) or None)
        phones = _entries(r, "phones", headers, problems, len(ids or names) or None, empty=True)
        counted = True
        for key, entries, what in (("officer_names", names, "names"), ("phones", phones, "phones")):
            if entries and (ids or names) and len(entries) != len(ids or names):
                problems.append(f"{where(r.number, headers[key], key)}: {len(entries)} {what} for "
                                f"{len(ids or names)} officers")
                counted = False
        grid = {k: c[k] for k in ("id", "name", "area") if k in c}
        columns = {k: headers[k] for k in grid}
        officer_columns = {"name": headers.get("officer_names", ""), "phone": headers.get("phones", "")}
        if ids:
            officer_columns["id"] = headers["officers"]
        elif names and "id" in grid:
            ids = [f"{grid['id']}-o{n}" for n in range(1, len(names) + 1)]
        if ids:
            grid["officers"] = ids
            columns["officers"] = headers.get("officers", headers.get("officer_names", ""))
        for key in ("responsible", "contact"):
            if key in c:
                grid[key] = ids[names.index(c[key])] if c[key] not in ids and c[key] in names and counted \
                    else c[key]
                columns[key] = headers[key]
        origin[("grids", len(grids))] = Origin(r.number, columns)
        grids.append(grid)
        if not counted or not ids or not (names or phones):
            continue
        for n, oid in enumerate(ids):
            officer = {"id": oid, **({"name": names[n]} if names else {}), **({"phone": phones[n]} if phones and
                                                                             phones[n] else {})}
            if oid not in first:
                first[oid] = (len(officers), r.number)
                origin[("officers", len(officers))] = Origin(r.number, {k: h for k, h in officer_columns.items()
                                                                        if k in officer and h})
                officers.append(officer)
                continue
            index, row = first[oid]
            if any(k in officer and officer[k] != officers[index].get(k) for k in ("name", "phone")):
                problems.append(f"row {r.number}: officer {oid!r} is {_person(officer)} here but "
                                f"{_person(officers[index])} on row {row}")
    return Table("grids", {"grids": grids, "officers": officers}, origin)


def _person(officer: dict[str, Any]) -> str:
    return " ".join(repr(officer[k]) for k in ("name", "phone") if k in officer) or "without name or phone"


def _enterprises(rows: list[_Row], headers: dict[str, str], problems: list[str],
                 departments: Mapping[str, str]) -> Table:
    items: list[dict[str, Any]] = []
    origin: dict[tuple[str, int], Origin] = {}
    for r in rows:
        c = r.cells
        item: dict[str, Any] = {}
        if "id" not in c:
            if "credit_code" not in c:
                problems.append(f"row {r.number}: needs {headers.get('id', '企业编号')} (id) or "
                                f"{headers.get('credit_code', '统一社会信用代码')} (credit_code)")
                continue
            item["id"] = c["credit_code"].lower()
        for col in ENTERPRISES:
            if col.key not in c:
                continue
            value = c[col.key]
            if col.key == "lead_department":
                value = departments.get(value, value)
            elif col.key == "cooperating_departments":
                value = [departments.get(v, v) for v in
                         ([value] if value in departments else _entries(r, col.key, headers, problems))]
            item[col.key] = value
        columns = {k: headers[k] for k in item if k in headers}
        if "id" not in c:  # made of the credit code
            columns["id"] = headers["credit_code"]
        origin[("enterprises", len(items))] = Origin(r.number, columns)
        items.append(item)
    return Table("enterprises", {"enterprises": items}, origin)


def _devices(rows: list[_Row], headers: dict[str, str], problems: list[str], _: Mapping[str, str]) -> Table:
    items: list[dict[str, Any]] = []
    origin: dict[tuple[str, int], Origin] = {}
    index: dict[tuple[str, str], int] = {}
    previous: tuple[str, str] | None = None
    for r in rows:
        c = r.cells
        key = (c.get("enterprise"), c.get("device"))
        if key == (None, None) and previous is not None:  # merged cells: the device of the row above
            key = previous
        if None in key:
            problems.append(f"row {r.number}: a devices register row needs {required_text('devices')}")
            continue
        previous = key = (str(key[0]), str(key[1]))
        if key not in index:
            index[key] = len(items)
            items.append({"enterprise": key[0], "id": key[1]})
            columns = {"enterprise": headers.get("enterprise", ""), "id": headers.get("device", "")}
            origin[("devices", index[key])] = Origin(r.number, columns)
        device, where_from = items[index[key]], origin[("devices", index[key])]
        for col in DEVICE_COLUMNS[2:]:
            if col.key not in c:
                continue
            if col.to not in device:
                device[col.to] = c[col.key]
                where_from.columns[col.to] = headers[col.key]
                if r.number != where_from.row:
                    where_from.rows[col.to] = r.number
            elif device[col.to] != c[col.key]:
                row = where_from.rows.get(col.to, where_from.row)
                problems.append(f"{where(r.number, headers[col.key], col.key)}: {c[col.key]!r} differs from "
                                f"{device[col.to]!r} on row {row} for device {key[0]}/{key[1]}")
        point = {col.to: c[col.key] for col in POINT_COLUMNS if col.key in c}
        if point:
            device.setdefault("points", []).append(point)
            where_from.points.append(Origin(r.number, {col.to: headers[col.key] for col in POINT_COLUMNS
                                                       if col.to in point}))
    return Table("devices", {"devices": items}, origin)


# ---------------------------------------------------------------- locating


def locate(problems: Sequence[tuple[str, str]], table: Table,
           positions: Mapping[tuple[str, int], int]) -> list[str]:
    """Validation problems ``(key path, message)`` as ``row N, column HEADER (key): message`` where the
    path is in an item imported from ``table`` (``positions``: ``(section, index in the validated
    list)`` -> index in ``table.items[section]``), as ``path: message`` otherwise."""
    return [_located(path, message, table, positions) or f"{path}: {message}" for path, message in problems]


def _skip_label(rest: str, name: str | None) -> str:
    if name and rest.startswith(f" ({name})"):
        return rest[len(name) + 3:]
    m = LABEL.match(rest)
    return rest[m.end():] if m else rest


def _located(path: str, message: str, table: Table, positions: Mapping[tuple[str, int], int]) -> str | None:
    m = ITEM.match(path)
    j = positions.get((m[1], int(m[2]))) if m else None
    if m is None or j is None or (m[1], j) not in table.origin:
        return None
    section, item, origin = m[1], table.items[m[1]][j], table.origin[(m[1], j)]
    rest = _skip_label(path[m.end():], label(section, item, top=True))
    row = None
    if section == "devices" and (pm := POINT.match(rest)):
        k, points = int(pm[1]), item.get("points", [])
        if k >= len(origin.points) or k >= len(points):
            return None
        origin, row = origin.points[k], origin.points[k].row
        rest = _skip_label(rest[pm.end():], label("points", points[k], top=False))
    key = KEY.match(rest)
    if key and key[1] in origin.columns and origin.columns[key[1]]:
        header = origin.columns[key[1]]
        column = column_of(table.kind, header)
        row = row or origin.rows.get(key[1], origin.row)
        return f"{where(row, header, column.key if column else key[1])}: {message}"
    row = row or origin.row
    return f"row {row}, {rest.lstrip('.')}: {message}" if rest else f"row {row}: {message}"


# ---------------------------------------------------------------- writing


def write_table(kind: str, items: Mapping[str, Sequence[dict[str, Any]]], fmt: str, chinese: bool = True) -> bytes:
    """Registry items as a register of ``kind`` ("grids": the grids with their officers' names and
    phones; "enterprises"; "devices": a row per point) in ``fmt`` ("csv", UTF-8 with BOM, or
    "xlsx"), with Chinese headers or, with ``chinese=False``, the English keys. Only the columns some
    item uses, in the documented order. :func:`read_table` reads it back to the same items."""
    if kind not in KINDS or fmt not in ("csv", "xlsx"):
        raise ValueError(f"write_table: kind is one of {KINDS} and fmt csv or xlsx, not {kind!r}, {fmt!r}")
    problems: list[str] = []
    rows = list({"grids": _grid_rows, "enterprises": _enterprise_rows, "devices": _device_rows}[kind](items, problems))
    if problems:
        raise TableError(problems)
    used = [c for c in COLUMNS[kind] if any(c.key in r for r in rows)]
    header = [c.header(chinese) for c in used]
    body = [[c.written(r.get(c.key), chinese) for c in used] for r in rows]
    return csv_bytes(header, body) if fmt == "csv" else xlsx_bytes(kind, header, body)


def _unwritable(what: str, item: Mapping[str, Any], keys: Iterable[str], problems: list[str]) -> None:
    extra = [k for k in item if k not in set(keys)]
    if extra:
        problems.append(f"{what}: {', '.join(map(repr, extra))} cannot be written in a register")


def _grid_rows(items: Mapping[str, Sequence[dict[str, Any]]], problems: list[str]) -> Iterable[dict[str, Any]]:
    officers = {o.get("id"): o for o in items.get("officers", [])}
    for o in officers.values():
        _unwritable(f"officer {o.get('id')!r}", o, ("id", "name", "phone"), problems)
    named: set[Any] = set()
    for grid in items.get("grids", []):
        _unwritable(f"grid {grid.get('id')!r}", grid, GRID_KEYS, problems)
        row = {k: v for k, v in grid.items() if v is not None}
        ids = list(grid.get("officers", []))
        found = [officers[i] for i in ids if i in officers]
        named.update(o["id"] for o in found)
        if found and len(found) < len(ids):
            problems.append(f"grid {grid.get('id')!r}: officers {[i for i in ids if i not in officers]} are not "
                            "among the officers given")
        elif found:
            row["officer_names"] = [o.get("name", "") for o in found]
            if any(o.get("phone") for o in found):
                row["phones"] = [o.get("phone") for o in found]
        yield row
    lost = [i for i in officers if i not in named]
    if lost:
        problems.append(f"officers {lost} are in no grid: a grids register holds only the officers of its grids")


def _enterprise_rows(items: Mapping[str, Sequence[dict[str, Any]]], problems: list[str]) -> Iterable[dict[str, Any]]:
    for e in items.get("enterprises", []):
        _unwritable(f"enterprise {e.get('id')!r}", e, [c.key for c in ENTERPRISES], problems)
        yield {k: v for k, v in e.items() if v is not None}


def _device_rows(items: Mapping[str, Sequence[dict[str, Any]]], problems: list[str]) -> Iterable[dict[str, Any]]:
    for d in items.get("devices", []):
        what = f"device {d.get('enterprise')}/{d.get('id')}"
        _unwritable(what, d, [c.to for c in DEVICE_COLUMNS] + ["points"], problems)
        row = {c.key: d[c.to] for c in DEVICE_COLUMNS if d.get(c.to) is not None}
        for p in d.get("points") or [{}]:
            _unwritable(f"{what} point {p.get('key')!r}", p, [c.to for c in POINT_COLUMNS], problems)
            yield {**row, **{c.key: p[c.to] for c in POINT_COLUMNS if p.get(c.to) is not None}}
