"""``serve_api``: the API under uvicorn, in the caller's event loop, as one task of the runtime.

The listening socket is bound here (so a busy port fails with an ``OSError`` naming the address,
instead of uvicorn's ``sys.exit``), uvicorn's signal handling and logging setup are left out (the
runtime owns both), and cancelling the task stops the server gracefully: no new connections,
open WebSockets closed with 1012, a bounded wait for requests in flight, then the socket closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Generator

import uvicorn

from api.app import create_app
from api.deps import GatewayView

log = logging.getLogger(__name__)
GRACE_S = 5.0


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host and tells it when it is listening."""

    def __init__(self, config: uvicorn.Config, started: asyncio.Event | None) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._started_event is not None:
            self._started_event.set()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {reason}") from exc


async def serve_api(gateway: GatewayView, host: str, port: int, started: asyncio.Event | None = None) -> None:
    """Serve ``create_app(gateway)`` on ``host:port`` until cancelled; sets ``started`` once listening."""
    sock = _bind(host, port)
    config = uvicorn.Config(
        create_app(gateway), lifespan="off", log_config=None, access_log=False,
        ws="websockets-sansio", ws_per_message_deflate=False, timeout_graceful_shutdown=GRACE_S,
        proxy_headers=False,  # X-Forwarded-For only from [api] trusted_proxies: api.guard
    )
    server = _EmbeddedServer(config, started)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    log.info("API listening on http://%s:%d", host, sock.getsockname()[1])
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        server.should_exit = True
        try:
            async with asyncio.timeout(GRACE_S + 2):
                await serving
        except TimeoutError:
            server.force_exit = True
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
        raise
    finally:
        sock.close()
