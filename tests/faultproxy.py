"""A small fault-injecting HTTP/1.1 proxy for tests: between clients and S3, or clients and Django.

`FaultProxy(target)` listens on 127.0.0.1 on a free port and forwards every request to the
target (a loopback URL), one request at a time per client connection, each over a fresh
upstream connection. Rules decide what happens to a request before, during or after it is
forwarded:

    reset          forward the head and `after_bytes` bytes of the body, then reset both sides
                   (`after_bytes=0`: reset before anything reaches the target)
    stall          forward `after_bytes` bytes of the body, wait `seconds` (or until released),
                   then go on (`after_bytes=-1`: hold the request before anything is forwarded)
    delay          wait `seconds`, then forward
    error          answer `status` (503 SlowDown, 500 InternalError, … as S3's XML error body)
                   without forwarding anything
    drop_response  forward the request, read the whole answer, then reset the client's
                   connection instead of delivering it (the client never hears the outcome)
    hold_response  forward the request, read the answer, wait `seconds` (or until released),
                   then deliver it
    corrupt        forward the request with the byte at `after_bytes` of its body flipped (the
                   same length, other bytes: a part damaged in transit, past every length check)
    count          only count and record the request (with the target's answer status); unlike
                   the others, it lets the next matching rule act on the request too

The first matching rule (other than `count`) acts. Which requests a rule takes is decided by
its method and path/query pattern, `times` (at most that many) and `fraction`. The draw for
`fraction` is a hash of the seed, the rule, the request (method, path, the query without
signature parameters) and how many times that request was seen, so a seed gives the same fate
to the same request whatever the order threads send them in, run after run (ids that change at
every run are left out of a request's identity).
`counts` says what the proxy did (per rule name, plus "requests", "connections" and
"unreachable": requests the target refused), `events` lists it (bounded), and `stop()` closes
every socket and joins every thread. Host headers are forwarded unchanged, so presigned URLs
signed for the proxy's address verify at the target. Only loopback targets are accepted.
"""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

ACTIONS = (
    "reset",
    "stall",
    "delay",
    "error",
    "drop_response",
    "hold_response",
    "corrupt",
    "count",
)
MAX_HEAD = 64 * 1024  # a request or response head longer than this is refused
MAX_CONNECTIONS = 64  # client connections served at once; more wait in the listen backlog
MAX_WAIT = 120.0  # no stall, delay or hold lasts longer than this, whatever a rule says
IO_TIMEOUT = 120.0  # a socket silent for this long is given up
BLOCK = 64 * 1024
S3_ERRORS = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
    502: ("BadGateway", "Bad gateway."),
    504: ("GatewayTimeout", "Gateway timeout."),
}
REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class _Closed(Exception):
    """The peer went away; this connection is done."""


