"""Problems as ``gridgate check`` prints them: a key path that names each list item by its position
and its id (``devices[3] (hengyuan-chem/gas-1).points[2] (h2s).high``), a message (an unknown key
says which known key it is probably a typo of), in the order of the file.

Checks make a problem as ``(loc, message)``, ``loc`` a tuple of keys and list indices; :func:`finish`
turns them into ``(key path, message)`` against the document they came from.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]

NOT_SUGGESTED = frozenset({"token_ttl"})  # a key that is only there to be refused with a message
LABEL_KEYS: dict[str, tuple[str, ...]] = {
    "devices": ("enterprise", "id"),
    "users": ("username",),
    "notifiers": ("name",),
    "points": ("key",),
    "links": ("host", "port"),
}
TOP_POINT_KEYS = ("enterprise", "device", "key")
MAX_LABEL = 64


def text_of(item: Any, key: str) -> str | None:
    """``item[key]`` (a dict from the file) or ``item.key`` (a model), when it is a non-empty string."""
    value = item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)
    return value if isinstance(value, str) and value else None


def label(section: str | None, item: Any, top: bool) -> str | None:
    """How an item of list ``section`` is named beside its position: its id, as written."""
    keys = TOP_POINT_KEYS if top and section == "points" else LABEL_KEYS.get(section or "", ("id",))
    if section == "links":
        port = item.get("port") if isinstance(item, Mapping) else getattr(item, "port", None)
        host = text_of(item, "host")
        name = f"{host}:{port}" if host and isinstance(port, int) else port if isinstance(port, str) else None
    else:
        parts = [text_of(item, k) for k in keys]
        name = "/".join(parts) if all(parts) else parts[-1]  # the id alone when its owner is unreadable
    if not name:
        return None
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


def _child(node: Any, part: str | int) -> Any:
    if isinstance(part, int):
        return node[part] if isinstance(node, Sequence) and not isinstance(node, str) and 0 <= part < len(node) \
            else None
    return node.get(part) if isinstance(node, Mapping) else getattr(node, part, None) if isinstance(
        node, BaseModel) else None


def path_of(loc: Loc, doc: Any) -> str:
    """``loc`` as a key path, each list item named by its id where the document has one."""
    out, node, section = "", doc, None
    for depth, part in enumerate(loc):
        node = _child(node, part)
        if isinstance(part, int):
            out += f"[{part}]"
            name = label(section, node, top=depth == 1)
            if name:
                out += f" ({name})"
        else:
            out += ("." if out else "") + part
            section = part
    return out or "(top level)"


def position(loc: Loc, doc: Any) -> tuple[int, ...]:
    """Where ``loc`` is in the file, for sorting: a key's place among its table's keys (TOML keeps
    their order), an item's index; a key the user did not write comes after those written."""
    out, node = [], doc
    for part in loc:
        if isinstance(part, int):
            out.append(part)
        elif isinstance(node, Mapping):
            keys = list(node)
            out.append(keys.index(part) if part in node else len(keys))
        else:
            out.append(0)
        node = _child(node, part)
    return tuple(out)


def finish(problems: Iterable[Problem], doc: Any) -> list[tuple[str, str]]:
    """Every problem once, in the order of the file, with its key path."""
    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: position(p[0], doc))
    return [(path_of(loc, doc), msg) for loc, msg in unique]


def shape_problems(exc: ValidationError, model: type[BaseModel], loc: Loc) -> list[Problem]:
    """A model's validation errors as problems under ``loc``."""
    out = []
    for err in exc.errors():
        where = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = unknown_key(str(where[-1]), keys_at(model, where[:-1]))
        out.append((loc + where, msg))
    return out


def unknown_key(key: str, known: Iterable[str]) -> str:
    """``unknown key 'urll' (did you mean 'url'?)``: the suggestion only when one is close."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"unknown key {key!r} (did you mean {close[0]!r}?)" if close else f"unknown key {key!r}"


def keys_of(model: type[BaseModel]) -> list[str]:
    """The keys a user may write in a model's table (a field's alias where it has one)."""
    return [f.alias or name for name, f in model.model_fields.items() if name not in NOT_SUGGESTED]


def keys_at(model: type[BaseModel], path: Loc) -> list[str]:
    """The keys of the table at ``path`` within ``model`` (a nested section, a device's points)."""
    for part in path:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        models = _models_in(field.annotation) if field is not None else []
        if len(models) != 1:
            return []
        model = models[0]
    return keys_of(model)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]
