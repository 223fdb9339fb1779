"""partwise_client without a server: fingerprint, HTTP retries, and the part loop over fakes."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import responses

from partwise_client import api as api_module
from partwise_client.api import AuthError, Backoff, NotFound, PartwiseApi, PartwiseError
from partwise_client.fingerprint import MiB, fingerprint, fingerprint_of
from partwise_client.reports import Reports
from partwise_client.transfer import FileMismatch, NothingToResume, PartRefused, Uploader
from tests.support.checksums import sha256_b64
from tests.support.fake_partwise import NO_WAIT, SERVER, FakePartwise
from tests.support.http import serving


# --- fingerprint -----------------------------------------------------------------------------
def write(path, data, mtime_ns=1_700_000_000_123_456_789):
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_the_fingerprint_follows_its_documented_formula(tmp_path):
    data = os.urandom(3 * MiB)
    path = write(tmp_path / "a.bin", data)
    head, tail = sha256_b64(data[:MiB]), sha256_b64(data[-MiB:])
    text = f'["partwise-v1",{len(data)},"a.bin",1700000000123,"{head}","{tail}"]'
    assert fingerprint(path) == "v1:" + hashlib.sha256(text.encode()).hexdigest()
    assert fingerprint(path) == fingerprint_of(
        "a.bin", len(data), 1700000000123, data[:MiB], data[-MiB:]
    )


NODE = shutil.which("node")
CLIENT_JS = Path(__file__).resolve().parents[2] / "frontend" / "client.js"


@pytest.mark.skipif(NODE is None or not CLIENT_JS.exists(), reason="needs node and client.js")
@pytest.mark.parametrize(
    ("name", "size"),
    [("clip.bin", 3 * MiB + 7), ("été « 1 ».txt", 100), ("empty", 0)],
    ids=["large", "non-ascii-name", "empty"],
)
def test_the_cli_and_the_browser_client_compute_the_same_fingerprint(tmp_path, name, size):
    path = write(tmp_path / name, os.urandom(size))
    script = (
        f"import {{ fileFingerprint }} from {json.dumps(CLIENT_JS.as_uri())};\n"
        "import { readFileSync } from 'node:fs';\n"
        "const [path, name, modified] = process.argv.slice(1);\n"
        "const file = new File([readFileSync(path)], name, { lastModified: Number(modified) });\n"
        "console.log(await fileFingerprint(file));\n"
    )
    browser = subprocess.run(
        [NODE, "--input-type=module", "-e", script, str(path), name, "1700000000123"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert browser == fingerprint(path)


@pytest.mark.parametrize("size", [0, 10, MiB, 2 * MiB + 1], ids=["empty", "tiny", "1mib", "big"])
def test_the_same_file_elsewhere_has_the_same_fingerprint(tmp_path, size):
    data = os.urandom(size)
    (tmp_path / "x").mkdir()
    assert fingerprint(write(tmp_path / "f.bin", data)) == fingerprint(
        write(tmp_path / "x" / "f.bin", data)
    )


@pytest.mark.parametrize(
    "change",
    ["name", "mtime", "first-byte", "last-byte"],
    ids=["name", "mtime", "first-mib", "last-mib"],
)
def test_the_fingerprint_changes_with_name_date_and_edges(tmp_path, change):
    data = bytearray(os.urandom(3 * MiB))
    base = fingerprint(write(tmp_path / "f.bin", bytes(data)))
    name, mtime = "f.bin", 1_700_000_000_123_456_789
    if change == "name":
        name = "g.bin"
    elif change == "mtime":
        mtime += 1_000_000
    else:
        data[0 if change == "first-byte" else -1] ^= 0xFF
    (tmp_path / "other").mkdir()
    assert fingerprint(write(tmp_path / "other" / name, bytes(data), mtime)) != base


# --- HTTP ------------------------------------------------------------------------------------
@responses.activate
def test_api_calls_retry_5xx_and_429_then_succeed():
    url = f"{SERVER}/api/uploads/u/"
    responses.get(url, status=503)
    responses.get(url, status=429, headers={"Retry-After": "3"})
    responses.get(url, json={"id": "u"})
    slept = []
    api = PartwiseApi(SERVER, "t", backoff=Backoff(delays=(0.1, 0.2, 0.4)), sleep=slept.append)
    assert api.get_upload("u") == {"id": "u"}
    assert len(slept) == 2
    assert slept[1] == 3  # Retry-After wins over the backoff
    assert responses.calls[0].request.headers["Authorization"] == "Token t"


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, PartwiseError), (401, AuthError), (403, AuthError), (404, NotFound)],
    ids=["400", "401", "403", "404"],
)
@responses.activate
def test_api_errors_are_not_retried_and_carry_the_servers_code(status, error):
    responses.post(
        f"{SERVER}/api/uploads/",
        status=status,
        json={"code": "the_code", "detail": "what went wrong", "status": "completed"},
    )
    api = PartwiseApi(SERVER, "t", backoff=NO_WAIT, sleep=lambda s: None)
    with pytest.raises(error) as raised:
        api.create_upload(filename="a")
    assert (raised.value.code, raised.value.detail, raised.value.http_status) == (
        "the_code",
        "what went wrong",
        status,
    )
    assert raised.value.extra == {"status": "completed"}
    assert len(responses.calls) == 1


@responses.activate
def test_an_unreachable_server_is_retried_then_reported():
    responses.get(f"{SERVER}/api/uploads/", body=requests.ConnectionError("refused"))
    api = PartwiseApi(SERVER, "t", backoff=NO_WAIT, sleep=lambda s: None)
    with pytest.raises(PartwiseError) as raised:
        api.list_uploads()
    assert raised.value.code == "unreachable"
    assert len(responses.calls) == NO_WAIT.attempts


@responses.activate
def test_listing_follows_every_page():
    responses.get(
        f"{SERVER}/api/uploads/",
        json={"results": [{"id": 1}], "next": "http://elsewhere/api/uploads/?cursor=abc"},
        match=[responses.matchers.query_param_matcher({"fingerprint": "fp"})],
    )
    responses.get(f"{SERVER}/api/uploads/?cursor=abc", json={"results": [{"id": 2}], "next": None})
    assert PartwiseApi(SERVER, "t").list_uploads(fingerprint="fp") == [{"id": 1}, {"id": 2}]


# --- the part loop over a fake server and a fake S3 ------------------------------------------
FakeServer = FakePartwise  # the REST API in memory (tests/support/fake_partwise.py)


def uploader(server: FakePartwise, **options) -> Uploader:
    """An Uploader asking for the fake's part size (below S3's 5 MiB, which the fake allows),
    so that the parts it hashes before the create call are the server's parts."""
    options.setdefault("part_size", server.part_size)
    return Uploader(server, **options)


