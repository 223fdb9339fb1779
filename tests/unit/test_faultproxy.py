"""The fault proxy's own behaviour, against a small HTTP server in a thread (no Django, no S3)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.faultproxy import MAX_WAIT, FaultProxy, Rule
from tests.support.http import serving

pytestmark = pytest.mark.timeout(60)

BODY = b"x" * 300_000


class Target(ThreadingHTTPServer):
    """Answers every request with what it received; remembers the requests it read whole."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: list[tuple[str, str, int, str]] = []  # method, path, length, host
        self.broken = 0  # requests whose body never arrived whole
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Target

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = self.rfile.read(length) if length else b""
        except OSError:
            body = b""
        if len(body) != length:
            with self.server.lock:
                self.server.broken += 1
            self.close_connection = True
            return
        with self.server.lock:
            self.server.received.append(
                (self.command, self.path, len(body), self.headers.get("Host", ""))
            )
        answer = hashlib.sha256(body).hexdigest().encode()
        self.send_response(200)
        self.send_header("ETag", '"etag"')
        if self.path.startswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (answer[:10], answer[10:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.startswith("/until-close"):
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    do_GET = do_PUT = do_POST = _answer


@pytest.fixture
def target() -> Iterator[Target]:
    with serving(Target()) as server:
        yield server


@pytest.fixture
def proxy(target) -> Iterator[FaultProxy]:
    with FaultProxy(target.url, seed=1) as proxy:
        yield proxy


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- forwarding ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/plain", "/chunked", "/until-close"], ids=["length", "chunked", "until-close"]
)
def test_requests_and_answers_pass_unchanged_with_the_host_header_kept(target, proxy, path):
    with requests.Session() as session:
        for _ in range(3):  # one connection, several requests
            answer = session.put(f"{proxy.url}{path}?a=1", data=BODY, timeout=10)
            assert (answer.status_code, answer.text) == (200, sha(BODY))
            assert answer.headers["ETag"] == '"etag"'
    assert target.received == [("PUT", f"{path}?a=1", len(BODY), f"127.0.0.1:{proxy.port}")] * 3
    assert proxy.counts["requests"] == 3


def test_only_loopback_targets_and_known_actions_are_accepted():
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("http://10.0.0.1:80")
    with pytest.raises(ValueError, match="unknown action"):
        Rule("explode")
    with pytest.raises(ValueError, match="fraction"):
        Rule("reset", fraction=1.5)


# --- faults ---------------------------------------------------------------------------------------
def test_a_reset_cuts_the_body_after_the_given_bytes_and_the_target_never_gets_it_whole(
    target, proxy
):
    proxy.add("reset", method="PUT", after_bytes=100_000)
    with pytest.raises(requests.ConnectionError):
        requests.put(f"{proxy.url}/part", data=BODY, timeout=10)
    assert target.received == []
    assert proxy.counts["reset"] == 1
    # The next request passes: the rule applies to every match, so limit it.
    proxy.clear()
    assert requests.put(f"{proxy.url}/part", data=BODY, timeout=10).text == sha(BODY)


def test_a_reset_at_byte_zero_reaches_nothing_even_without_a_body(target, proxy):
    proxy.add("reset", method="POST", after_bytes=0)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{proxy.url}/complete/", timeout=10)
    time.sleep(0.2)
    assert (target.received, target.broken) == ([], 0)


def test_an_error_answers_s3s_xml_with_cors_and_keeps_the_connection_usable(target, proxy):
    proxy.add("error", method="PUT", status=503, times=1)
    with requests.Session() as session:
        refused = session.put(
            f"{proxy.url}/b/k?partNumber=1", data=BODY, headers={"Origin": "http://o"}, timeout=10
        )
        assert refused.status_code == 503
        assert "<Code>SlowDown</Code>" in refused.text
        assert refused.headers["Access-Control-Allow-Origin"] == "http://o"
        again = session.put(f"{proxy.url}/b/k?partNumber=1", data=BODY, timeout=10)
    assert again.status_code == 200
    assert len(target.received) == 1, "the refused request never reached the target"
    assert [(e.rule, e.status) for e in proxy.events] == [("error", 503)]


def test_an_error_can_name_its_own_s3_code(proxy):
    proxy.add("error", status=500, code="InternalError")
    assert "<Code>InternalError</Code>" in requests.get(f"{proxy.url}/x", timeout=10).text


def test_a_dropped_answer_was_processed_by_the_target_and_is_kept_for_the_test(target, proxy):
    proxy.add("drop_response", method="POST", path=r"/complete/$", times=1)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{proxy.url}/u/1/complete/", data=b"abc", timeout=10)
    retry = requests.post(f"{proxy.url}/u/1/complete/", data=b"abc", timeout=10)
    assert retry.text == sha(b"abc")
    assert [r[:2] for r in target.received] == [("POST", "/u/1/complete/")] * 2
    (dropped,) = proxy.events
    assert (dropped.status, dropped.body) == (200, sha(b"abc").encode())


@pytest.mark.parametrize("at", [0, 70_000, len(BODY) - 1], ids=["first", "middle", "last"])
def test_a_corrupted_body_arrives_whole_with_one_byte_flipped(target, proxy, at):
    proxy.add("corrupt", method="PUT", after_bytes=at, times=1)
    damaged = BODY[:at] + bytes([BODY[at] ^ 0xFF]) + BODY[at + 1 :]

    answer = requests.put(f"{proxy.url}/part", data=BODY, timeout=10)

    assert answer.text == sha(damaged)  # what the target hashed: the same length, other bytes
    assert target.received[0][2] == len(BODY)
    assert proxy.counts["corrupt"] == 1
    assert requests.put(f"{proxy.url}/part", data=BODY, timeout=10).text == sha(BODY)


def test_a_stall_before_forwarding_delays_the_request_until_released(target, proxy):
    rule = proxy.add("stall", after_bytes=-1, seconds=0.5)
    started = time.monotonic()
    assert requests.get(f"{proxy.url}/x", timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.5
    rule.seconds = None  # until released
    threading.Timer(0.3, rule.release.set).start()
    started = time.monotonic()
    assert requests.get(f"{proxy.url}/x", timeout=10).status_code == 200
    assert 0.3 <= time.monotonic() - started < MAX_WAIT
    assert [e.status for e in proxy.events] == [200, 200]


def test_a_stall_in_the_middle_of_the_body_lets_the_body_arrive_whole(target, proxy):
    proxy.add("stall", method="PUT", after_bytes=1000, seconds=0.3)
    started = time.monotonic()
    assert requests.put(f"{proxy.url}/p", data=BODY, timeout=10).text == sha(BODY)
    assert time.monotonic() - started >= 0.3


def test_a_held_answer_is_delivered_once_released(proxy):
    rule = proxy.add("hold_response")
    released: list[float] = []

    def release() -> None:
        released.append(time.monotonic())
        rule.release.set()

    threading.Timer(0.3, release).start()
    assert requests.put(f"{proxy.url}/p", data=b"a", timeout=10).text == sha(b"a")
    answered = time.monotonic()
    # The answer came after the release (an order of events, not a duration).
    assert released
    assert answered >= released[0]


def test_a_delay_waits_then_forwards(proxy):
    proxy.add("delay", seconds=0.2)
    started = time.monotonic()
    assert requests.get(f"{proxy.url}/x", timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_a_count_rule_watches_and_lets_the_next_rule_act(proxy):
    proxy.add("count", method="GET", name="seen")
    proxy.add("error", method="GET", status=500, times=1)
    assert requests.get(f"{proxy.url}/x", timeout=10).status_code == 500
    assert requests.get(f"{proxy.url}/x", timeout=10).status_code == 200
    assert [(e.rule, e.status) for e in proxy.events if e.rule == "seen"] == [
        ("seen", 500),
        ("seen", 200),
    ]
    assert proxy.counts["seen"] == 2


def test_times_limits_how_often_a_rule_acts(proxy):
    proxy.add("error", status=500, times=2)
    statuses = [requests.get(f"{proxy.url}/x", timeout=10).status_code for _ in range(4)]
    assert statuses == [500, 500, 200, 200]


def test_a_rule_as_context_manager_ends_with_the_block(proxy):
    with proxy.rule("error", status=503):
        assert requests.get(f"{proxy.url}/x", timeout=10).status_code == 503
    assert requests.get(f"{proxy.url}/x", timeout=10).status_code == 200


# --- determinism ------------------------------------------------------------------------------
def fates(target_url: str, seed: int, ids: list[str]) -> list[int]:
    """Which of 20 requests (5 attempts of 4 parts, ids in the path) a 50% rule takes."""
    with FaultProxy(target_url, seed=seed) as proxy:
        proxy.add("error", status=503, fraction=0.5)
        return [
            requests.get(
                f"{proxy.url}/bucket-{ids[0]}/{ids[1]}?partNumber={n}&X-Amz-Date={time.time()}",
                timeout=10,
            ).status_code
            for _attempt in range(5)
            for n in range(1, 5)
        ]


def test_a_seed_decides_the_same_fates_whatever_the_ids_and_signatures(target):
    first = fates(target.url, 5, ["3f9a1c2b4d5e", "0b5e6a9e-3c1d-4a7b-9e2f-1a2b3c4d5e6f"])
    again = fates(target.url, 5, ["9c8b7a6d5e4f", "7d1e2f3a-4b5c-4d6e-8f9a-0b1c2d3e4f5a"])
    other = fates(target.url, 6, ["3f9a1c2b4d5e", "0b5e6a9e-3c1d-4a7b-9e2f-1a2b3c4d5e6f"])
    assert first == again
    assert first != other
    assert 4 <= first.count(503) <= 16  # about half


# --- bounds and stopping ----------------------------------------------------------------------
def test_an_unreachable_target_drops_the_connection_and_is_counted():
    with FaultProxy("http://127.0.0.1:9") as proxy:  # the discard port: nothing listens
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{proxy.url}/x", timeout=10)
        assert proxy.counts["unreachable"] == 1


def test_stop_closes_held_connections_and_ends_every_thread(target):
    proxy = FaultProxy(target.url).start()
    proxy.add("stall", after_bytes=-1)  # held until released, at most MAX_WAIT
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.get(f"{proxy.url}/x", timeout=30)
        except requests.RequestException as error:
            errors.append(error)

    callers = [threading.Thread(target=call) for _ in range(3)]
    for caller in callers:
        caller.start()
    time.sleep(0.3)
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 5
    for caller in callers:
        caller.join(10)
    assert [t.name for t in threading.enumerate() if t.name.startswith("faultproxy-")] == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{proxy.url}/x", timeout=2)


def test_events_keep_only_the_latest_thousand(proxy):
    proxy.add("count", method="GET", name="seen")

    def send(first: int) -> None:
        with requests.Session() as session:  # one kept-alive connection per sender
            for n in range(first, 1005, 15):
                assert session.get(f"{proxy.url}/x?n={n}", timeout=10).status_code == 200

    senders = [threading.Thread(target=send, args=(first,)) for first in range(15)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)

    assert proxy.counts["seen"] == 1005
    assert len(proxy.events) == 1000
    assert len({event.target for event in proxy.events}) == 1000
