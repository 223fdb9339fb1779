"""partwise_client without a server: fingerprint, HTTP retries, and the part loop over fakes."""

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import responses

from partwise_client import api as api_module
from partwise_client.api import AuthError, Backoff, NotFound, PartwiseApi, PartwiseError
from partwise_client.fingerprint import MiB, fingerprint, fingerprint_of
from partwise_client.transfer import FileMismatch, NothingToResume, PartRefused, Uploader
from tests.support.checksums import sha256_b64
from tests.support.http import serving

SERVER = "http://partwise.test"
NO_WAIT = Backoff(attempts=3, base=0, cap=0)


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
    api = PartwiseApi(SERVER, "t", backoff=Backoff(attempts=4, base=0.1), sleep=slept.append)
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
class FakeResponse:
    def __init__(self, status=200, text="", etag=""):
        self.status_code, self.text = status, text
        self.ok = status < 400
        self.headers = {"ETag": etag}


class FakeServer(PartwiseApi):
    """The REST API's behaviour in memory, and S3's answers to part PUTs."""

    def __init__(self, part_size=MiB):
        super().__init__(SERVER, "t", session=self, backoff=NO_WAIT)
        self.part_size = part_size
        self.uploads = {}
        self.put_answers = []  # statuses to answer before succeeding
        self.puts, self.signed, self.completed = [], [], []
        self.sign_calls, self.report_calls = [], []  # numbers per call
        self.events = []  # ("report", numbers) and ("complete", id), in order
        self.url_lifetime = 900.0  # seconds, like UPLOADS_URL_EXPIRY
        self.put_delay = 0.0
        self.expired_puts = 0
        self.lock = threading.Lock()

    def add(self, upload_id, size, parts=None, fingerprint=""):
        count = max(1, -(-size // self.part_size))
        self.uploads[upload_id] = {
            "id": upload_id, "filename": "f.bin", "size": size, "part_size": self.part_size,
            "part_count": count, "checksum_algorithm": "SHA256", "status": "uploading",
            "fingerprint": fingerprint, "parts": parts or [],
        }  # fmt: skip
        return self.uploads[upload_id]

    def list_uploads(self, *, status="", fingerprint=""):
        return [u for u in self.uploads.values() if u["fingerprint"] == fingerprint]

    def get_upload(self, upload_id):
        return self.uploads[upload_id]

    def create_upload(self, **fields):
        return self.add(f"new-{len(self.uploads)}", fields["size"], fingerprint="x")

    def sign_parts(self, upload_id, parts):
        parts = list(parts)
        expires = time.time() + self.url_lifetime
        with self.lock:
            self.signed.extend(part["number"] for part in parts)
            self.sign_calls.append([part["number"] for part in parts])
        return [
            {"number": p["number"], "method": "PUT",
             "url": f"s3://{upload_id}/{p['number']}?expires={expires}",
             "headers": {"x-amz-checksum-sha256": p["checksum"]},
             "expires_at": datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")}
            for p in parts
        ]  # fmt: skip

    def report_parts(self, upload_id, parts, *, best_effort=False):
        parts = list(parts)
        with self.lock:
            self.uploads[upload_id]["parts"].extend({**p, "size": 0} for p in parts)
            self.report_calls.append(([p["number"] for p in parts], best_effort))
            self.events.append(("report", [p["number"] for p in parts]))

    def complete_upload(self, upload_id):
        self.completed.append(upload_id)
        self.events.append(("complete", upload_id))
        return {**self.uploads[upload_id], "status": "completed"}

    def request(self, method, url, data=None, headers=None, timeout=None):  # S3 PUT
        # Read in blocks, as urllib3 does, so the fake holds no whole part either.
        digest, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324
        for block in iter(lambda: data.read(64 * 1024), b"") if data else ():
            digest.update(block)
            md5.update(block)
        time.sleep(self.put_delay)
        number, expires = url.rsplit("/", 1)[1].split("?expires=")
        with self.lock:
            status = self.put_answers.pop(0) if self.put_answers else 200
            if status == 200 and time.time() > float(expires):
                self.expired_puts += 1
                status = 403
        if status != 200:
            return FakeResponse(status, "Request has expired" if status == 403 else "no")
        assert headers["x-amz-checksum-sha256"] == base64.b64encode(digest.digest()).decode()
        with self.lock:
            self.puts.append(int(number))
        return FakeResponse(etag=f'"{md5.hexdigest()}"')


@pytest.fixture
def big_file(tmp_path):
    return write(tmp_path / "f.bin", os.urandom(5 * MiB + 100))


def test_an_upload_sends_every_part_with_its_checksum_and_completes(big_file):
    server, seen = FakeServer(), []
    uploader = Uploader(server, concurrency=3, progress=lambda done, total: seen.append(done))
    transfer = uploader.upload(big_file, resume="never")
    assert sorted(server.puts) == [1, 2, 3, 4, 5, 6]
    assert sorted(part["number"] for part in server.uploads["new-0"]["parts"]) == [1, 2, 3, 4, 5, 6]
    assert all(part["etag"] for part in server.uploads["new-0"]["parts"])
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
    transfer = Uploader(server, on_event=events.append, proof_parts=3).upload(
        big_file, resume="required"
    )
    assert sorted(server.puts) == [3, 5, 6]
    assert (transfer.resumed, transfer.parts_skipped, server.completed) == (True, 3, ["u1"])
    assert events == ["Resuming upload u1: 3 of 6 parts already uploaded, sending 3."]


def test_resume_refuses_a_file_whose_uploaded_part_differs(big_file):
    server = server_with_another_file(big_file)
    with pytest.raises(FileMismatch):
        Uploader(server).upload(big_file, resume="required")
    assert (server.puts, server.signed) == ([], [])


def test_an_automatic_upload_starts_afresh_instead_of_resuming_a_different_file(big_file):
    server = server_with_another_file(big_file)
    transfer = Uploader(server).upload(big_file, resume="auto")
    assert transfer.upload["id"] == "new-1"
    assert len(server.uploads["u1"]["parts"]) == 1


def test_resume_with_nothing_to_resume_says_so(big_file):
    with pytest.raises(NothingToResume):
        Uploader(FakeServer()).upload(big_file, resume="required")


@pytest.mark.parametrize("status", [500, 503, 429, 403], ids=["500", "503", "429", "expired"])
def test_a_part_is_retried_and_signed_again_after_a_transient_failure(big_file, status):
    server, seen = FakeServer(), []
    server.put_answers = [status]
    Uploader(server, concurrency=1, progress=lambda d, t: seen.append(d)).upload(
        big_file, resume="never"
    )
    assert sorted(server.puts) == [1, 2, 3, 4, 5, 6]
    assert server.signed.count(1) == 2  # a fresh URL for the retry
    assert max(seen) == seen[-1] == big_file.stat().st_size  # the failed attempt is taken back


def test_a_part_refused_for_good_is_not_retried(big_file):
    server = FakeServer()
    server.put_answers = [400]
    with pytest.raises(PartRefused):
        Uploader(server, concurrency=1).upload(big_file, resume="never")
    assert server.signed.count(1) == 1
    assert server.completed == []


def test_stopping_interrupts_without_completing(big_file, monkeypatch):
    server = FakeServer()
    server.stop.set()  # what Ctrl+C in the main thread does to the workers
    with pytest.raises(KeyboardInterrupt):
        Uploader(server).upload(big_file, resume="never")
    assert (server.puts, server.completed) == ([], [])


def test_the_default_retries_ride_out_an_outage_of_about_a_minute():
    backoff = Backoff()
    longest = [min(backoff.cap, backoff.base * 2**n) for n in range(backoff.attempts - 1)]
    # Full jitter waits half the longest on average: a SeaweedFS or server restart (10-20 s)
    # is well inside it, and no single wait exceeds 30 s.
    assert sum(longest) / 2 >= 55
    assert max(longest) == 30


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


def test_a_128_part_upload_signs_in_two_or_three_calls_by_default(parts_128):
    server = FakeServer(part_size=SMALL_PART)
    Uploader(server, concurrency=4).upload(parts_128, resume="never")
    # What the hasher has done by the end of the first call's short wait (at most 100 parts),
    # then the rest.
    sizes = [len(call) for call in server.sign_calls]
    assert 2 <= len(sizes) <= 3, sizes
    assert max(sizes) <= 100, sizes
    assert sorted(server.signed) == list(range(1, 129))


def test_a_128_part_upload_signs_and_reports_in_a_few_batched_calls(parts_128):
    server = FakeServer(part_size=SMALL_PART)
    uploader = Uploader(server, concurrency=4, sign_batch=64)
    uploader.upload(parts_128, resume="never")
    numbers = list(range(1, 129))
    # 64 parts a call; a third call only if the hasher fell behind the first one's short wait.
    assert 2 <= len(server.sign_calls) <= 3
    assert all(len(call) <= 64 for call in server.sign_calls)
    assert sorted(server.signed) == numbers  # each part signed exactly once
    # The first part at once, then 32 finished parts a call (fewer when 2 seconds pass first).
    assert len(server.report_calls) <= 1 + 128 // 32 + 1
    assert sorted(n for call, _ in server.report_calls for n in call) == numbers
    assert (uploader.sign_calls, uploader.report_calls) == (
        len(server.sign_calls),
        len(server.report_calls),
    )


def test_every_part_is_reported_before_the_upload_is_completed(parts_128):
    server = FakeServer(part_size=SMALL_PART)
    # A batch larger than the upload and a long interval: after the first part at once, only
    # the final flush reports.
    Uploader(server, report_batch=1000, report_interval=3600).upload(parts_128, resume="never")
    assert server.events[-1] == ("complete", "new-0")
    reported = [n for kind, numbers in server.events[:-1] if kind == "report" for n in numbers]
    assert sorted(reported) == list(range(1, 129))
    assert [best_effort for _, best_effort in server.report_calls] == [False, False]


def test_finished_parts_are_reported_when_the_interval_ends_before_the_batch_fills(big_file):
    server = FakeServer()
    server.put_delay = 0.1
    Uploader(server, concurrency=1, report_batch=1000, report_interval=0.15).upload(
        big_file, resume="never"
    )
    assert len(server.report_calls) >= 3  # reported along the way, not only at the end
    assert max(len(call) for call, _ in server.report_calls) < 5
    assert sorted(n for call, _ in server.report_calls for n in call) == [1, 2, 3, 4, 5, 6]


def test_parts_sent_before_a_failure_are_still_reported_on_the_way_out(big_file):
    server = FakeServer()
    server.put_answers = [200, 200, 200, 400]  # part 4 is refused for good
    with pytest.raises(PartRefused):
        Uploader(server, concurrency=1, report_batch=1000, report_interval=3600).upload(
            big_file, resume="never"
        )
    # The first part may have gone at once; the rest go in a last best-effort call.
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
        Uploader(server, concurrency=4).upload(path, resume="never")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sorted(server.puts) == list(range(1, 129))
    assert peak - baseline[0] < 4 * part_size


def test_a_url_close_to_its_expiry_is_signed_again_before_it_is_used(big_file):
    server = FakeServer()
    server.url_lifetime, server.put_delay = 0.4, 0.1  # a batch outlives its URLs
    Uploader(server, concurrency=1).upload(big_file, resume="never")
    assert server.expired_puts == 0  # never sent on a stale URL
    assert len(server.sign_calls) >= 2
    assert sorted(server.puts) == [1, 2, 3, 4, 5, 6]


def test_an_expired_url_from_a_skewed_clock_is_used_then_signed_again_on_403(big_file):
    server = FakeServer()
    server.url_lifetime = -5  # expires_at already past by our clock: let S3 decide
    server.put_answers = [403]
    with pytest.raises(PartRefused):  # every URL is expired: refused after the retries
        Uploader(server, concurrency=1).upload(big_file, resume="never")
    assert server.signed.count(1) == NO_WAIT.attempts