@pytest.fixture
def big_file(tmp_path):
    return write(tmp_path / "f.bin", os.urandom(5 * MiB + 100))


def test_an_upload_sends_every_part_with_its_checksum_and_completes(big_file):
    server, seen = FakeServer(), []
    client = uploader(server, concurrency=3, progress=lambda done, total: seen.append(done))
    transfer = client.upload(big_file, resume="never")
    assert sorted(server.puts) == [1, 2, 3, 4, 5, 6]
    assert sorted(server.uploads["new-0"]["recorded"]) == [1, 2, 3, 4, 5, 6]
    assert all(part["etag"] for part in server.uploads["new-0"]["stored"].values())
    assert (transfer.upload["status"], transfer.resumed) == ("completed", False)
    assert seen[-1] == big_file.stat().st_size
    assert max(seen) == big_file.stat().st_size


def uploaded_parts(path, numbers, part_size=MiB, corrupt=False):
    data = path.read_bytes()
    parts = []
    for n in numbers:
        chunk = data[(n - 1) * part_size : n * part_size]
        digest = sha256_b64(chunk[::-1] if corrupt else chunk)
        parts.append({"number": n, "etag": "e", "checksum": digest, "size": len(chunk)})
    return parts


def server_with_another_file(path) -> "FakeServer":
    """A server holding an unfinished upload "u1" of path's fingerprint whose part 2 differs."""
    server = FakeServer()
    server.add(
        "u1", path.stat().st_size, uploaded_parts(path, [2], corrupt=True), fingerprint(path)
    )
    return server


