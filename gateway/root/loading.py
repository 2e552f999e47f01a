"""Reading a large configuration without keeping what parsing it cost.

Parsing a ``gridgate.toml`` of 30,000 points builds about 34 MB of TOML tables and strings on the
way to a validated :class:`~gateway.config.Config` of about 2 MB (equal point tables are shared,
:meth:`gateway.config.Point._shared`). Freed, those tables leave the allocator's arenas
fragmented, and a long-running gateway kept about 33 MB more resident for the rest of its life
than the configuration itself needs. :func:`load_compact` parses in a forked child, which hands the
validated configuration back pickled: the gateway's heap only ever holds the result.

Used by ``gridgate run``, which calls it before any thread exists. Where it cannot fork safely (no
``fork``, threads already running) or the file is small, it simply parses here.
"""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

from gateway.config import Config, load_config
from gateway.errors import ConfigError

FORK_ABOVE = 256 * 1024  # bytes of TOML: below this, parsing costs too little to bother


def load_compact(path: str | Path) -> Config:
    """:func:`~gateway.config.load_config`, with the parse done in a child process when it is large.

    Raises ConfigError with the same problems as ``load_config`` would.
    """
    try:
        size = Path(path).stat().st_size
    except OSError:
        size = 0  # load_config says what is wrong with it
    if size < FORK_ABOVE or not hasattr(os, "fork") or threading.active_count() > 1:
        return load_config(path)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, answer, and leave without running the parent's cleanups
        status = 1
        try:
            os.close(read_end)
            try:
                answer: tuple[str, object] = ("ok", load_config(path))
            except ConfigError as exc:
                answer = ("problems", exc.problems)
            with os.fdopen(write_end, "wb") as out:
                out.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        return load_config(path)  # the child failed some other way: parse here, and let it raise
    kind, value = pickle.loads(data)  # noqa: S301 - our own child's answer, through our own pipe
    if kind == "problems":
        raise ConfigError(value)
    assert isinstance(value, Config)
    return value
