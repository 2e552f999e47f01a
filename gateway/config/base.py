"""What every configuration model shares: the strict base class, the id and number types, the bounds
of a login's argon2 hash, and how a check names a key the user did not write.

TOML tells an integer from a float, and so does the configuration: where an integer is meant
(a Modbus unit, an address, a port) a float is refused even when it is whole (``unit = 1.0``), and so
is a boolean; where a number is meant, an integer is fine but a string or a boolean is not.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Slug = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
# A login's argon2 hash: the cost is bounded, since every login (and every unknown name) pays it.
ARGON2_HASH = re.compile(r"^\$argon2(?:id|i|d)\$v=\d+\$m=(\d{1,9}),t=(\d{1,4}),p=(\d{1,3})"
                         r"\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")
MAX_HASH_MEMORY_KIB = 256 * 1024
MAX_HASH_TIME_COST = 16


def argon2_hash_ok(password_hash: str) -> bool:
    """Whether ``password_hash`` is an argon2 hash within the bounds a login may cost."""
    m = ARGON2_HASH.match(password_hash)
    return m is not None and int(m[1]) <= MAX_HASH_MEMORY_KIB and int(m[2]) <= MAX_HASH_TIME_COST \
        and 1 <= int(m[3]) <= 16


RESERVED_ENTERPRISES = frozenset({"alarms", "officers"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)



def integer_only(value: Any) -> Any:
    """``value`` if it is an integer (not a boolean); else a ValueError that says what to write."""
    if type(value) is int:
        return value
    if isinstance(value, float) and value.is_integer():
        raise ValueError(f"an integer is meant here: write {int(value)}, not {value!r}")
    raise ValueError(f"an integer is meant here, not {_toml(value)}")


def number_only(value: Any) -> Any:
    """``value`` if it is an integer or a float (not a boolean, not a string)."""
    if type(value) in (int, float):
        return value
    raise ValueError(f"a number is meant here, not {_toml(value)}")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value!r}" if isinstance(value, int | float | str) else f"a {type(value).__name__}"


Int = Annotated[int, BeforeValidator(integer_only)]
Number = Annotated[float, BeforeValidator(number_only)]


def shown(model: BaseModel, key: str, value: object | None = None) -> str:
    """``key (value)`` for a check's message, and ``key (value, the default)`` when the user did not
    write ``key``: a problem a default takes part in must not read as if the user had written it."""
    value = getattr(model, key) if value is None else value
    text = f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else f"{value}"
    return f"{key} ({text})" if key in model.model_fields_set else f"{key} ({text}, the default)"
