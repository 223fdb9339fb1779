"""Faults injected between the clients, Django and S3: each upload ends intact or fails cleanly.

A real Partwise server (`manage.py runserver`, tests/django_server.py) talks to a real
SeaweedFS; the clients reach both through fault proxies (tests/faultproxy.py):

    client ──▶ api proxy ──▶ Django ──▶ s3 proxy (counts) ──▶ SeaweedFS
    client ──▶ part proxy (presigned URLs name it: AWS_S3_PUBLIC_ENDPOINT_URL) ──▶ SeaweedFS

Every scenario ends with the object's SHA-256 equal to the file's, or with a clear failure
and nothing half-done (no multipart upload or part left in S3). The browser client's scenario is
tests/e2e/test_faults_in_browser.py (it shares the e2e tier's Chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from partwise_client import PartwiseApi, Uploader
from partwise_client.api import Backoff
from partwise_client.fingerprint import fingerprint
from project.dev.seaweedfs import SeaweedFS
from tests.django_server import DjangoServer
from tests.faultproxy import FaultProxy
from tests.s3server import client_of, real_s3, seaweedfs  # noqa: F401  (fixtures)
from tests.support.checksums import sha256_of_file, sha256_of_object
from tests.support.files import write_random
from uploads import services

pytestmark = pytest.mark.timeout(180)

MiB = 1024 * 1024
PART = 5 * MiB  # S3's smallest part: the least data that still makes several parts
PARTWISE = shutil.which("partwise", path=str(Path(sys.executable).parent)) or "partwise"
# Patient and quick: retries come fast (at most 1 s apart), and enough of them (18 to 36 s of
# waiting over 39 retries) to outlast a restart of Django or SeaweedFS.
PATIENT = Backoff(delays=(0.1, 0.2, 0.4, 0.8) + (1.0,) * 35)


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def part_proxy(seaweedfs) -> Iterator[FaultProxy]:  # noqa: F811
    """Between the clients and S3: every presigned URL names it."""
    with FaultProxy(seaweedfs.endpoint, seed=7) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def s3_proxy(seaweedfs) -> Iterator[FaultProxy]:  # noqa: F811
    """Between Django and S3: counts what the server asks of S3."""
    with FaultProxy(seaweedfs.endpoint) as proxy:
        yield proxy


def make_server(workdir: Path, s3: SeaweedFS, part_proxy: FaultProxy, **env: str) -> DjangoServer:
    extra = {"AWS_S3_PUBLIC_ENDPOINT_URL": part_proxy.url, "UPLOADS_PART_SIZE": str(PART)}
    return DjangoServer(workdir, s3, extra_env={**extra, **env}).start()


@pytest.fixture(scope="module")
def server(seaweedfs, part_proxy, s3_proxy, tmp_path_factory) -> Iterator[DjangoServer]:  # noqa: F811
    server = make_server(
        tmp_path_factory.mktemp("django"),
        seaweedfs,
        part_proxy,
        AWS_S3_ENDPOINT_URL=s3_proxy.url,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_proxy(server) -> Iterator[FaultProxy]:
    """Between the clients and Django."""
    with FaultProxy(server.url, seed=11) as proxy:
        yield proxy


@pytest.fixture(autouse=True)
def _fresh_proxies(request) -> Iterator[None]:
    """Each test starts with proxies that only forward and have counted nothing."""
    proxies = [
        request.getfixturevalue(name)
        for name in ("part_proxy", "s3_proxy", "api_proxy")
        if name in request.fixturenames
    ]
    for proxy in proxies:
        proxy.clear()
    yield
    for proxy in proxies:
        proxy.clear()


def multipart_uploads(s3: SeaweedFS, bucket: str, key: str) -> list[str]:
    """The multipart uploads S3 still holds at `key`."""
    found = client_of(s3).list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
    return [item["UploadId"] for item in found if item["Key"] == key]


def uploader(server_url: str, token: str, **options: Any) -> Uploader:
    api = PartwiseApi(server_url, token, backoff=PATIENT, timeout=30)
    return Uploader(api, concurrency=options.pop("concurrency", 2), **options)


def assert_intact(server: DjangoServer, upload: dict[str, Any], path: Path) -> None:
    """Completed, the object's bytes are the file's, and S3 keeps no multipart upload for it."""
    stored = server.api("GET", f"/api/uploads/{upload['id']}/").json()
    assert stored["status"] == "completed", stored
    assert stored["size"] == path.stat().st_size
    in_s3 = sha256_of_object(client_of(server.s3), server.bucket, stored["key"])
    assert in_s3 == sha256_of_file(path)
    assert multipart_uploads(server.s3, server.bucket, stored["key"]) == []


def uploads_of_file(server: DjangoServer, path: Path) -> list[dict[str, Any]]:
    return server.api("GET", f"/api/uploads/?fingerprint={fingerprint(path)}").json()["results"]


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


class Background:
    """Runs an upload in a thread; join() returns its result or raises its error."""

    def __init__(self, run: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(run,), daemon=True)
        self.thread.start()

    def _run(self, run: Callable[[], Any]) -> None:
        try:
            self.result = run()
        except BaseException as error:  # handed to the test thread by join()
            self.error = error

    def join(self, timeout: float = 120) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the upload did not finish"
        if self.error is not None:
            raise self.error
        return self.result


# --- S3 faults, through the Python client -------------------------------------------------------
def test_an_upload_survives_connections_reset_in_the_middle_of_parts(server, part_proxy, tmp_path):
    path = write_random(tmp_path / "reset.bin", 4 * PART + 123)
    # Half of the part PUTs lose their connection after 1 MiB of the body went out.
    part_proxy.add("reset", method="PUT", path="partNumber=", after_bytes=MiB, fraction=0.5)

    transfer = uploader(server.url, server.users["alice"].token).upload(path)

    assert part_proxy.counts["reset"] >= 2, part_proxy.counts
    assert_intact(server, transfer.upload, path)


@pytest.mark.parametrize(
    ("where", "status"),
    [("s3", 503), ("s3", 500), ("django", 503), ("django", 500)],
    ids=["s3-503-slowdown", "s3-500-internal-error", "django-503", "django-500"],
)
def test_an_upload_survives_half_the_requests_answered_with_5xx(
    server, part_proxy, api_proxy, tmp_path, where, status
):
    path = write_random(tmp_path / f"{where}-{status}.bin", 3 * PART + 1)
    proxy = part_proxy if where == "s3" else api_proxy
    proxy.add("error", status=status, fraction=0.5, name=f"error-{status}")

    transfer = uploader(api_proxy.url, server.users["alice"].token).upload(path)

    assert proxy.counts[f"error-{status}"] >= 2, proxy.counts
    assert_intact(server, transfer.upload, path)


# --- completion faults ------------------------------------------------------------------------
COMPLETE = r"/complete/$"
S3_COMPLETE = r"[?&]uploadId="  # POST …?uploadId=: CompleteMultipartUpload (create is ?uploads)


def test_a_lost_completion_answer_is_settled_by_the_retry_without_completing_twice(
    server, api_proxy, s3_proxy, tmp_path
):
    path = write_random(tmp_path / "lost-answer.bin", 2 * PART + 7)
    # Django completes the upload, and its answer is lost on the way back, once.
    api_proxy.add("drop_response", method="POST", path=COMPLETE, times=1)
    completes_to_s3 = s3_proxy.add("count", method="POST", path=S3_COMPLETE)

    transfer = uploader(api_proxy.url, server.users["alice"].token).upload(path)

    (lost,) = [event for event in api_proxy.events if event.rule == "drop_response"]
    assert lost.status == 200, "the first call completed the upload; only its answer was lost"
    first_answer = json.loads(lost.body)
    upload = transfer.upload
    # The retry reached the server and answered the same completed upload.
    assert api_proxy.seen["POST /api/uploads/*/complete/?"] == 2
    assert upload["status"] == "completed"
    same = ("id", "status", "key", "size", "etag", "checksum", "completed_at")
    assert {k: upload[k] for k in same} == {k: first_answer[k] for k in same}
    # Exactly one CompleteMultipartUpload reached S3, and one upload exists for the file.
    assert completes_to_s3.applied == 1
    assert [u["id"] for u in uploads_of_file(server, path)] == [upload["id"]]
    assert_intact(server, upload, path)


def partwise_cli(server: DjangoServer, api_url: str, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PARTWISE_SERVER": api_url, "PARTWISE_TOKEN": server.users["alice"].token}
    return subprocess.Popen(
        [PARTWISE, *args, "-q"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 90) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


@pytest.mark.parametrize(
    "moment",
    ["before-django-heard-it", "while-django-completes", "after-django-completed"],
)
def test_a_client_killed_while_completing_is_finished_by_a_new_process_with_one_object(
    server, api_proxy, s3_proxy, tmp_path, moment
):
    path = write_random(tmp_path / f"killed-{moment}.bin", 2 * PART + 99)
    # Exactly one CompleteMultipartUpload may reach S3, whoever sends it.
    s3_complete = s3_proxy.add(
        "stall" if moment == "while-django-completes" else "count",
        method="POST",
        path=S3_COMPLETE,
        after_bytes=-1,
        seconds=None if moment == "while-django-completes" else 0,
    )
    api_proxy.add("count", method="POST", path=COMPLETE, name="answer")
    if moment == "before-django-heard-it":
        cut = api_proxy.add("reset", method="POST", path=COMPLETE)
        reached = lambda: cut.applied  # noqa: E731
    elif moment == "while-django-completes":
        reached = lambda: s3_complete.applied  # noqa: E731
    else:
        held = api_proxy.add("hold_response", method="POST", path=COMPLETE)
        reached = lambda: any(e.rule == "hold_response" for e in api_proxy.events)  # noqa: E731

    first = partwise_cli(server, api_proxy.url, "upload", str(path), cwd=tmp_path)
    try:
        wait_until(reached, "the CLI is completing")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    (upload,) = uploads_of_file(server, path)
    expected = {
        "before-django-heard-it": "uploading",
        "while-django-completes": "completing",
        "after-django-completed": "completed",
    }[moment]
    assert upload["status"] == expected

    # A new process finishes the upload (or finds it finished) without sending any part.
    if moment == "before-django-heard-it":
        api_proxy.rules.remove(cut)
    elif moment == "after-django-completed":
        held.release.set()
    second = partwise_cli(server, api_proxy.url, "resume", str(path), cwd=tmp_path)
    if moment == "while-django-completes":
        # The server answers 409 "being completed" to the new process until S3 answers the
        # first completion; the client asks again, and then gets the completed upload.
        wait_until(
            lambda: any(e.rule == "answer" and e.status == 409 for e in api_proxy.events),
            "the new process was told the upload is being completed",
        )
        s3_complete.release.set()
    code, out, err = finish(second)
    assert code == 0, err
    assert f"uploaded as {upload['id']} " in out
    assert "0 parts sent" in out

    assert [u["id"] for u in uploads_of_file(server, path)] == [upload["id"]]
    assert s3_complete.applied == 1
    assert_intact(server, upload, path)


# --- slow parts and expiring URLs -------------------------------------------------------------
def test_a_part_held_past_its_url_expiry_is_signed_again_and_sent(
    seaweedfs,  # noqa: F811
    part_proxy,
    tmp_path,
):
    server = make_server(tmp_path / "django", seaweedfs, part_proxy, UPLOADS_URL_EXPIRY="2")
    try:
        path = write_random(tmp_path / "slow.bin", 3 * PART + 5)
        # Part 2's first PUT is held 3 s before S3 sees it: its 2-second URL has expired.
        part_proxy.add(
            "stall", method="PUT", path="partNumber=2&", after_bytes=-1, seconds=3, times=1
        )

        transfer = uploader(server.url, server.users["alice"].token).upload(path)

        (held,) = [event for event in part_proxy.events if event.rule == "stall"]
        assert held.status == 403, "S3 refused the expired URL"
        assert part_proxy.seen["PUT /pw-*/uploads/*/slow.bin?partNumber=2"] == 2
        assert_intact(server, transfer.upload, path)
    finally:
        server.stop()


# --- servers restarted in the middle of an upload ------------------------------------------
def upload_across_a_restart(
    client: Uploader,
    path: Path,
    server: DjangoServer,
    stop: Callable[[], Any],
    start: Callable[[], Any],
    proxy: FaultProxy,
) -> Any:
    """Upload `path`; once a part is recorded, `stop` a server, and `start` it again once a
    request through `proxy` found it down. The client's transfer, when it ends."""
    running = Background(lambda: client.upload(path))
    wait_until(
        lambda: any(u["parts_uploaded"] for u in uploads_of_file(server, path)),
        "a part is recorded",
    )
    stop()
    wait_until(lambda: proxy.counts["unreachable"] >= 1, "a request found the server down")
    start()
    return running.join()


