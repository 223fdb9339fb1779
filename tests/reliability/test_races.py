"""Races with real concurrency: clients in threads, a real HTTP server, PostgreSQL, SeaweedFS.

The server is pytest-django's `live_server` (Django's threaded WSGI server in this process:
every request runs in its own thread with its own PostgreSQL connection), so S3 calls can be
counted in-process by wrapping `MultipartStorage`. The wrapped CompleteMultipartUpload also
waits a moment before reaching S3, holding the race window open so the other client's call
really arrives while the first is inside S3. Only in the PostgreSQL pass: SQLite serialises
every write, so nothing would race.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.factories import PASSWORD
from tests.pg import requires_postgresql
from tests.s3server import real_s3, seaweedfs  # noqa: F401  (fixtures)
from tests.support.checksums import etag_of, sha256_b64
from uploads.models import Upload
from uploads.parts import MiB
from uploads.storage import MultipartStorage
from uploads.tokens.models import ApiToken

pytestmark = [requires_postgresql, pytest.mark.timeout(300)]
Status = Upload.Status
ROUNDS = 4  # each race is run this many times, on fresh uploads
HOLD = 0.5  # seconds the wrapped CompleteMultipartUpload waits before reaching S3


# --- clients ---------------------------------------------------------------------------------
class Client:
    """One API client (a device or a browser tab): its own HTTP session and token."""

    def __init__(self, server: str, token: str) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.session.request(method, self.server + path, json=body, timeout=60)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = self.call(method, path, body)
        assert response.status_code in (200, 201), (path, response.status_code, response.text)
        return response.json()

    def create(self, size: int, **fields: Any) -> dict[str, Any]:
        return self.ok(
            "POST",
            "/api/uploads/",
            {"filename": "race.bin", "size": size, "part_size": 5 * MiB, **fields},
        )

    def put(self, upload: dict[str, Any], number: int, data: bytes, checksum: str = "") -> str:
        """Sign one part, PUT it to S3 as a browser does; the ETag S3 answered."""
        part = {"number": number, **({"checksum": checksum} if checksum else {})}
        (signed,) = self.ok("POST", f"/api/uploads/{upload['id']}/sign/", {"parts": [part]})[
            "parts"
        ]
        response = requests.put(signed["url"], data=data, headers=signed["headers"], timeout=60)
        assert response.status_code == 200, response.text
        return response.headers["ETag"]

    def report(self, upload: dict[str, Any], number: int, etag: str, checksum: str = "") -> Any:
        part = {"number": number, "etag": etag, **({"checksum": checksum} if checksum else {})}
        return self.call("POST", f"/api/uploads/{upload['id']}/parts/", {"parts": [part]})

    def send(self, upload: dict[str, Any], number: int, data: bytes, checksum: str = "") -> None:
        etag = self.put(upload, number, data, checksum)
        response = self.report(upload, number, etag, checksum)
        assert response.status_code == 200, response.text


def part_of(data: bytes, number: int) -> bytes:
    return data[(number - 1) * 5 * MiB : number * 5 * MiB]


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together by a barrier; their results, in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


class CompleteSpy:
    """Counts CompleteMultipartUpload calls that reach S3, per key, holding each a moment."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.lock = threading.Lock()

    def count(self, key: str) -> int:
        with self.lock:
            return self.keys.count(key)


@pytest.fixture
def spy(monkeypatch) -> CompleteSpy:
    spy = CompleteSpy()
    original = MultipartStorage.complete_multipart_upload

    def counting(storage: MultipartStorage, key: str, *args: Any, **kwargs: Any) -> Any:
        with spy.lock:
            spy.keys.append(key)
        time.sleep(HOLD)  # the racing call arrives while this one is inside S3
        return original(storage, key, *args, **kwargs)

    monkeypatch.setattr(MultipartStorage, "complete_multipart_upload", counting)
    return spy


@pytest.fixture
def store(real_s3) -> MultipartStorage:  # noqa: F811  (the fixture imported above)
    """The test's SeaweedFS bucket, which the live server uses too."""
    return real_s3


