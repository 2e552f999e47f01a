"""The SQLite helper every store of the gateway uses: a WAL database opened the same way.

The readings store, the outbox and the alarm book each keep one file in ``data_dir``; they all open
it here, so journal mode, durability and the error raised on failure are the same everywhere.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.errors import StoreError


def open_wal(path: str | Path, schema: str, what: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) to a WAL database with ``schema``.

    ``synchronous=NORMAL``: a commit survives a process crash; a power cut may lose the last ones.
    """
    try:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {what} {path}: {exc}") from exc
    return db
