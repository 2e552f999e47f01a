"""A progress line for the long commands (``gridgate bench ...``, ``gridgate export``) on a terminal.

One line on standard error, rewritten in place with ``\\r`` at most every ``interval`` seconds (four
times a second by default), and cleared when the command is done, so that what the command prints
afterwards starts on a clean line. When the stream is not a terminal (piped into a file, a log, CI)
it writes nothing at all: output and logs stay free of carriage returns. Time is injected
(``clock``) so that the throttle is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """``what: done/total unit (pct)  detail  elapsed``, on a terminal only.

    Use as a context manager (the line is cleared on exit, and before each log line meanwhile),
    calling :meth:`show` as often as convenient: it writes only when ``interval`` seconds have
    passed since its last write.
    """

    def __init__(self, what: str, total: float | None = None, unit: str = "", *, stream: TextIO | None = None,
                 interval: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = is_terminal(self.stream)
        self.interval = interval
        self.clock = clock
        self._start = clock()
        self._last: float | None = None
        self._width = 0  # of the line on screen now, to blank what a shorter line leaves

    @classmethod
    def silent(cls) -> Progress:
        """One that never writes (for a caller that passes none)."""
        return cls("", stream=io.StringIO())

    def phase(self, what: str, total: float | None = None, unit: str = "") -> None:
        """Start a new step: its name, total and unit; its time counts from now, its first line is shown."""
        self.what, self.total, self.unit = what, total, unit
        self._start = self.clock()
        self._last = None

    def sleep(self, seconds: float, detail: Callable[[], str] = str) -> None:
        """``time.sleep(seconds)``, showing the seconds the phase has taken meanwhile."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.show(None, detail())
            time.sleep(min(self.interval, left) if self.enabled else left)

    async def asleep(self, seconds: float, detail: Callable[[], str] = str) -> None:
        """``asyncio.sleep(seconds)``, showing the seconds the phase has taken meanwhile."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            self.show(None, detail())
            await asyncio.sleep(min(self.interval, left) if self.enabled else left)

    def show(self, done: float | None = None, detail: str = "", *, force: bool = False) -> None:
        """Report ``done`` (of ``total``; None: only the time passed, of ``total`` seconds); written if
        the last write is ``interval`` old, or with ``force``."""
        if not self.enabled:
            return
        now = self.clock()
        if not force and self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        self._write(self.line(done, detail, now - self._start))

    def line(self, done: float | None, detail: str, elapsed: float) -> str:
        """``what: done/total unit (pct)  detail  elapsed s``."""
        parts = [self.what]
        if done is not None:
            count = f"{done:,.0f}" if float(done).is_integer() else f"{done:,.1f}"
            if self.total:
                count += f"/{self.total:,.0f}" + (f" {self.unit}" if self.unit else "")
                count += f" ({100 * min(done / self.total, 1):.0f} %)"
            elif self.unit:
                count += f" {self.unit}"
            parts[0] += f": {count}"
        parts += [detail, f"{elapsed:.0f}/{self.total:.0f} s" if done is None and self.total else f"{elapsed:.0f} s"]
        return "  ".join(p for p in parts if p)

    def clear(self) -> None:
        """Blank the line (before the command prints something of its own)."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def _write(self, text: str) -> None:
        pad = " " * max(0, self._width - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._width = len(text)

    def filter(self, record: logging.LogRecord) -> bool:
        """As a filter of the root logger's handlers: blank the line before a log line is written."""
        self.clear()
        return True

    def __enter__(self) -> Progress:
        if self.enabled:  # a log line (the gateway's own, in a benchmark) starts on a blanked line
            for handler in logging.getLogger().handlers:
                handler.addFilter(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self)
        self.clear()


class CountingOutput:
    """A text stream that shows the lines written so far on ``progress`` and passes the writes on to
    ``out``, or to the file ``path``, opened (truncated) at the first write only: a command that
    refuses its arguments before writing leaves an existing file as it was."""

    def __init__(self, progress: Progress, out: TextIO | None = None, path: str | None = None,
                 skip: int = 0) -> None:
        if (out is None) == (path is None):
            raise ValueError("give out or path")
        self.progress, self.out, self.path = progress, out, path
        self.lines = -skip  # a header line is not a reading

    def write(self, text: str) -> int:
        if self.out is None:
            assert self.path is not None
            self.out = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.lines += text.count("\n")
        self.progress.show(max(self.lines, 0))
        return self.out.write(text)

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()

    def close(self, make: bool = True) -> None:
        """Close the file this opened (with ``make``, make it, empty, if nothing was written); never
        a stream it was given."""
        if self.path is None:
            return
        if self.out is None and make:
            self.write("")
        if self.out is not None:
            self.out.close()


class ClearingStream:
    """A stream (standard error) that blanks the progress line before anything is written to it, so
    that a command's own messages never land at the end of the progress line."""

    def __init__(self, out: TextIO, progress: Progress) -> None:
        self.out, self.progress = out, progress

    def write(self, text: str) -> int:
        self.progress.clear()
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()
