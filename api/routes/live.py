"""``WS /alarms/live``: the live stream of alarm events in the caller's scope, resumable.

Each text frame is one ``AlarmEvent.to_dict()`` (``{"id", "type", "ts", "alarm", ...}``) in the
book's order, its ``id`` an opaque cursor (:mod:`api.cursor`): the book's ids count the events of
every grid, and an officer must not learn how busy the others are. Without ``last_event_id`` the
stream carries every event in scope published after the handshake (the subscription is made
before the socket is accepted). With ``?last_event_id=C`` it first replays every event in scope
after the one C names, from the book, then goes on live; none is sent twice and none is skipped.
A client resumes from the id of the last event it saw or, before it saw any, from the
``X-Last-Event-Id`` header of ``GET /alarms``. A cursor beyond the book's newest event (a client of
another data directory with the same secret) counts as that newest event.

The token comes from ``Authorization: Bearer`` or ``?access_token=`` (browsers cannot set headers
on a WebSocket). The token is checked at the handshake and again whenever the account store
revokes tokens of its login (a logout, a disable, a new password, a new role or scope): a stream
whose token is no longer honoured is closed with 4401 at once (the expiry of an access token
does not end a stream already open). Close codes: 4401 bad, missing or revoked token, 1008 a
``last_event_id`` that is not a cursor of this gateway, 1013 (try again later) when the hub cut
the subscription off for falling behind: reconnect with the last id seen, 1012 when the server
stops.

No gap, no duplicate: the stream subscribes to the hub *before* reading the book, so an event is
either in the replay, or in the subscription queue, or both; those already sent (id <= the last
sent) are skipped. This relies on the book numbering events in the order the hub publishes them,
which holds because every book write happens on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from alerts.hub import Subscription
from alerts.scope import Within
from api.auth import token_of_connection, user_of_token
from api.cursor import CursorError, EventCursor, EventCursorDep
from api.deps import GatewayDep, GatewayView
from api.scope import scope_of
from gateway.config import User
from gateway.errors import TokenError
from gateway.registry import Registry

router = APIRouter(tags=["live"])

CLOSE_AUTH = 4401
CLOSE_POLICY = 1008
CLOSE_RESUME = 1013
REPLAY_PAGE = 500


@router.websocket("/alarms/live")
async def live(ws: WebSocket, gateway: GatewayDep, cursor: EventCursorDep) -> None:
    token = token_of_connection(ws, allow_query=True)
    try:
        if token is None:
            raise TokenError("no token")
        user = user_of_token(gateway, token)
    except TokenError as exc:
        await ws.accept()
        await ws.close(CLOSE_AUTH, f"unauthorized: {exc}")
        return
    resume = ws.query_params.get("last_event_id")
    try:
        last_id = None if resume is None else cursor.decode(resume)
    except CursorError:
        await ws.accept()
        await ws.close(CLOSE_POLICY, "last_event_id must be an event id this gateway gave")
        return
    scope = LiveScope(gateway.registry, user)
    with contextlib.suppress(WebSocketDisconnect), gateway.hub.subscribe(scope) as sub:
        head = gateway.book.last_event_id()  # on the loop, right after subscribing: nothing in between
        await ws.accept()
        revoked = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_revoke(username: str) -> None:  # called by the store, on whichever thread wrote
            if username == user.username:
                loop.call_soon_threadsafe(revoked.set)

        stop_listening = gateway.accounts.store.on_revoke(on_revoke)
        tasks = (asyncio.create_task(_pump(ws, gateway, cursor, scope, sub, head, last_id)),
                 asyncio.create_task(_watch(ws)), asyncio.create_task(_guard(ws, gateway, token, revoked)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_listening()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError, RuntimeError):
                    await task


class LiveScope:
    """A stream's scope as the registry has it now: recomputed when the registry's version moves
    (an enterprise moved to another grid, an officer put in a grid), so the stream follows."""

    def __init__(self, registry: Registry, user: User) -> None:
        self.registry, self.user = registry, user
        self.version = -1
        self.within: Within = Within(frozenset())

    def __call__(self) -> Within:
        if self.version != self.registry.version:
            self.version = self.registry.version
            self.within = scope_of(self.registry, self.user).within
        return self.within


async def _pump(ws: WebSocket, gateway: GatewayView, cursor: EventCursor, scope: LiveScope, sub: Subscription,
                head: int, last_id: int | None) -> None:
    """Replay from the book after ``last_id`` (if given), then forward live events, each once."""
    last = head
    if last_id is not None:
        last = min(last_id, head)  # an id beyond the head is from another book: start from now
        while True:
            page = await run_in_threadpool(gateway.book.events_since, last, scope(), REPLAY_PAGE)
            for event in page:
                await ws.send_text(orjson.dumps(cursor.event(event)).decode())
                last = event.id
            if len(page) < REPLAY_PAGE:
                break
    while True:
        event = await sub.get()
        if event is None:
            await ws.close(CLOSE_RESUME, "fell behind: reconnect with last_event_id")
            return
        if event.id <= last or not scope().covers(event.alarm):
            continue
        await ws.send_text(orjson.dumps(cursor.event(event)).decode())
        last = event.id


async def _guard(ws: WebSocket, gateway: GatewayView, token: str, revoked: asyncio.Event) -> None:
    """Close the stream with 4401 once its token is no longer honoured (checked when revoked is set)."""
    while True:
        await revoked.wait()
        revoked.clear()
        try:
            user_of_token(gateway, token)
        except TokenError as exc:
            await ws.close(CLOSE_AUTH, f"unauthorized: {exc}")
            return


async def _watch(ws: WebSocket) -> None:
    """Return when the client goes away; what it sends is ignored."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
