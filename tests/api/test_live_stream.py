"""The live alarm stream over a real uvicorn WebSocket: auth, scope, resume without gap or duplicate,
cut-off of a lagging subscriber, and a clean stop with clients connected. Event ids on the wire are
opaque cursors; the tests turn them into the book's ids (:class:`api.cursor.EventCursor`) to
compare with the book.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from api.cursor import EventCursor
from api.scope import scope_of
from tests.helpers import wait_for
from tests.server import ApiServer


def open_stream(server: ApiServer, user: str, last_event_id: int | None = None,
                header: bool = False) -> ClientConnection:
    """A stream of ``user``'s alarm events; subscribed by the time it returns."""
    token = server.token(user)
    url = f"{server.ws_base}/alarms/live"
    params = [] if header else [f"access_token={token}"]
    if last_event_id is not None:
        params.append(f"last_event_id={EventCursor(server.gw.secret).encode(last_event_id)}")
    if params:
        url += "?" + "&".join(params)
    headers = {"Authorization": f"Bearer {token}"} if header else None
    # max_queue=None: a client that stops reading under a flood would pause its socket reads and
    # miss the server's close frame, waiting close_timeout (10 s) on every reconnect.
    return connect(url, additional_headers=headers, open_timeout=5, max_queue=None)


def recv_event(server: ApiServer, ws: ClientConnection) -> dict[str, Any]:
    """The next event, its ``id`` (a cursor) turned into the book's event id."""
    event = json.loads(ws.recv(timeout=5))
    return {**event, "id": EventCursor(server.gw.secret).decode(event["id"])}


