"""A tiny round-robin front for several Django nodes: the load balancer of the topology tier.

Each client's requests (told apart by their Authorization header) go to the nodes in turn, so
consecutive calls of one client (create, sign, report, complete) land on alternate nodes: what
one node recorded, the other must find. It behaves like nginx's `proxy_next_upstream error`: a node
that refuses the connection is skipped and the request goes to the next one (nothing reached
the refusing node, so even a POST is safe to pass on); a node that dies after the request
reached it cannot be retried for the client (it may have acted), so the client gets a 502 with a
JSON `code`, and 503 `no_node_available` when no node takes the connection. Every request is
recorded (endpoint, node, status, seconds) for the test's figures.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

READ_TIMEOUT = 120.0  # a complete of many parts can take long; the nodes' gunicorn allows 120 s
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "trailer"}


@dataclass(frozen=True)
class Served:
    """One request as the front saw it. node is -1 when no node answered."""

    method: str
    path: str
    node: int
    status: int
    seconds: float
    code: str = ""


class RoundRobinFront:
    """Listens on a free loopback port; forwards to `nodes` (base URLs) in turn."""

    def __init__(self, nodes: list[str]) -> None:
        self.nodes = [("127.0.0.1", urlsplit(node).port) for node in nodes]
        self.served: list[Served] = []
        self.skipped: list[int] = []  # a node that refused a connection, once per refusal
        self._turns: dict[str, itertools.count[int]] = defaultdict(itertools.count)
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the clients' pools expect

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test prints figures, not an access log

            def do_GET(self) -> None:
                front.forward(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> RoundRobinFront:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        """Pass one request on to a node and its answer back (or answer 502/503 with a code)."""
        started = time.perf_counter()
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        with self._lock:
            first = next(self._turns[handler.headers.get("Authorization", "")])
        for offset in range(len(self.nodes)):
            index = (first + offset) % len(self.nodes)
            connection = http.client.HTTPConnection(*self.nodes[index], timeout=READ_TIMEOUT)
            try:
                connection.connect()
            except OSError:
                with self._lock:
                    self.skipped.append(index)
                continue
            try:
                connection.request(handler.command, handler.path, body=body, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
            except (OSError, http.client.HTTPException):
                # It reached a node that died before answering: the client must decide.
                self._answer_error(handler, started, index, 502, "node_failed")
                return
            finally:
                connection.close()
            code = _error_code(payload) if answer.status >= 400 else ""
            self._record(handler, index, answer.status, started, code)
            handler.send_response_only(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(payload)
            return
        self._answer_error(handler, started, -1, 503, "no_node_available")

    def _answer_error(
        self, handler: BaseHTTPRequestHandler, started: float, node: int, status: int, code: str
    ) -> None:
        self._record(handler, node, status, started, code)
        payload = json.dumps({"code": code, "detail": "No Partwise node could answer."}).encode()
        handler.send_response_only(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _record(
        self,
        handler: BaseHTTPRequestHandler,
        node: int,
        status: int,
        started: float,
        code: str = "",
    ) -> None:
        seconds = time.perf_counter() - started
        with self._lock:
            self.served.append(Served(handler.command, handler.path, node, status, seconds, code))


def _error_code(payload: bytes) -> str:
    """The `code` of a JSON error body ("" when it has none: an unexplained 5xx)."""
    try:
        code = json.loads(payload).get("code", "")
    except (ValueError, AttributeError):
        return ""
    return code if isinstance(code, str) else ""