def test_resume_sends_only_the_parts_the_server_lacks(big_file):
    server, events = FakeServer(), []
    server.add(
        "u1", big_file.stat().st_size, uploaded_parts(big_file, [1, 2, 4]), fingerprint(big_file)
    )
    transfer = uploader(server, on_event=events.append, proof_parts=3).upload(
        big_file, resume="required"
    )
    assert sorted(server.puts) == [3, 5, 6]
    assert (transfer.resumed, transfer.parts_skipped, server.completed) == (True, 3, ["u1"])
    assert events == ["Resuming upload u1 of f.bin: 3 of 6 parts already uploaded, sending 3."]


def test_resume_refuses_a_file_whose_uploaded_part_differs(big_file):
    server = server_with_another_file(big_file)
    with pytest.raises(FileMismatch):
        uploader(server).upload(big_file, resume="required")
    assert (server.puts, server.signed) == ([], [])


def test_an_automatic_upload_starts_afresh_instead_of_resuming_a_different_file(big_file):
    server = server_with_another_file(big_file)
    transfer = uploader(server).upload(big_file, resume="auto")
    assert transfer.upload["id"] == "new-1"
    assert len(server.uploads["u1"]["stored"]) == 1


def test_resume_with_nothing_to_resume_says_so(big_file):
    with pytest.raises(NothingToResume):
        Uploader(FakeServer()).upload(big_file, resume="required")


@pytest.mark.parametrize(
    ("status", "signings"),
    [(500, 1), (503, 1), (429, 1), (408, 1), (403, 2)],
    ids=["500", "503", "429", "408", "expired"],
)
def test_a_part_is_retried_after_a_transient_failure_and_signed_again_when_expired(
    big_file, status, signings
):
    server, seen = FakeServer(), []
    server.put_answers = [status]
    uploader(server, concurrency=1, progress=lambda d, t: seen.append(d)).upload(
        big_file, resume="never"
    )
    assert sorted(server.puts) == [1, 2, 3, 4, 5, 6]
    assert server.signed.count(1) == signings  # a fresh URL only where the old one expired
    assert seen == sorted(seen)  # progress never moves backwards during the retry
    assert seen[-1] == big_file.stat().st_size


def test_a_part_refused_for_good_is_not_retried(big_file):
    server = FakeServer()
    server.put_answers = [400]
    with pytest.raises(PartRefused):
        uploader(server, concurrency=1).upload(big_file, resume="never")
    assert server.signed.count(1) == 1
    assert server.completed == []


def test_stopping_interrupts_without_completing(big_file, monkeypatch):
    server = FakeServer()
    server.stop.set()  # what Ctrl+C in the main thread does to the workers
    with pytest.raises(KeyboardInterrupt):
        uploader(server).upload(big_file, resume="never")
    assert (server.puts, server.completed) == ([], [])


def test_the_default_retries_ride_out_an_outage_of_about_a_minute():
    backoff = Backoff()
    # Equal jitter waits at least half of each delay: a SeaweedFS or server restart (10-20 s)
    # is well inside the shortest total wait, and no single wait exceeds 30 s.
    assert sum(backoff.delays) / 2 >= 30
    assert sum(backoff.delays) >= 60
    assert max(backoff.delays) == 30


class Peers(ThreadingHTTPServer):
    """An HTTP/1.1 server in a thread that notes each client connection (its address) and can
    hold requests until `hold` of them are in flight at once."""

    daemon_threads = True

    def __init__(self, hold: int = 1) -> None:
        super().__init__(("127.0.0.1", 0), PeerHandler)
        self.peers: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        self.together = threading.Barrier(hold)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class PeerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a connection serves request after request
    server: Peers

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.peers.add(self.client_address)
        with suppress(threading.BrokenBarrierError):  # the test sees too few peers: it fails
            self.server.together.wait(timeout=5)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = _answer