def test_an_upload_carries_on_when_django_restarts_in_the_middle(server, api_proxy, tmp_path):
    path = write_random(tmp_path / "django-restart.bin", 4 * PART)
    client = uploader(api_proxy.url, server.users["alice"].token, limit_rate=6 * MiB)

    # The client keeps sending parts to S3; its calls to Django fail until Django is back (on
    # the same port, with the same database).
    transfer = upload_across_a_restart(client, path, server, server.stop, server.launch, api_proxy)
    assert_intact(server, transfer.upload, path)
    assert len(uploads_of_file(server, path)) == 1


def test_an_upload_completes_when_seaweedfs_restarts_in_the_middle(tmp_path):
    s3 = SeaweedFS.on_free_ports(
        data_dir=tmp_path / "seaweedfs",
        access_key="test" + os.urandom(6).hex(),
        secret_key=os.urandom(18).hex(),
    )
    try:
        with FaultProxy(s3.endpoint) as proxy:
            server = make_server(tmp_path / "django", s3, proxy)
            try:
                path = write_random(tmp_path / "s3-restart.bin", 4 * PART)
                # Finished parts are reported at once (not every 15 s, the default), so the
                # server records part 1 as soon as it is in S3 and the restart can begin.
                client = uploader(
                    server.url, server.users["alice"].token, limit_rate=6 * MiB, report_interval=0
                )

                # Parts 2 to 4 wait at the proxy until SeaweedFS is down, so they are what finds
                # it down: without that hold, a fast machine had sent every part before the stop
                # and the test waited in vain for a request to find S3 down.
                held = proxy.add("stall", method="PUT", path="partNumber=[234]&", after_bytes=-1)

                def stop() -> None:
                    s3.stop()
                    held.release.set()

                # Same ports, same data dir.
                transfer = upload_across_a_restart(client, path, server, stop, s3.start, proxy)
                assert_intact(server, transfer.upload, path)
            finally:
                server.stop()
    finally:
        # Everything is checked: this SeaweedFS and its data are thrown away, so it need not
        # be waited for (after a restart it took up to the whole 20 s to stop on SIGTERM).
        s3.stop(timeout=3)


