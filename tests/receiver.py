"""A real webhook receiver for the notifier tests: an HTTP server on a free port that verifies requests
as the real services do (HMAC-SHA256 for the JSON format, DingTalk's timestamp and sign), records
what it got, and answers from a script (errors, rate limits, Retry-After) or with success.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.peers import free_port


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """An HTTP endpoint that verifies like the real service, then answers from ``script`` or with success."""

    def __init__(self, mode: str, secret: str | None = None, port: int | None = None) -> None:
        self.mode, self.secret = mode, secret
        self.port = port or free_port()
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.got: list[Received] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?access_token=tok"

    def ids(self) -> list[int]:
        with self.lock:
            return [int(r.headers["x-gridgate-event-id"]) if self.mode == "json" else -1 for r in self.got]

    def verify(self, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> bool:
        if self.secret is None:
            return True
        if self.mode == "json":
            mac = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            return hmac.compare_digest(headers.get("x-gridgate-signature", ""), f"sha256={mac}")
        if self.mode == "dingtalk":
            ts, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
            if not ts.isdigit() or abs(time.time() * 1000 - int(ts)) > 3_600_000:
                return False
            mac = hmac.new(self.secret.encode(), f"{ts}\n{self.secret}".encode(), hashlib.sha256).digest()
            return hmac.compare_digest(sign, base64.b64encode(mac).decode())
        return True

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        ok = self.verify(query, headers, body)
        with self.lock:
            self.got.append(Received(parts.path, query, headers, body, ok, time.monotonic()))
            if not ok:
                if self.mode == "json":
                    return 401, {}, b"bad signature"
                return 200, {}, b'{"errcode":310000,"errmsg":"sign not match"}'
            if self.script:
                return self.script.pop(0)
        return 200, {}, (b"ok" if self.mode == "json" else b'{"errcode":0,"errmsg":"ok"}')

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, reply = receiver.answer(self.path, headers, body)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            assert self.thread is not None
            self.thread.join(5)
            self.server = None