def test_threads_as_many_as_the_pool_reuse_their_connections(caplog):
    # 12 threads: more than the 10 connections requests keeps per host by default, which
    # would discard two connections after every round and open new ones.
    threads, rounds = 12, 3
    session = api_module.new_session(pool_size=threads)
    with serving(Peers(hold=threads)) as server, ThreadPoolExecutor(threads) as pool:
        for _ in range(rounds):
            statuses = list(pool.map(lambda _: session.get(server.url, timeout=10), range(threads)))
            assert [s.status_code for s in statuses] == [200] * threads

    assert len(server.peers) == threads
    assert "Connection pool is full" not in caplog.text
    assert session.get_adapter("https://s3.example/") is session.get_adapter(server.url)


def test_request_bodies_are_read_a_mebibyte_at_a_time():
    class Body(io.BytesIO):
        def __init__(self, data: bytes) -> None:
            super().__init__(data)
            self.reads: list[int] = []

        def read(self, size: int | None = -1) -> bytes:
            self.reads.append(size)
            return super().read(size)

    body = Body(os.urandom(3 * MiB))
    with serving(Peers()) as server:
        assert api_module.new_session().put(server.url, data=body, timeout=10).status_code == 200

    # urllib3 would read 16 KiB at a time: 192 calls (and sends) for these 3 MiB.
    assert body.reads
    assert set(body.reads) == {MiB}


# --- batched signing and reporting -----------------------------------------------------------
SMALL_PART = 64 * 1024


@pytest.fixture
def parts_128(tmp_path):
    return write(tmp_path / "many.bin", os.urandom(128 * SMALL_PART))


def test_a_128_part_upload_signs_in_the_create_call_and_a_sign_call_or_two(parts_128):
    server = FakeServer(part_size=SMALL_PART)
    uploader(server, concurrency=4).upload(parts_128, resume="never")
    # The create call signs what the hasher has done by the end of its short wait (at most
    # 100 parts), sign calls the rest, 100 at most each (a third only when the hasher fell
    # behind a sign call's short wait, on a loaded machine).
    sizes = [len(call) for call in server.sign_calls]
    assert 1 <= len(sizes) <= 3, sizes
    assert max(sizes) <= 100, sizes
    assert sorted(server.signed) == list(range(1, 129))
    # Besides reports: the create call, the sign calls, the complete call; no look-ups.
    calls = [operation for _, operation in server.calls if operation != "report"]
    assert calls == ["create", *["sign"] * len(sizes), "complete"]


def test_a_128_part_upload_signs_and_reports_in_a_few_batched_calls(parts_128):
    server = FakeServer(part_size=SMALL_PART)
    client = uploader(server, concurrency=4, sign_batch=64)
    client.upload(parts_128, resume="never")
    numbers = list(range(1, 129))
    # 64 parts a call (the create call's first batch too); a third sign call only if the hasher
    # fell behind the second one's short wait.
    assert 1 <= len(server.sign_calls) <= 3
    assert all(len(call) <= 64 for call in server.sign_calls)
    assert sorted(server.signed) == numbers  # each part signed exactly once
    # 64 finished parts a call (the 15 s interval never ends on this fast link): 1 per 64 parts.
    assert len(server.report_calls) == 128 // 64
    assert sorted(n for call, _ in server.report_calls for n in call) == numbers
    assert (client.sign_calls, client.report_calls) == (
        len(server.sign_calls),
        len(server.report_calls),
    )


def test_every_part_is_reported_before_the_upload_is_completed(parts_128):
    server = FakeServer(part_size=SMALL_PART)
    # A batch larger than the upload and a long interval: only the final flush reports.
    uploader(server, report_batch=1000, report_interval=3600).upload(parts_128, resume="never")
    assert server.events[-1] == ("complete", "new-0")
    reported = [n for kind, numbers in server.events[:-1] if kind == "report" for n in numbers]
    assert sorted(reported) == list(range(1, 129))
    assert [best_effort for _, best_effort in server.report_calls] == [False]


