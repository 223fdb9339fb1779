"""A real Celery worker process, on the embedded SQLite broker and on Redis, against SeaweedFS.

The worker is a separate `celery worker` process started with environment variables only, as
in production: it reaches the test's SeaweedFS bucket, its broker (a SQLite file of its own, as
`make run` uses, or the Redis server of PARTWISE_TEST_REDIS_URL, which CI starts; without it that
variant skips),
and a database this process uses too: a SQLite file (pytest-django's SQLite test database lives
in memory, which another process cannot open), or in the PostgreSQL pass the test database
itself, with every transaction committed. This process plays the web server and beat: it
starts, uploads and completes files through the services and sends the periodic tasks by name.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from project.celery import app as celery_app
from project.dev.embedded import BASE_DIR
from tests import pg
from tests.factories import PASSWORD
from tests.support.presigned import put_signed
from tests.webhook_receiver import WebhookReceiver, running_receiver
from uploads import services
from uploads.models import Upload

pytestmark = [pytest.mark.timeout(300)]
if pg.on_postgresql():
    # The worker reads what this process wrote: every transaction must really commit.
    pytestmark.append(pytest.mark.django_db(transaction=True))
Status = Upload.Status
WORKER_START_TIMEOUT = 90.0
TASK_TIMEOUT = 60.0
ORPHAN_GRACE = 10  # seconds: long enough for the first sweep to come before it, short to wait
SECRET = "whsec_aW50ZWdyYXRpb24tb25seS13ZWJob29rLXNlY3JldA=="


# --- the shared database, the worker -------------------------------------------------------
@pytest.fixture
def shared_database(tmp_path, django_db_blocker) -> Iterator[str]:
    """The URL of a database this process and the worker share, for the test's duration.

    SQLite: this process's default connection is pointed at a migrated file; the in-memory test
    database stays open (its connection is put aside and restored), so the tests that run after
    this one find it as it was. PostgreSQL: the test database, every transaction committed.
    """
    connection = connections["default"]
    if connection.vendor == "postgresql":
        yield pg.database_url()  # the django_db(transaction=True) mark above commits
        return
    if connection.vendor != "sqlite":
        pytest.skip("the worker test shares a SQLite file or a PostgreSQL database")
    path = tmp_path / "shared.sqlite3"
    with django_db_blocker.unblock():
        saved = connection.settings_dict["NAME"], connection.connection
        connection.connection = None
        connection.settings_dict["NAME"] = str(path)
        try:
            call_command("migrate", interactive=False, verbosity=0)
            yield f"sqlite:///{path}"
        finally:
            connection.close()
            connection.settings_dict["NAME"], connection.connection = saved


def use_broker(url: str, options: dict[str, object]) -> None:
    """Send this process's tasks (those services queue on commit too) to another broker."""
    celery_app.conf.broker_url = url
    celery_app.conf.broker_transport_options = options
    # Celery pools connections and producers for the broker it first used: drop both.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


class Worker:
    """A running `celery worker`; its log tells when each task finished, and how."""

    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process = process
        self.log = log

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def result_of(self, task_id: str, timeout: float = TASK_TIMEOUT) -> str:
        """Wait until the worker logs the task's outcome; return what the task returned."""
        pattern = re.compile(rf"\[{re.escape(task_id)}\] succeeded in [\d.]+s: (.*)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            found = pattern.search(text)
            if found:
                return found.group(1).strip()
            if f"[{task_id}] raised" in text:
                raise AssertionError(f"task {task_id} failed:\n{text[-3000:]}")
            assert self.process.poll() is None, f"the worker died:\n{text[-3000:]}"
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} did not finish:\n{self.text()[-3000:]}")


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pg.requires_redis)])
def start_worker(
    request, tmp_path, s3_server, real_s3, shared_database
) -> Iterator[Callable[..., Worker]]:
    """Start a worker (with extra environment variables) and point this process's Celery app
    at the same broker (`make run`'s SQLite file, or Redis); both are undone at the end."""
    broker_url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    options: dict[str, object] = {"connect_args": {"timeout": 30}}
    if request.param == "redis":
        import redis

        broker_url, options = pg.redis_url(), {}
        # Tasks left by an earlier run would reach this test's worker: start empty.
        redis.Redis.from_url(broker_url).flushdb()
    use_broker(broker_url, options)
    workers: list[Worker] = []

    def start(**extra_env: str) -> Worker:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": shared_database,
            "AWS_S3_ENDPOINT_URL": s3_server.endpoint,
            "AWS_S3_PUBLIC_ENDPOINT_URL": s3_server.endpoint,
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
            "AWS_S3_REGION_NAME": "us-east-1",
            "UPLOADS_BUCKET": real_s3.bucket,
            "CELERY_BROKER_URL": broker_url,
            **extra_env,
        }
        log = tmp_path / f"worker-{len(workers)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "--app=project",
                    "worker",
                    "--pool=solo",
                    "--loglevel=INFO",
                    "--without-heartbeat",
                    "--without-mingle",
                    "--without-gossip",
                    f"--hostname=partwise-test-{uuid.uuid4().hex[:8]}@localhost",
                ],
                cwd=BASE_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process, log)
        workers.append(worker)
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while " ready." not in worker.text():
            assert process.poll() is None, f"the worker exited:\n{worker.text()[-3000:]}"
            assert time.monotonic() < deadline, f"no ready worker:\n{worker.text()[-3000:]}"
            time.sleep(0.2)
        return worker

    yield start
    for worker in workers:
        if worker.process.poll() is None:
            os.killpg(worker.process.pid, signal.SIGTERM)  # warm shutdown
            try:
                worker.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait()
    use_broker("memory://", {})