@pytest.fixture
def server(live_server, store) -> str:
    return live_server.url


@pytest.fixture
def token(django_user_model) -> str:
    user = django_user_model.objects.create_user("alice", password=PASSWORD)
    return ApiToken.issue(user, name="races")[1]


@pytest.fixture
def clients(server, token) -> tuple[Client, Client]:
    """Two clients of the same user, e.g. a laptop and a phone."""
    return Client(server, token), Client(server, token)


def objects_in_flight(storage: MultipartStorage, key: str) -> list[str]:
    return [item.s3_upload_id for item in storage.list_multipart_uploads(key)]


# --- two completes ---------------------------------------------------------------------------
def test_two_clients_completing_the_same_upload_at_once_complete_it_once_and_answer_alike(
    clients, spy, store
):
    laptop, phone = clients
    for _ in range(ROUNDS):
        data = random.randbytes(5 * MiB + 1000)
        upload = laptop.create(len(data))
        for number in (1, 2):
            laptop.send(upload, number, part_of(data, number))
        path = f"/api/uploads/{upload['id']}/complete/"

        first, second = at_once(
            lambda path=path: laptop.call("POST", path), lambda path=path: phone.call("POST", path)
        )

        assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
        assert first.json() == second.json()
        assert first.json()["status"] == "completed"
        assert spy.count(upload["key"]) == 1
        stored = store.client.get_object(Bucket=store.bucket, Key=upload["key"])
        assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(data).digest()
        assert objects_in_flight(store, upload["key"]) == []


def test_two_uppy_completes_of_the_same_upload_at_once_complete_it_once_and_answer_alike(
    clients, spy, store
):
    laptop, phone = clients
    data = random.randbytes(5 * MiB + 1000)
    created = laptop.ok("POST", "/s3/multipart", {"filename": "uppy.bin", "type": ""})
    base = f"/s3/multipart/{created['uploadId']}"
    parts = []
    for number in (1, 2):
        signed = laptop.ok("GET", f"{base}/{number}?key={created['key']}")
        put = requests.put(signed["url"], data=part_of(data, number), timeout=60)
        parts.append({"PartNumber": number, "ETag": put.headers["ETag"]})
    path = f"{base}/complete?key={created['key']}"

    first, second = at_once(
        lambda: laptop.call("POST", path, {"parts": parts}),
        lambda: phone.call("POST", path, {"parts": parts}),
    )

    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert first.json() == second.json()
    assert spy.count(created["key"]) == 1
    assert Upload.objects.get(pk=created["uploadId"]).size == len(data)


# --- complete against abort ------------------------------------------------------------------
def test_complete_racing_abort_ends_in_one_consistent_state_in_the_database_and_in_s3(
    clients, spy, store
):
    laptop, phone = clients
    outcomes = []
    for round_ in range(ROUNDS * 2):
        data = random.randbytes(1000 + round_)
        upload = laptop.create(len(data))
        laptop.send(upload, 1, data)
        detail = f"/api/uploads/{upload['id']}/"
        # Stagger the two by a few milliseconds either way, so each can be first.
        lead = random.uniform(0, 0.02)

        def complete(lead: float = lead, detail: str = detail) -> requests.Response:
            time.sleep(lead)
            return laptop.call("POST", detail + "complete/")

        def abort(lead: float = lead, detail: str = detail) -> requests.Response:
            time.sleep(0.01 - lead / 2)
            return phone.call("DELETE", detail)

        completed, aborted = at_once(complete, abort)

        row = Upload.objects.get(pk=upload["id"])
        statuses = sorted([completed.status_code, aborted.status_code])
        assert statuses == [200, 409], (completed.text, aborted.text)
        loser = aborted if completed.status_code == 200 else completed
        assert loser.json()["code"] == "upload_conflict"
        head = store.head_object(upload["key"])
        if completed.status_code == 200:
            assert row.status == Status.COMPLETED
            assert head is not None
            assert head.size == len(data)
            assert spy.count(upload["key"]) == 1
        else:
            assert row.status == Status.ABORTED
            assert head is None
            assert spy.count(upload["key"]) == 0  # the completion never reached S3
        assert objects_in_flight(store, upload["key"]) == []
        outcomes.append(row.status)
    print(f"complete vs abort over {len(outcomes)} rounds:", sorted(outcomes))


