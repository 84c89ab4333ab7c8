"""A fault-injecting HTTP proxy for S3 tests: it sits on loopback between mlcd and an S3 endpoint
and, for a chosen fraction of requests, answers 500 or 503 SlowDown, delays, or drops the
connection; the rest it forwards unchanged. Seeded, so a test sees the same faults every run."""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FAULTS = ("500", "503", "drop", "delay")

_BODIES = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
}


class FaultyProxy:
    """``with FaultyProxy(upstream, rate=0.1) as proxy:`` then point mlcd at ``proxy.url``."""

    def __init__(
        self,
        upstream: str,
        *,
        rate: float,
        faults: tuple[str, ...] = FAULTS,
        seed: int = 0,
        delay: float = 0.5,
        quirk: str | None = None,
        stop_after: int | None = None,
        stop_on: tuple[str, str] | None = None,
    ) -> None:
        """``quirk`` makes it behave as a store unlike AWS: "ignores-conditions" (s3rver: the
        If-None-Match and If-Match headers of a PUT are dropped), "unquoted-if-match" (Ceph RGW
        16: If-Match with a quoted ETag is answered 412, an unquoted one is taken)."""
        assert quirk in (None, "ignores-conditions", "unquoted-if-match")
        # ``stop_after``: after that many requests the store is stopped (connections dropped);
        # ``stop_on`` (method, path part): it stops at the first such request
        self.stop_after, self.stop_on = stop_after, stop_on
        self.upstream = urlsplit(upstream)
        self.rate, self.faults, self.delay, self.quirk = rate, faults, delay, quirk
        self.requests: Counter[str] = Counter()
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._draw()
                with proxy.lock:
                    if proxy.stop_on and self.command == proxy.stop_on[0]:
                        if proxy.stop_on[1] in self.path:
                            proxy.stop_after = 0
                    stopped = proxy.stop_after is not None and proxy.stop_after <= 0
                    if proxy.stop_after is not None:
                        proxy.stop_after -= 1
                if stopped or fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault in _BODIES:
                    status, code, message = _BODIES[fault]
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{message}</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault == "delay":
                    time.sleep(proxy.delay)
                with proxy.lock:
                    proxy.requests[self.command] += 1
                if proxy._quirk(self):
                    return
                proxy._forward(self, body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on a dropped or delayed request: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _draw(self) -> str | None:
        with self.lock:
            if self.random.random() >= self.rate:
                return None
            fault = self.random.choice(self.faults)
            self.injected[fault] += 1
            return fault

    def _quirk(self, handler: BaseHTTPRequestHandler) -> bool:
        """Rewrite the request as the emulated store reads it; True when answered here."""
        if handler.command not in ("PUT", "DELETE"):
            return False
        if self.quirk == "ignores-conditions":
            for name in ("If-None-Match", "If-Match"):
                del handler.headers[name]
        if self.quirk == "unquoted-if-match":
            etag = handler.headers.get("If-Match")
            if etag is not None and etag.startswith('"'):
                payload = (
                    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed'
                    b"</Code><Message>At least one of the pre-conditions you specified did not "
                    b"hold</Message></Error>"
                )
                handler.send_response(412)
                handler.send_header("Content-Type", "application/xml")
                handler.send_header("Content-Length", str(len(payload)))
                handler.end_headers()
                handler.wfile.write(payload)
                return True
            if etag is not None:  # the upstream (moto) compares the quoted form
                del handler.headers["If-Match"]
                handler.headers["If-Match"] = f'"{etag}"'
        return False

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "expect"}
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            handler.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(data)
        finally:
            conn.close()
        with self.lock:
            self.forwarded += 1

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