# --- helpers --------------------------------------------------------------------------------
def upload_file(owner, data: bytes, name: str = "file.bin") -> Upload:
    """Start an upload and PUT its one part to the presigned URL, as a browser does."""
    upload, _ = services.start_upload(owner=owner, filename=name, size=len(data))
    [signed] = services.sign_parts(upload, parts=[services.PartToSign(1)], by=owner)
    put_signed(signed, data)
    return upload


def multipart_uploads(storage) -> set[str]:
    return {item.key for item in storage.list_multipart_uploads("")}


def wait_until(condition: Callable[[], bool], timeout: float = TASK_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with running_receiver(secret=SECRET) as receiver:
        yield receiver


@pytest.fixture
def owner(shared_database):
    # Not pytest-django's django_user_model: it requests `db`, whose transaction would hide
    # every row from the worker until the end of the test.
    return get_user_model().objects.create_user("owner", password=PASSWORD)


# --- the tests ------------------------------------------------------------------------------
def test_the_worker_expires_stale_uploads_and_sweeps_orphans_but_nothing_else(
    start_worker, real_s3, owner
):
    worker = start_worker(UPLOADS_ORPHAN_GRACE=str(ORPHAN_GRACE))
    # A completed file, a fresh upload still in progress, and one inactive past its expiry.
    done = services.complete_upload(upload_file(owner, b"finished " * 500), by=owner)
    finished = real_s3.head_object(done.key)
    fresh = upload_file(owner, b"fresh " * 500)
    stale = upload_file(owner, b"stale " * 500)
    Upload.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    # An orphan (no row) under the prefix, and a multipart upload outside it.
    real_s3.create_multipart_upload("uploads/lost/orphan.bin", content_type="")
    real_s3.create_multipart_upload("outside/keep-me.bin", content_type="")

    # What beat sends every hour.
    expiry = celery_app.send_task("uploads.tasks.expire_stale_uploads")
    early_sweep = celery_app.send_task("uploads.tasks.reconcile_orphans")

    assert worker.result_of(expiry.id) == "1"
    assert worker.result_of(early_sweep.id) == "0"  # the orphan is within its grace period
    assert Upload.objects.get(pk=stale.pk).status == Status.EXPIRED
    assert multipart_uploads(real_s3) == {
        fresh.key,
        "uploads/lost/orphan.bin",
        "outside/keep-me.bin",
    }

    time.sleep(ORPHAN_GRACE + 1)
    late_sweep = celery_app.send_task("uploads.tasks.reconcile_orphans")

    assert worker.result_of(late_sweep.id) == "1"
    assert multipart_uploads(real_s3) == {fresh.key, "outside/keep-me.bin"}
    assert Upload.objects.get(pk=fresh.pk).status == Status.UPLOADING
    assert Upload.objects.get(pk=done.pk).status == Status.COMPLETED
    assert real_s3.head_object(done.key) == finished


def test_the_worker_verifies_completed_objects_and_delivers_the_signed_webhook_with_a_retry(
    start_worker, real_s3, owner, settings, webhook_receiver
):
    settings.UPLOADS_WEBHOOK_URL = webhook_receiver.url
    settings.UPLOADS_WEBHOOK_SECRET = SECRET
    webhook_receiver.answers = [500]  # the first delivery fails: Celery must retry it
    worker = start_worker(UPLOADS_WEBHOOK_URL=webhook_receiver.url, UPLOADS_WEBHOOK_SECRET=SECRET)

    # Completing queues verification and the webhook once the row is committed.
    good = services.complete_upload(upload_file(owner, b"good " * 500, "good.bin"), by=owner)
    bad = services.complete_upload(upload_file(owner, b"bad " * 500, "bad.bin"), by=owner)
    # Something overwrites the finished object with fewer bytes; verification must notice.
    real_s3.client.put_object(Bucket=real_s3.bucket, Key=bad.key, Body=b"truncated")
    recheck = celery_app.send_task("uploads.tasks.verify_upload", args=[str(bad.pk)])

    worker.result_of(recheck.id)
    wait_until(lambda: Upload.objects.get(pk=good.pk).verification == "ok")
    bad.refresh_from_db()
    assert (bad.status, bad.verification) == (Status.FAILED, "mismatch")
    assert bad.failure_reason == f"The object holds 9 bytes, not {len(b'bad ' * 500)}."
    assert Upload.objects.get(pk=good.pk).status == Status.COMPLETED

    # One event per completed file; the one refused with a 500 came again and got a 200.
    received = webhook_receiver.wait_for(3, timeout=TASK_TIMEOUT)
    by_delivery: dict[str, list[int]] = {}
    for request in received:
        by_delivery.setdefault(request.headers["webhook-id"], []).append(request.answered)
        assert request.verified  # by the standardwebhooks library
    assert sorted(by_delivery.values()) == [[200], [500, 200]]
    assert {json.loads(r.body)["data"]["filename"] for r in received} == {"good.bin", "bad.bin"}
    assert "Retry in" in worker.text()