# --- one part, two ETags ---------------------------------------------------------------------
def test_a_part_reported_with_an_etag_s3_does_not_hold_is_refused_at_completion(
    clients, spy, store
):
    laptop, _ = clients
    sent, claimed = b"a" * 4096, b"c" * 4096
    upload = laptop.create(4096)
    laptop.put(upload, 1, sent)
    # The client reports the ETag of other bytes (a bug, a mix-up between two files).
    assert laptop.report(upload, 1, etag_of(claimed)).status_code == 200

    refused = laptop.call("POST", f"/api/uploads/{upload['id']}/complete/")

    assert refused.status_code == 409
    assert refused.json() == {
        "code": "part_mismatch",
        "detail": "These parts in storage are not the ones reported.",
        "parts": [1],
    }
    assert spy.count(upload["key"]) == 0
    assert Upload.objects.get(pk=upload["id"]).status == Status.UPLOADING
    assert store.head_object(upload["key"]) is None
    # Asking for the upload reconciles it with S3, whose part then completes.
    detail = laptop.ok("GET", f"/api/uploads/{upload['id']}/")
    assert detail["parts"][0]["etag"] == etag_of(sent)
    assert laptop.ok("POST", f"/api/uploads/{upload['id']}/complete/")["status"] == "completed"
    assert store.client.get_object(Bucket=store.bucket, Key=upload["key"])["Body"].read() == sent


@pytest.mark.parametrize("checksums", [False, True], ids=["etags only", "sha256 checksums"])
def test_the_same_part_sent_twice_at_once_with_different_bytes_never_completes_a_mix(
    clients, spy, store, checksums
):
    laptop, phone = clients
    outcomes = []
    for _ in range(ROUNDS):
        payloads = {"laptop": random.randbytes(4096), "phone": random.randbytes(4096)}
        extra = {"checksum_algorithm": "SHA256"} if checksums else {}
        upload = laptop.create(4096, **extra)

        def send(
            client: Client, name: str, upload: dict[str, Any] = upload, payloads=payloads
        ) -> int:
            data = payloads[name]
            checksum = sha256_b64(data) if checksums else ""
            etag = client.put(upload, 1, data, checksum)
            return client.report(upload, 1, etag, checksum).status_code

        reports = at_once(lambda: send(laptop, "laptop"), lambda: send(phone, "phone"))
        # With checksums, a report of a part since re-signed with another checksum is refused.
        assert set(reports) <= {200, 409}
        done = laptop.call("POST", f"/api/uploads/{upload['id']}/complete/")

        row = Upload.objects.get(pk=upload["id"])
        recorded = row.parts.get(number=1).etag
        if done.status_code == 200:
            # The object is one whole copy, and exactly the one whose ETag was recorded.
            stored = store.client.get_object(Bucket=store.bucket, Key=upload["key"])["Body"].read()
            assert stored in payloads.values()
            assert etag_of(stored) == recorded
            assert row.status == Status.COMPLETED
            assert spy.count(upload["key"]) == 1
        else:
            # The ETag recorded is not a copy S3 holds (AWS keeps only the last): refused.
            assert done.status_code == 409, done.text
            assert done.json()["code"] == "part_mismatch"
            assert row.status == Status.UPLOADING
            assert store.head_object(upload["key"]) is None
            assert spy.count(upload["key"]) == 0
        outcomes.append((tuple(sorted(reports)), done.status_code))
    print("same part twice (reports, complete):", outcomes)