@dataclass
class Rule:
    """What to do to matching requests. See the module docstring for the actions."""

    action: str
    method: str | None = None  # e.g. "PUT"; None matches any
    path: str | None = None  # a regex searched in path and query: "/complete/$", "partNumber=2"
    fraction: float = 1.0
    times: int | None = None  # None: every matching request
    after_bytes: int = 0
    seconds: float | None = None  # None: until `release` is set (at most MAX_WAIT)
    status: int = 503
    code: str | None = None  # S3 error code of the body (default from `status`)
    name: str = ""  # how counts and events call it (default: the action)
    applied: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; one of {ACTIONS}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        self.name = self.name or self.action
        if self.action in ("reset", "corrupt"):
            self.after_bytes = max(0, self.after_bytes)  # a byte of the body, or the first
        self._pattern = re.compile(self.path) if self.path else None

    def matches(self, method: str, target: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return not self._pattern or bool(self._pattern.search(target))


@dataclass
class Event:
    """One thing the proxy did to one request (`status` is the target's answer, if any)."""

    rule: str
    method: str
    target: str
    status: int | None = None
    body: bytes = b""  # the answer the client never got (drop_response), first 64 KiB


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    head: bytes
    status: int | None = None  # the target's answer, once there is one
    watchers: list[Rule] = field(default_factory=list)  # "count" rules not yet recorded

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class _Reader:
    """Buffered reads from a socket: heads up to a blank line, exact lengths, or blocks."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(BLOCK)
        except OSError:
            data = b""
        if not data:
            return False
        self.buffer += data
        return True

    def head(self) -> bytes | None:
        """Everything up to and including the blank line; None at a clean end of stream."""
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEAD:
                raise _Closed("head too long")
            if not self._fill():
                if self.buffer:
                    raise _Closed("stream ended inside a head")
                return None
        end = self.buffer.index(b"\r\n\r\n") + 4
        head, self.buffer = self.buffer[:end], self.buffer[end:]
        return head

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEAD or not self._fill():
                raise _Closed("stream ended inside a line")
        end = self.buffer.index(b"\r\n") + 2
        line, self.buffer = self.buffer[:end], self.buffer[end:]
        return line

    def chunks(self, length: int | None) -> Iterator[bytes]:
        """`length` bytes (None: until the end of the stream), in blocks as they arrive."""
        left = length
        while left is None or left > 0:
            if not self.buffer and not self._fill():
                if left is None:
                    return
                raise _Closed("stream ended inside a body")
            take = len(self.buffer) if left is None else min(left, len(self.buffer))
            block, self.buffer = self.buffer[:take], self.buffer[take:]
            if left is not None:
                left -= take
            yield block

    def chunked(self) -> Iterator[bytes]:
        """A chunked body, verbatim (sizes, data, trailers), as blocks."""
        while True:
            size_line = self.line()
            yield size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = self.line()
                    yield trailer
                    if trailer == b"\r\n":
                        return
            yield from self.chunks(size + 2)


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _body_blocks(reader: _Reader, headers: list[tuple[str, str]], *, until_close: bool):
    values = {name.lower(): value for name, value in headers}
    if "chunked" in values.get("transfer-encoding", "").lower():
        return reader.chunked()
    if "content-length" in values:
        return reader.chunks(int(values["content-length"]))
    return reader.chunks(None if until_close else 0)


def _flipped(block: bytes, index: int) -> bytes:
    """`block` with every bit of its byte at `index` inverted."""
    return block[:index] + bytes([block[index] ^ 0xFF]) + block[index + 1 :]


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a dropped connection looks to the peer."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# Ids that differ at every run (UUIDs, S3 upload ids, random bucket names): not part of a
# request's identity, so a seed decides the same way run after run.
_VOLATILE = re.compile(r"[0-9a-fA-F]{8,}(?:[-_][0-9a-fA-F]{4,})*")


def _identity(method: str, target: str) -> str:
    """The request without what changes between runs and signings (ids, X-Amz-*, uploadId)."""
    parts = urlsplit(target)
    query = parse_qsl(parts.query, keep_blank_values=True)
    stable = sorted(
        (k, v) for k, v in query if not k.lower().startswith("x-amz-") and k != "uploadId"
    )
    return f"{method} {_VOLATILE.sub('*', parts.path)}?{urlencode(stable)}"


class FaultProxy:
    """The proxy. Use as a context manager, or start() and stop()."""

    def __init__(self, target: str, *, seed: int = 0, rules: list[Rule] | None = None) -> None:
        parts = urlsplit(target)
        if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
            raise ValueError("FaultProxy forwards to loopback addresses with a port only")
        self.target_address = ("127.0.0.1", parts.port)
        self.seed = seed
        self.rules: list[Rule] = list(rules or [])
        self.counts: Counter[str] = Counter()
        self.events: deque[Event] = deque(maxlen=1000)
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self.port = 0

    # --- life cycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(0.2)  # accept() wakes up to notice stop()
        self._listener, self.port = listener, listener.getsockname()[1]
        self._acceptor = threading.Thread(
            target=self._accept, name="faultproxy-accept", daemon=True
        )
        self._acceptor.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every open connection; wait for all threads to end."""
        self._stopping.set()
        for rule in self.rules:
            rule.release.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- rules --------------------------------------------------------------------------------
    def add(self, action: str, **options: object) -> Rule:
        """Add a rule (see Rule) and return it, e.g. to `release` a stall later."""
        rule = Rule(action, **options)  # type: ignore[arg-type]
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule (releasing requests that are held) and start counting afresh."""
        with self._lock:
            rules, self.rules = self.rules, []
            self.counts.clear()
            self.events.clear()
            self.seen.clear()
        for rule in rules:
            rule.release.set()

    @contextmanager
    def rule(self, action: str, **options: object) -> Iterator[Rule]:
        """A rule for the duration of a `with` block."""
        rule = self.add(action, **options)
        try:
            yield rule
        finally:
            with self._lock:
                if rule in self.rules:
                    self.rules.remove(rule)
            rule.release.set()

    def _choose(self, method: str, target: str) -> tuple[Rule | None, list[Rule]]:
        """The rule that acts on the request (if any), and the `count` rules that watch it."""
        identity = _identity(method, target)
        watchers = []
        with self._lock:
            self.seen[identity] += 1
            self.counts["requests"] += 1
            occurrence = self.seen[identity]
            for index, rule in enumerate(self.rules):
                if not rule.matches(method, target):
                    continue
                if rule.times is not None and rule.applied >= rule.times:
                    continue
                if rule.fraction < 1.0 and self._draw(index, identity, occurrence) >= rule.fraction:
                    continue
                rule.applied += 1
                self.counts[rule.name] += 1
                if rule.action != "count":
                    return rule, watchers
                watchers.append(rule)
        return None, watchers

    def _draw(self, index: int, identity: str, occurrence: int) -> float:
        digest = hashlib.sha256(f"{self.seed}|{index}|{identity}|{occurrence}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def _record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def _wait(self, rule: Rule) -> None:
        """Wait the rule's seconds (or until released or stopped), never past MAX_WAIT."""
        seconds = MAX_WAIT if rule.seconds is None else min(rule.seconds, MAX_WAIT)
        deadline = time.monotonic() + seconds
        while not (rule.release.is_set() or self._stopping.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            rule.release.wait(min(left, 0.1))

    # --- connections ------------------------------------------------------------------------
    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.2):
                continue
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                self._slots.release()
                continue
            thread = threading.Thread(
                target=self._serve, args=(client,), name="faultproxy-conn", daemon=True
            )
            with self._lock:
                self._sockets.add(client)
                self._threads.add(thread)
                self.counts["connections"] += 1
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(IO_TIMEOUT)
        reader = _Reader(client)
        try:
            while not self._stopping.is_set():
                head = reader.head()
                if head is None:
                    break
                request_line, headers = _parse_head(head)
                method, target, version = [*request_line.split(" ", 2), "", ""][:3]
                request = _Request(method.upper(), target, version, headers, head)
                if not self._handle(client, reader, request):
                    break
        except (_Closed, OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._sockets.discard(client)
                self._threads.discard(threading.current_thread())
            try:
                client.close()
            finally:
                self._slots.release()

    def _handle(self, client: socket.socket, reader: _Reader, request: _Request) -> bool:
        """Serve one request; False when the client connection must close."""
        rule, request.watchers = self._choose(request.method, request.target)
        try:
            return self._act(client, reader, request, rule)
        finally:
            self._record_watchers(request)

    def _record_watchers(self, request: _Request) -> None:
        # Called before the answer's last byte leaves, so a client that has read its answer
        # always finds the watchers' events already recorded (and again, as a no-op, at the end).
        watchers, request.watchers = request.watchers, []
        for watcher in watchers:
            self._record(Event(watcher.name, request.method, request.target, request.status))

    def _act(
        self, client: socket.socket, reader: _Reader, request: _Request, rule: Rule | None
    ) -> bool:
        action = rule.action if rule else "pass"
        body = _body_blocks(reader, request.headers, until_close=False)
        if rule is not None and action == "error":
            for _ in body:  # read it all, so the client reads our answer and not a reset
                pass
            self._record(Event(rule.name, request.method, request.target, rule.status))
            request.status = rule.status
            self._record_watchers(request)
            client.sendall(self._error_answer(request, rule))
            return True
        if rule is not None and action == "delay":
            self._wait(rule)
        if rule is not None and action == "stall" and rule.after_bytes < 0:
            self._wait(rule)

        if rule is not None and action == "reset" and rule.after_bytes == 0:
            # Cut before anything reaches the target: a request without a body would be whole.
            self._record(Event(rule.name, request.method, request.target))
            _reset(client)
            return False
        try:
            upstream = socket.create_connection(self.target_address, timeout=IO_TIMEOUT)
        except OSError:
            # The target is down: the client sees its connection dropped, as with no proxy.
            with self._lock:
                self.counts["unreachable"] += 1
            _reset(client)
            return False
        with self._lock:
            self._sockets.add(upstream)
        try:
            upstream.sendall(self._upstream_head(request))
            cut_at = None
            if rule is not None and action in ("reset", "stall") and rule.after_bytes >= 0:
                cut_at = rule.after_bytes
            corrupting = rule if rule is not None and action == "corrupt" else None
            sent = 0
            for block in body:
                if corrupting and sent <= corrupting.after_bytes < sent + len(block):
                    block = _flipped(block, corrupting.after_bytes - sent)
                    self._record(Event(corrupting.name, request.method, request.target))
                    corrupting = None
                if cut_at is not None and sent + len(block) >= cut_at:
                    first, block = block[: cut_at - sent], block[cut_at - sent :]
                    upstream.sendall(first)
                    sent += len(first)
                    if self._cut(client, upstream, request, rule):
                        return False
                    cut_at = None
                upstream.sendall(block)
                sent += len(block)
            if cut_at is not None and self._cut(client, upstream, request, rule):
                return False  # a body shorter than after_bytes (or none) is cut at its end
            return self._relay_answer(client, upstream, request, rule)
        finally:
            with self._lock:
                self._sockets.discard(upstream)
            upstream.close()

    def _cut(
        self, client: socket.socket, upstream: socket.socket, request: _Request, rule: Rule | None
    ) -> bool:
        """At the rule's byte: reset both sides (True), or stall and go on (False)."""
        assert rule is not None
        self._record(Event(rule.name, request.method, request.target))
        if rule.action == "reset":
            _reset(client)
            _reset(upstream)
            return True
        self._wait(rule)
        return False

    def _upstream_head(self, request: _Request) -> bytes:
        # One request per upstream connection: the target closes after answering, so an answer
        # without a length still ends.
        lines = [f"{request.method} {request.target} {request.version}"]
        lines += [f"{k}: {v}" for k, v in request.headers if k.lower() not in ("connection",)]
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _relay_answer(
        self, client: socket.socket, upstream: socket.socket, request: _Request, rule: Rule | None
    ) -> bool:
        reader = _Reader(upstream)
        while True:
            head = reader.head()
            if head is None:
                raise _Closed("the target closed without answering")
            status_line, headers = _parse_head(head)
            status = int(status_line.split(" ", 2)[1])
            if 100 <= status < 200 and status != 101:
                client.sendall(head)  # e.g. 100 Continue: the final answer follows
                continue
            break
        request.status = status
        keep_alive = (request.header("connection") or "").lower() != "close"
        no_body = request.method == "HEAD" or status in (204, 304)
        has_length = any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers)
        blocks = iter(()) if no_body else _body_blocks(reader, headers, until_close=True)
        if not no_body and not has_length:
            keep_alive = False  # the body ends when the connection does
        out_head = self._client_head(status_line, headers, keep_alive)
        action = rule.action if rule else "pass"
        if rule is not None and action in ("drop_response", "hold_response"):
            answer = b"".join(blocks)
            if action == "drop_response":
                self._record(
                    Event(rule.name, request.method, request.target, status, answer[:BLOCK])
                )
                _reset(client)
                return False
            self._record(Event(rule.name, request.method, request.target, status))
            self._wait(rule)
            self._record_watchers(request)
            client.sendall(out_head + answer)
            return keep_alive
        held_before = action == "stall" and rule is not None and rule.after_bytes < 0
        if rule is not None and (action == "delay" or held_before):
            self._record(Event(rule.name, request.method, request.target, status))
        if no_body:
            self._record_watchers(request)
        client.sendall(out_head)
        previous = None
        for block in blocks:
            if previous is not None:
                client.sendall(previous)
            previous = block
        self._record_watchers(request)
        if previous is not None:
            client.sendall(previous)
        return keep_alive

    @staticmethod
    def _client_head(status_line: str, headers: list[tuple[str, str]], keep_alive: bool) -> bytes:
        lines = [status_line]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in ("connection", "keep-alive")]
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @staticmethod
    def _error_answer(request: _Request, rule: Rule) -> bytes:
        code, message = S3_ERRORS.get(rule.status, ("InternalError", "Injected failure."))
        code = rule.code or code
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{urlsplit(request.target).path}</Resource>"
            "<RequestId>faultproxy</RequestId></Error>"
        ).encode()
        headers = [
            f"HTTP/1.1 {rule.status} {REASONS.get(rule.status, 'Error')}",
            "Content-Type: application/xml",
            f"Content-Length: {len(body)}",
            "Connection: keep-alive",
        ]
        origin = request.header("origin")
        if origin:
            # S3 sends CORS headers on errors too; without them a browser sees only "failed".
            headers += [f"Access-Control-Allow-Origin: {origin}", "Vary: Origin"]
        return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + body