def close_code(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


def scoped_ids(server: ApiServer, user: str, after: int) -> list[int]:
    login = next(u for u in server.gw.config.users if u.username == user)
    scope = scope_of(server.gw.registry, login)
    return [e.id for e in server.gw.book.events_since(after, scope.within, 100_000)]


def test_events_outside_the_scope_are_never_sent(server: ApiServer):
    zhang = open_stream(server, "zhang")
    wang = open_stream(server, "wang", header=True)
    with zhang, wang:
        other = server.raise_alarm("shimen/gas/ch4")  # wang's grid, published first
        mine = server.raise_alarm("hengyuan/gas/ch4")
        ev = recv_event(server, zhang)
        assert (ev["type"], ev["alarm"]["id"]) == ("raised", mine["id"])  # not shimen's, sent before
        ev = recv_event(server, wang)
        assert (ev["type"], ev["alarm"]["id"]) == ("raised", other["id"])
        with server.client("zhang") as c:
            c.post(f"/alarms/{mine['id']}/ack", json={"note": "seen"})
        ev = recv_event(server, zhang)
        assert (ev["type"], ev["actor"], ev["note"]) == ("acknowledged", "zhang", "seen")
        server.raise_alarm("shimen/gas/ch4b")
        server.raise_alarm("hengyuan/gas/ch4b")
        assert recv_event(server, zhang)["alarm"]["sensor_id"] == "hengyuan/gas/ch4b"


def test_reconnect_with_last_event_id_gets_exactly_what_was_missed(server: ApiServer):
    with open_stream(server, "zhang") as ws:
        server.raise_alarm("hengyuan/gas/ch4")
        seen = recv_event(server, ws)["id"]
    server.submit({"hengyuan/gas/ch4": 0.0})  # cleared
    server.raise_alarm("shimen/gas/ch4")  # out of scope
    server.raise_alarm("hengyuan/gas/ch4c")
    server.submit({"hengyuan/gas/ch4c": 60.0})  # rose
    missed = wait_for(lambda: len(ids := scoped_ids(server, "zhang", seen)) == 3 and ids,
                        what="the three events in scope")
    with open_stream(server, "zhang", last_event_id=seen) as ws:
        replayed = [recv_event(server, ws) for _ in missed]
        assert [e["id"] for e in replayed] == missed
        assert [e["type"] for e in replayed] == ["cleared", "raised", "rose"]
        live = server.raise_alarm("hengyuan/gas/ch4d")
        ev = recv_event(server, ws)
        assert ev["alarm"]["id"] == live["id"] and ev["id"] > missed[-1]


def test_resuming_under_load_has_no_gap_and_no_duplicate(server: ApiServer):
    stop = threading.Event()

    def produce() -> None:
        value = 0.0
        while not stop.is_set():
            value = 30.0 if value == 0.0 else 0.0  # raise, clear, raise again...
            server.submit({"hengyuan/gas/ch4": value, "hengyuan/gas/ch4b": value, "shimen/gas/ch4": value})

    producer = threading.Thread(target=produce, daemon=True)
    received: list[int] = []
    start = server.gw.book.last_event_id()
    ws = open_stream(server, "zhang")
    head = start
    producer.start()
    try:
        for cycle in range(8):
            with ws:  # read past the head at (re)connection, so the replay-to-live switch is crossed
                while not received or received[-1] <= head + 20:
                    received.append(recv_event(server, ws)["id"])
            if cycle % 3 == 1:  # miss more than a replay page, so live events arrive mid-replay
                wait_for(lambda: len(scoped_ids(server, "zhang", received[-1])) > 600, what="600 missed")
            ws = open_stream(server, "zhang", last_event_id=received[-1])
            head = server.gw.book.last_event_id()
    finally:
        stop.set()
        producer.join(5)
    with ws:
        want = scoped_ids(server, "zhang", start)
        while len(received) < len(want):
            received.append(recv_event(server, ws)["id"])
    assert received == want[: len(received)]
    assert len(set(received)) == len(received) > 1200


def test_a_lagging_subscriber_is_cut_off_and_resumes(server: ApiServer):
    server.gw.hub.queue_size = 2  # for subscriptions made from now on
    with server.client("zhang") as c:
        start = EventCursor(server.gw.secret).decode(c.get("/alarms").headers["X-Last-Event-Id"])
    with open_stream(server, "zhang", last_event_id=start) as ws:
        server.submit({f"hengyuan/gas/{k}": 30.0 for k in ("ch4", "ch4b", "ch4c", "ch4d", "ch4e")})
        assert close_code(ws) == 1013
    assert server.gw.hub.overflows == 1
    with open_stream(server, "zhang", last_event_id=start) as ws:
        events = [recv_event(server, ws) for _ in range(5)]
        assert [e["type"] for e in events] == ["raised"] * 5
        assert [e["id"] for e in events] == scoped_ids(server, "zhang", start)


def test_token_by_query_or_header_and_bad_auth_refused(server: ApiServer):
    with open_stream(server, "zhang") as by_query, open_stream(server, "admin", header=True) as by_header:
        alarm = server.raise_alarm("hengyuan/gas/ch4")
        got = recv_event(server, by_query), recv_event(server, by_header)
        assert got[0]["alarm"]["id"] == got[1]["alarm"]["id"] == alarm["id"]
    url = f"{server.ws_base}/alarms/live"
    for suffix in ("", "?access_token=garbage", "?access_token=" + server.token("zhang")[:-2] + "xx"):
        with connect(url + suffix, open_timeout=5) as ws:
            assert close_code(ws) == 4401
    with connect(f"{url}?access_token={server.token('zhang')}&last_event_id=abc", open_timeout=5) as ws:
        assert close_code(ws) == 1008


def test_event_ids_are_cursors_that_tell_nothing_out_of_scope(server: ApiServer):
    """The book's ids count every grid's events: on the wire they are cursors, and a cursor that this
    gateway did not make (a book id, another secret's cursor, a changed character) is refused."""
    with open_stream(server, "zhang") as ws:
        server.raise_alarm("hengyuan/gas/ch4")
        first = json.loads(ws.recv(timeout=5))["id"]
        for key in ("ch4", "ch4b", "ch4c"):
            server.raise_alarm(f"shimen/gas/{key}")  # another grid: busy
        server.raise_alarm("hengyuan/gas/ch4b")
        second = json.loads(ws.recv(timeout=5))["id"]
    for cursor in (first, second):
        assert isinstance(cursor, str) and len(cursor) == 22 and not cursor.isdigit()
    book = EventCursor(server.gw.secret)
    assert book.decode(second) - book.decode(first) == 4  # the book knows; the officer cannot tell
    with server.client("zhang") as c:
        head = c.get("/alarms").headers["X-Last-Event-Id"]
        history = c.get(f"/alarms/{server.gw.book.events_since(0, None)[0].alarm.id}").json()["history"]
    assert book.decode(head) == server.gw.book.last_event_id() and history[0]["id"] == first
    url = f"{server.ws_base}/alarms/live?access_token={server.token('zhang')}&last_event_id="
    flipped = [first[:i] + ("A" if first[i] != "A" else "B") + first[i + 1:] for i in (5, 21)]
    for bad in (str(book.decode(first)), EventCursor(b"another gateway").encode(1), *flipped, "é" * 22):
        with connect(url + bad, open_timeout=5) as ws:
            assert close_code(ws) == 1008, bad
    with connect(url + first, open_timeout=5) as ws:  # resumes right after the first
        assert json.loads(ws.recv(timeout=5))["id"] == second


def test_stopping_the_server_closes_streams(server: ApiServer):
    with open_stream(server, "zhang") as ws:
        wait_for(lambda: server.gw.hub.subscribers == 1, what="the subscription")
        server.stop()
        assert close_code(ws) == 1012
