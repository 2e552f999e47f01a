"""The request guard: one pure ASGI middleware between the server and the app, for what every
request must pass whatever its route.

- **Client address.** ``X-Forwarded-For`` is believed only when the peer is one of
  ``[api] trusted_proxies``; the client is then the right-most address of the header that is not a
  trusted proxy. From any other peer the header is ignored, so rotating it buys nothing (the
  public reports' rate limit counts per client address). uvicorn's own proxy handling is off
  (:mod:`api.server`).
- **Body size.** A ``Content-Length`` over ``[api] max_body`` is a 413 before a byte of the body
  is read; a body without one (chunked) is counted as it arrives and refused the moment it passes
  the limit. A few paths take larger bodies (a register import, ``[api] max_import``), and only
  from a request that carries credentials (``Authorization``) at all. The app gets the body
  only once it is whole, so nothing is parsed before the check.
- **Strict JSON.** A JSON body (``application/json``, ``application/*+json``) is parsed with
  orjson first: ``NaN``, ``Infinity``, a lone surrogate, a number beyond a double or nesting past
  1024 levels is a 422 that names the position, never echoing the input.
- **Security headers** on every response: ``Content-Security-Policy`` (a page that needs more,
  like the console, sets its own), ``X-Content-Type-Options``, ``X-Frame-Options``,
  ``Referrer-Policy``.
- **Refusals counted.** Every 4xx is reported to ``refused(status, method, where)``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Network = IPv4Network | IPv6Network
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
SECURITY_HEADERS = [
    (b"content-security-policy", DEFAULT_CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def client_address(peer: str, forwarded_for: Iterable[str], trusted: Iterable[Network]) -> str:
    """The client's address: ``peer``, or from ``X-Forwarded-For`` when ``peer`` is a trusted proxy."""
    nets = tuple(trusted)

    def is_trusted(addr: IPv4Address | IPv6Address) -> bool:
        return any(addr in net for net in nets)

    try:
        if not nets or not is_trusted(ipaddress.ip_address(peer)):
            return peer
    except ValueError:  # a Unix socket or a test client's name
        return peer
    client = peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            addr = ipaddress.ip_address(hop)
        except ValueError:  # garbage: the proxy that passed it on is the last address we know
            return client
        client = str(addr)
        if not is_trusted(addr):
            break
    return client


def _is_json(content_type: str) -> bool:
    """Whether FastAPI will parse a body of this type as JSON (``application/json``, ``+json``)."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class RequestGuard:
    """See the module docstring; ``refused`` is called for every 4xx answer."""

    def __init__(self, app: ASGIApp, *, max_body: int, trusted_proxies: Iterable[Network] = (),
                 refused: Callable[[int, str, str], None] | None = None,
                 larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.larger = dict(larger or {})
        self.trusted = tuple(trusted_proxies)
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = [(k.lower(), v) for k, v in scope["headers"]]
        if scope.get("client") and self.trusted:
            forwarded = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
            host, port = scope["client"]
            client = client_address(host, forwarded, self.trusted)
            if client != host:
                scope["client"] = (client, 0)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_guarded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                have = {k.lower() for k, _ in message.get("headers", ())}
                message["headers"] = [*message.get("headers", ()),
                                      *((k, v) for k, v in SECURITY_HEADERS if k not in have)]
            await send(message)

        try:
            await self._guarded(scope, receive, send_guarded, dict(headers))
        finally:
            if 400 <= status < 500 and self.refused is not None:
                route = scope.get("route")
                self.refused(status, scope["method"], getattr(route, "path", None) or scope["path"][:200])

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        limit = self.max_body
        if scope["path"] in self.larger and headers.get(b"authorization"):
            limit = self.larger[scope["path"]]
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await self._answer(send, 413, self._too_large(limit), close=True)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await self._answer(send, 413, self._too_large(limit), close=True)
                return
            if not message.get("more_body", False):
                break
        if body and _is_json(headers.get(b"content-type", b"").decode("latin-1")):
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                error = {"type": "json_invalid", "loc": ["body", exc.pos], "msg": f"JSON decode error: {exc.msg}"}
                await self._answer(send, 422, {"detail": [error]})
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _too_large(self, limit: int) -> dict[str, str]:
        key = "max_body" if limit == self.max_body else "max_import"
        return {"detail": f"request body over {limit} bytes ([api] {key})"}

    @staticmethod
    async def _answer(send: Send, status: int, content: dict, close: bool = False) -> None:
        """Answer without the app; ``close`` when the body was left unread (the connection cannot be reused)."""
        body = orjson.dumps(content)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + [(b"connection", b"close")] * close})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read already, then waits on the real one (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
