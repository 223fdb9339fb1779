"""A webhook receiver for tests: an HTTP server on 127.0.0.1 (free port) in a thread.

It records every request (headers and body) and answers with the next status from `answers`
(200 once they run out), so a test can make the first delivery fail and watch the retry.
Given a `secret`, it verifies each request as a receiver following README would, with the
Standard Webhooks library itself (not Partwise's code), and records whether it was genuine.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.http import serving


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    verified: bool | None = None  # None: the receiver had no secret to verify with


def library_verifies(secret: str | bytes, body: bytes, headers: dict[str, str]) -> bool:
    """What README's receiver does: `standardwebhooks.Webhook(secret).verify(body, headers)`."""
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@dataclass
class WebhookReceiver:
    server: ThreadingHTTPServer
    secret: str | bytes | None = None
    answers: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/partwise"

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """Block until `count` requests arrived (or the timeout passed); return them all."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)


def _handler(receiver: "WebhookReceiver") -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = dict(self.headers.items())
            verified = (
                None
                if receiver.secret is None
                else library_verifies(receiver.secret, body, headers)
            )
            with receiver.arrived:
                status = receiver.answers.pop(0) if receiver.answers else 200
                receiver.requests.append(Received(self.path, headers, body, status, verified))
                receiver.arrived.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

    return Handler


@contextmanager
def running_receiver(secret: str | bytes | None = None) -> Iterator[WebhookReceiver]:
    """Start a receiver on a free loopback port (verifying with `secret`); stop it on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    receiver = WebhookReceiver(server=server, secret=secret)
    server.RequestHandlerClass = _handler(receiver)
    with serving(server):
        yield receiver
