"""HTTP in tests: the test client's requests (JSON or raw bodies), and a server in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from socketserver import BaseServer
from typing import Any, TypeVar

from rest_framework.test import APIClient

FORM = "application/x-www-form-urlencoded"
Server = TypeVar("Server", bound=BaseServer)


@dataclass(frozen=True)
class Raw:
    """A body sent as bytes with its own content type (not encoded by the test client)."""

    data: bytes
    content_type: str = "application/json"


def send(client: APIClient, method: str, url: str, body: Any = None, **headers: str) -> Any:
    """`client.<method>(url)` with `body` as JSON, as raw bytes (Raw), or without a body."""
    call = getattr(client, method)
    if isinstance(body, Raw):
        return call(url, body.data, content_type=body.content_type, **headers)
    if body is None:
        return call(url, **headers)
    return call(url, body, format="json", **headers)


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    """Serve `server` (e.g. a ThreadingHTTPServer on 127.0.0.1:0) in a thread; stop and close it
    on exit."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
