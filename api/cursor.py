"""Event ids as the API shows them: opaque cursors that say nothing of the events out of scope.

The book numbers its events across every grid; shown as they are, the gap between two ids an
officer sees would tell how busy the other grids were. So every event id leaving the API (the live
stream's ``id``, ``X-Last-Event-Id``, an alarm's history, the events an action made) is a cursor:
the id encrypted under a key drawn from the gateway's secret, 22 URL-safe characters. A cursor
names one event exactly (the live stream resumes after it), the same event always has the same
cursor, and only the gateway can read one; a forged or mangled cursor is refused.

The cipher is a four-round Feistel network (Luby and Rackoff: a pseudorandom permutation) over a
128-bit block, with keyed BLAKE2b as the round function: the id fills the left half, zeros the
right, and a cursor whose right half does not decrypt to zeros is refused. The standard library has
no block cipher, and this is the textbook construction with a standard keyed hash inside.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from alerts.model import AlarmEvent

ROUNDS = 4
_HALF = 8  # bytes


class CursorError(ValueError):
    """A cursor this gateway did not make."""


class EventCursor:
    """Encode book event ids as opaque cursors and back, under a key drawn from ``secret``."""

    def __init__(self, secret: bytes) -> None:
        self._keys = [hmac.new(secret, f"gridgate event cursor {i}".encode(), hashlib.sha256).digest()
                      for i in range(ROUNDS)]

    def _round(self, i: int, half: bytes) -> bytes:
        return hashlib.blake2b(half, key=self._keys[i], digest_size=_HALF).digest()

    def encode(self, event_id: int) -> str:
        """The cursor of book event ``event_id`` (0: before the first event)."""
        left, right = event_id.to_bytes(_HALF, "big"), bytes(_HALF)
        for i in range(ROUNDS):
            left, right = right, _xor(left, self._round(i, right))
        return base64.urlsafe_b64encode(left + right).rstrip(b"=").decode("ascii")

    def decode(self, cursor: str) -> int:
        """The book event id of ``cursor``; CursorError if this gateway did not make it."""
        if len(cursor) != 22:
            raise CursorError("not an event cursor")
        try:
            block = base64.urlsafe_b64decode(cursor + "==")
        except (binascii.Error, ValueError):
            raise CursorError("not an event cursor") from None
        if len(block) != 2 * _HALF or base64.urlsafe_b64encode(block).rstrip(b"=").decode() != cursor:
            raise CursorError("not an event cursor")  # the last character has bits no block sets
        left, right = block[:_HALF], block[_HALF:]
        for i in reversed(range(ROUNDS)):
            left, right = _xor(right, self._round(i, left)), left
        if right != bytes(_HALF):
            raise CursorError("not an event cursor of this gateway")
        return int.from_bytes(left, "big")

    def event(self, event: AlarmEvent) -> dict[str, Any]:
        """``event.to_dict()`` with its id as a cursor."""
        return {**event.to_dict(), "id": self.encode(event.id)}


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def event_cursor(conn: HTTPConnection) -> EventCursor:
    """The cursor of the app serving this request (made by ``create_app`` from the gateway's secret)."""
    return conn.app.state.event_cursor


EventCursorDep = Annotated[EventCursor, Depends(event_cursor)]
