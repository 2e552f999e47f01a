"""What every configuration model shares: the strict base class, the id type, and the bounds of a
login's argon2 hash."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

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