# --- two sessions resuming -------------------------------------------------------------------
def test_two_sessions_resuming_the_same_upload_at_once_both_finish_with_every_byte(
    clients, spy, store
):
    laptop, phone = clients
    data = random.randbytes(3 * 5 * MiB + 12345)  # four parts
    fingerprint = "v1:" + hashlib.sha256(data[:1024]).hexdigest()
    upload = laptop.create(len(data), checksum_algorithm="SHA256", fingerprint=fingerprint)
    laptop.send(upload, 1, part_of(data, 1), sha256_b64(part_of(data, 1)))  # then the laptop died

    def resume(client: Client) -> requests.Response:
        # What any session does: find the upload by fingerprint, ask what S3 holds, send the rest.
        (found,) = client.ok("GET", f"/api/uploads/?fingerprint={fingerprint}")["results"]
        detail = client.ok("GET", f"/api/uploads/{found['id']}/")
        held = {part["number"] for part in detail["parts"] if part["etag"]}
        missing = [n for n in range(1, detail["part_count"] + 1) if n not in held]
        random.shuffle(missing)
        for number in missing:
            part = part_of(data, number)
            checksum = sha256_b64(part)
            signed = client.call(
                "POST",
                f"/api/uploads/{found['id']}/sign/",
                {"parts": [{"number": number, "checksum": checksum}]},
            )
            if finishing_elsewhere(signed):
                break
            (url,) = signed.json()["parts"]
            put = requests.put(url["url"], data=part, headers=url["headers"], timeout=60)
            assert put.status_code == 200, put.text
            if finishing_elsewhere(client.report(detail, number, put.headers["ETag"], checksum)):
                break
        # Done sending, or the other session is completing: either way, complete.
        return client.call("POST", f"/api/uploads/{found['id']}/complete/")

    def finishing_elsewhere(response: requests.Response) -> bool:
        """The other session sent the last part first and is completing: a clear 409."""
        if response.status_code == 200:
            return False
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "upload_conflict"
        assert response.json()["status"] in ("completing", "completed")
        return True

    first, second = at_once(lambda: resume(laptop), lambda: resume(phone))

    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert first.json() == second.json()
    assert [p["number"] for p in first.json()["parts"]] == [1, 2, 3, 4]
    assert spy.count(upload["key"]) == 1
    stored = store.client.get_object(Bucket=store.bucket, Key=upload["key"])["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()


# --- two creates -----------------------------------------------------------------------------
def test_two_creates_with_the_same_client_token_at_once_make_one_upload(clients, store):
    laptop, phone = clients
    body = {"filename": "once.bin", "size": 10, "client_token": "tok-123"}

    first, second = at_once(
        lambda: laptop.call("POST", "/api/uploads/", body),
        lambda: phone.call("POST", "/api/uploads/", body),
    )

    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["id"] == second.json()["id"]
    (row,) = Upload.objects.all()
    # The loser's S3 multipart upload was aborted at once: S3 holds exactly the winner's.
    assert [item.s3_upload_id for item in store.list_multipart_uploads("")] == [row.s3_upload_id]


# --- two sessions signing one upload -----------------------------------------------------------
def sign_as(client: Client, upload: dict[str, Any], numbers: range, session: str) -> Any:
    body = {"parts": [{"number": n} for n in numbers], "session": session}
    return client.ok("POST", f"/api/uploads/{upload['id']}/sign/", body)


def test_two_sessions_signing_one_upload_at_once_are_handed_disjoint_parts(clients, store):
    """The first sign locks the upload's row to its end: the second sees its leases."""
    laptop, phone = clients
    for _ in range(ROUNDS):
        upload = laptop.create(8 * 5 * MiB)
        everything = range(1, 9)

        first, second = at_once(
            lambda: sign_as(laptop, upload, everything, "laptop-session-1"),  # noqa: B023
            lambda: sign_as(phone, upload, everything, "phone-session-2"),  # noqa: B023
        )

        signed = [{p["number"] for p in answer["parts"]} for answer in (first, second)]
        assert signed[0].isdisjoint(signed[1])
        assert signed[0] | signed[1] == set(everything)
        assert set(first["leased"]) == signed[1]
        assert set(second["leased"]) == signed[0]