# --- abort while parts are in flight ------------------------------------------------------------
def test_abort_while_parts_are_in_flight_leaves_no_part_in_s3(server, part_proxy):
    upload = server.api("POST", "/api/uploads/", json={"filename": "a.bin", "size": 4 * PART})
    upload = upload.json()
    signed = server.api(
        "POST",
        f"/api/uploads/{upload['id']}/sign/",
        json={"parts": [{"number": n} for n in (1, 2, 3, 4)]},
    ).json()["parts"]
    data = os.urandom(PART)
    first = requests.put(signed[0]["url"], data=data, timeout=30)
    assert first.status_code == 200
    # Parts 2-4 are half-way through their bodies when the upload is aborted.
    held = part_proxy.add("stall", method="PUT", path="partNumber=[234]&", after_bytes=2 * MiB)
    answers: dict[int, requests.Response] = {}

    def put(part: dict[str, Any]) -> None:
        answers[part["number"]] = requests.put(part["url"], data=data, timeout=60)

    senders = [threading.Thread(target=put, args=(part,)) for part in signed[1:]]
    for sender in senders:
        sender.start()
    wait_until(lambda: held.applied == 3, "three parts are in flight")

    aborted = server.api("DELETE", f"/api/uploads/{upload['id']}/")
    assert (aborted.status_code, aborted.json()["status"]) == (200, "aborted")
    held.release.set()
    for sender in senders:
        sender.join(60)

    # S3 refuses the parts that arrive after the abort, and the server refuses their report.
    assert {n: r.status_code for n, r in answers.items()} == {2: 404, 3: 404, 4: 404}
    assert all("NoSuchUpload" in r.text for r in answers.values())
    late = server.api(
        "POST",
        f"/api/uploads/{upload['id']}/parts/",
        json={"parts": [{"number": 1, "etag": first.headers["ETag"]}]},
    )
    assert (late.status_code, late.json()["code"]) == (409, "upload_conflict")
    # Nothing is left in S3: no multipart upload at the key, and ListParts finds nothing.
    assert multipart_uploads(server.s3, server.bucket, upload["key"]) == []
    s3 = client_of(server.s3)
    s3_upload_id = parse_qs(urlsplit(signed[0]["url"]).query)["uploadId"][0]
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.list_parts(Bucket=server.bucket, Key=upload["key"], UploadId=s3_upload_id)
    assert server.api("GET", f"/api/uploads/{upload['id']}/").json()["status"] == "aborted"


def test_an_abort_is_repeated_while_s3_still_lists_a_part(
    real_s3,  # noqa: F811
    django_user_model,
    monkeypatch,
):
    owner = django_user_model.objects.create_user("abby")
    upload, _ = services.start_upload(owner=owner, filename="a.bin", size=PART)
    (part,) = services.sign_parts(upload, parts=[services.PartToSign(1)], by=owner)
    assert requests.put(part.url, data=os.urandom(PART), timeout=30).status_code == 200
    aborts: list[str] = []
    abort = real_s3.abort_multipart_upload

    def abort_then_a_part_lands(key: str, upload_id: str) -> bool:
        aborts.append(upload_id)
        if len(aborts) == 1:
            return True  # S3 said yes, and a part in flight landed just after (as AWS allows)
        return abort(key, upload_id)

    monkeypatch.setattr(real_s3, "abort_multipart_upload", abort_then_a_part_lands)

    services.abort_upload(upload, by=owner)

    assert aborts == [upload.s3_upload_id] * 2, "the part still listed made the server abort again"
    assert real_s3.list_multipart_uploads(upload.key) == []