def test_finished_parts_are_reported_when_the_interval_ends_before_the_batch_fills(big_file):
    server = FakeServer()
    server.put_delay = 0.1
    uploader(server, concurrency=1, report_batch=1000, report_interval=0.15).upload(
        big_file, resume="never"
    )
    assert len(server.report_calls) >= 2  # reported along the way, not only at the end
    assert max(len(call) for call, _ in server.report_calls) < 6
    assert sorted(n for call, _ in server.report_calls for n in call) == [1, 2, 3, 4, 5, 6]


class RecordingApi:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def report_parts(self, upload_id, parts, *, best_effort, session):
        self.calls.append([part["number"] for part in parts])
        return {}


def test_due_reports_go_in_whole_batches_and_a_remainder_waits_for_the_interval(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("partwise_client.reports.time.monotonic", lambda: clock[0])
    api = RecordingApi()
    reports = Reports(api, "u", batch=64, interval=15.0)  # type: ignore[arg-type]
    for number in range(1, 131):
        reports.add({"number": number, "etag": "e"})

    reports.flush_due()
    assert [len(call) for call in api.calls] == [64, 64]  # not 64, 64 and a 2-part call

    clock[0] += 14.9
    assert not reports.due()
    clock[0] += 0.1
    assert reports.due()
    reports.flush_due()
    assert api.calls[-1] == [129, 130]


def test_parts_sent_before_a_failure_are_still_reported_on_the_way_out(big_file):
    server = FakeServer()
    server.put_answers = [200, 200, 200, 400]  # part 4 is refused for good
    with pytest.raises(PartRefused):
        uploader(server, concurrency=1, report_batch=1000, report_interval=3600).upload(
            big_file, resume="never"
        )
    # They go in a last best-effort call.
    assert sorted(n for call, _ in server.report_calls for n in call) == [1, 2, 3]
    assert server.report_calls[-1][1] is True
    assert server.completed == []


def test_a_stopped_run_still_reports_its_finished_parts(big_file):
    server = FakeServer()

    def stop_in_part_two(done, total):
        if done >= 2 * MiB:
            server.stop.set()  # what Ctrl+C does: workers stop at their next block

    with pytest.raises(KeyboardInterrupt):
        Uploader(
            server,
            concurrency=1,
            report_batch=1000,
            report_interval=3600,
            progress=stop_in_part_two,
        ).upload(big_file, resume="never")
    # Part 1 is in S3 and reported (at once, or on the way out); part 2, stopped in flight, is not.
    assert [call for call, _ in server.report_calls] == [[1]]
    assert server.completed == []


def test_hashing_ahead_and_sending_hold_less_than_concurrency_times_part_size(tmp_path):
    part_size = MiB  # the hasher's block; workers and the fake S3 read 64 KiB at a time
    path = write(tmp_path / "many.bin", os.urandom(128 * part_size))
    server = FakeServer(part_size=part_size)
    create, baseline = server.create_upload, []

    def create_then_measure(**fields):
        # The fingerprint (first and last MiB) is read before: measure the part loop only.
        baseline.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.reset_peak()
        return create(**fields)

    server.create_upload = create_then_measure
    tracemalloc.start()
    try:
        uploader(server, concurrency=4).upload(path, resume="never")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sorted(server.puts) == list(range(1, 129))
    assert peak - baseline[0] < 4 * part_size


def test_a_url_close_to_its_expiry_is_signed_again_before_it_is_used(big_file):
    server = FakeServer()
    server.url_lifetime, server.put_delay = 0.4, 0.1  # a batch outlives its URLs
    uploader(server, concurrency=1).upload(big_file, resume="never")
    assert server.expired_puts == 0  # never sent on a stale URL
    assert len(server.sign_calls) >= 1  # the create call's URLs went stale: signed again
    assert sorted(server.puts) == [1, 2, 3, 4, 5, 6]


def test_an_expired_url_from_a_skewed_clock_is_used_then_signed_again_on_403(big_file):
    server = FakeServer()
    server.url_lifetime = -5  # expires_at already past by our clock: let S3 decide
    server.put_answers = [403]
    with pytest.raises(PartRefused):  # every URL is expired: refused after the retries
        uploader(server, concurrency=1).upload(big_file, resume="never")
    assert server.signed.count(1) == NO_WAIT.attempts
