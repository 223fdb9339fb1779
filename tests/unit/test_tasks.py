"""Celery tasks, called directly (no eager mode), the on-commit scheduling, the signal, and the
webhook's signing and delivery."""

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.dispatch import receiver
from django.utils import timezone

from project.celery import app as celery_app
from tests.factories import UploadFactory, UserFactory, start_in_s3
from tests.support.s3_faults import s3_error
from tests.webhook_receiver import WebhookReceiver, running_receiver
from uploads import services, tasks
from uploads.exceptions import StorageBusy, WebhookFailed
from uploads.models import Upload
from uploads.signals import upload_completed

Status = Upload.Status
DATA = b"partwise " * 100
# A Standard Webhooks secret (`whsec_` + base64), as README says to generate one.
SECRET = "whsec_" + "dGVzdC1vbmx5LXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM="


def start(owner) -> Upload:
    return start_in_s3(owner, filename="data.csv", data=DATA)


class Calls:
    """Stands in for a task's `.delay`, recording the arguments."""

    def __init__(self) -> None:
        self.args: list[tuple] = []

    def __call__(self, *args) -> None:
        self.args.append(args)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with running_receiver(secret=SECRET) as receiver:
        yield receiver


@pytest.fixture
def queued(monkeypatch) -> dict[str, Calls]:
    calls = {"verify_upload": Calls(), "deliver_webhook": Calls()}
    for name, fake in calls.items():
        monkeypatch.setattr(getattr(tasks, name), "delay", fake)
    return calls


# --- tasks are thin over services -----------------------------------------------------------
def test_verify_upload_task_verifies_the_completed_object(storage, user):
    upload = services.complete_upload(start(user), by=user)

    assert tasks.verify_upload(str(upload.pk)) == "ok"
    assert Upload.objects.get(pk=upload.pk).verification == "ok"


def test_verify_upload_task_marks_a_wrong_object_failed(storage, user):
    upload = services.complete_upload(start(user), by=user)
    storage.client.put_object(Bucket=storage.bucket, Key=upload.key, Body=b"truncated")

    assert tasks.verify_upload(str(upload.pk)) == "mismatch"
    assert Upload.objects.get(pk=upload.pk).status == Status.FAILED


def test_verify_upload_task_ignores_an_upload_that_no_longer_exists(db):
    assert tasks.verify_upload("7f1b0c1e-4bb5-4a4b-9c2f-3a1f5a0e9d11") == ""


def test_expire_stale_uploads_task_expires_and_counts(storage, user):
    upload = start(user)
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert tasks.expire_stale_uploads() == 1
    assert Upload.objects.get(pk=upload.pk).status == Status.EXPIRED
    assert storage.list_multipart_uploads("uploads/") == []


@pytest.mark.parametrize(
    ("grace", "aborted"),
    [(100 * 365 * 24 * 3600, 0), (3600, 1)],
    ids=["younger-than-the-grace-period", "older"],
)
def test_reconcile_orphans_task_uses_the_orphan_grace_setting(
    db, storage, settings, grace, aborted
):
    settings.UPLOADS_ORPHAN_GRACE = grace
    storage.create_multipart_upload("uploads/lost/x.bin", content_type="")  # moto: from 2010

    assert tasks.reconcile_orphans() == aborted
    assert len(storage.list_multipart_uploads("uploads/")) == 1 - aborted


def test_the_beat_schedule_names_registered_tasks():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    names = {entry["task"] for entry in schedule.values()}

    assert names == {
        "uploads.tasks.expire_stale_uploads",
        "uploads.tasks.reconcile_orphans",
        "uploads.tasks.prune_settled_parts",
        "uploads.tasks.resend_lost_completions",
    }
    assert names <= set(celery_app.tasks)


# --- retries (Celery's own, run eagerly in this process by `.apply()`) ------------------------
class BusyHeads:
    """HeadObject for the storage's client: 503 SlowDown the next `times` times, then S3's own
    answer; `asked` counts the calls."""

    def __init__(self, real) -> None:
        self.real, self.times, self.asked = real, 0, 0

    def __call__(self, **params):
        self.asked += 1
        if self.times:
            self.times -= 1
            raise s3_error("SlowDown", 503, "HeadObject")
        return self.real(**params)


@pytest.fixture
def busy_heads(storage, monkeypatch) -> BusyHeads:
    fake = BusyHeads(storage.client.head_object)
    monkeypatch.setattr(storage.client, "head_object", fake)
    return fake


def test_verifying_is_retried_while_s3_is_busy_and_then_verifies(storage, user, busy_heads):
    upload = services.complete_upload(start(user), by=user)
    busy_heads.times, busy_heads.asked = 1, 0

    result = tasks.verify_upload.apply(args=[str(upload.pk)])

    assert (result.state, result.result) == ("SUCCESS", "ok")
    assert busy_heads.asked == 2
    assert Upload.objects.get(pk=upload.pk).verification == "ok"


def test_verifying_gives_up_with_the_error_when_s3_stays_busy(storage, user, busy_heads):
    upload = services.complete_upload(start(user), by=user)
    busy_heads.times, busy_heads.asked = 1_000, 0

    result = tasks.verify_upload.apply(args=[str(upload.pk)])

    assert result.state == "FAILURE"
    assert isinstance(result.result, StorageBusy)
    assert 1 < busy_heads.asked < 1_000  # retried, a bounded number of times
    assert Upload.objects.get(pk=upload.pk).verification == ""


def test_a_webhook_answered_with_a_transient_error_is_delivered_by_a_retry(
    settings, webhook_receiver
):
    settings.UPLOADS_WEBHOOK_URL = webhook_receiver.url
    settings.UPLOADS_WEBHOOK_SECRET = SECRET
    webhook_receiver.answers = [503, 500]

    result = tasks.deliver_webhook.apply(args=[event()])

    assert (result.state, result.result) == ("SUCCESS", 200)
    assert [request.answered for request in webhook_receiver.requests] == [503, 500, 200]


# --- scheduling on commit -------------------------------------------------------------------
def test_completing_queues_verification_and_sends_the_signal_after_commit(
    storage, user, queued, django_capture_on_commit_callbacks
):
    upload = start(user)
    received = []

    @receiver(upload_completed)
    def on_completed(sender, upload, **kwargs):
        received.append(upload.pk)

    try:
        with django_capture_on_commit_callbacks() as callbacks:
            services.complete_upload(upload, by=user)
            assert queued["verify_upload"].args == []  # nothing before the commit
            assert received == []
        for callback in callbacks:
            callback()
    finally:
        upload_completed.disconnect(on_completed)

    assert queued["verify_upload"].args == [(str(upload.pk),)]
    assert received == [upload.pk]


def test_completing_again_queues_nothing_new(
    storage, user, queued, django_capture_on_commit_callbacks
):
    upload = services.complete_upload(start(user), by=user)

    with django_capture_on_commit_callbacks() as callbacks:
        services.complete_upload(upload, by=user)

    assert callbacks == []


def test_a_failing_signal_receiver_neither_breaks_completion_nor_other_receivers(
    storage, user, queued, settings, django_capture_on_commit_callbacks, caplog
):
    settings.UPLOADS_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    settings.UPLOADS_WEBHOOK_SECRET = SECRET

    def broken(sender, **kwargs):
        raise RuntimeError("an app's receiver is broken")

    upload_completed.connect(broken, dispatch_uid="test-broken")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.complete_upload(start(user), by=user)
    finally:
        upload_completed.disconnect(dispatch_uid="test-broken")

    assert len(queued["deliver_webhook"].args) == 1  # the webhook receiver still ran
    assert "an app's receiver is broken" in caplog.text


def test_the_webhook_is_queued_with_the_completed_event_when_configured(
    storage, user, queued, settings, django_capture_on_commit_callbacks
):
    settings.UPLOADS_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    settings.UPLOADS_WEBHOOK_SECRET = SECRET
    upload = start(user)

    with django_capture_on_commit_callbacks(execute=True):
        services.complete_upload(upload, by=user)

    [(event,)] = queued["deliver_webhook"].args
    upload.refresh_from_db()
    assert event["type"] == "upload.completed"
    assert event["data"] == {
        "id": str(upload.pk),
        "owner": {"id": user.pk, "username": "alice"},
        "filename": "data.csv",
        "size": len(DATA),
        "content_type": "text/csv",
        "key": upload.key,
        "etag": upload.etag,
        "checksum": upload.checksum,
        "completed_at": upload.completed_at.isoformat(),
    }
    json.dumps(event)  # what Celery will serialise


@pytest.mark.parametrize(
    ("url", "secret"),
    [("", SECRET), ("http://127.0.0.1:9/hook", "")],
    ids=["no-url", "no-secret"],
)
def test_no_webhook_is_queued_without_a_url_and_a_secret(
    storage, user, queued, settings, django_capture_on_commit_callbacks, url, secret
):
    settings.UPLOADS_WEBHOOK_URL = url
    settings.UPLOADS_WEBHOOK_SECRET = secret

    with django_capture_on_commit_callbacks(execute=True):
        services.complete_upload(start(user), by=user)

    assert queued["deliver_webhook"].args == []
    assert len(queued["verify_upload"].args) == 1


# --- webhook delivery ------------------------------------------------------------------------
def event() -> dict:
    return {"id": "evt-1", "type": "upload.completed", "created_at": "now", "data": {"id": "u1"}}


def test_the_webhook_is_delivered_signed_to_the_receiver(settings, webhook_receiver):
    settings.UPLOADS_WEBHOOK_URL = webhook_receiver.url
    settings.UPLOADS_WEBHOOK_SECRET = SECRET

    assert tasks.deliver_webhook(event()) == 200

    [request] = webhook_receiver.requests
    assert request.path == "/hooks/partwise"
    assert json.loads(request.body) == event()
    assert request.headers["webhook-id"] == "evt-1"  # the event id: the same on every retry
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.verified  # by the standardwebhooks library, as README's receiver does


@pytest.mark.parametrize("status", [500, 503, 429, 408], ids=str)
def test_a_webhook_answered_with_a_transient_error_raises_for_a_retry(
    settings, webhook_receiver, status
):
    settings.UPLOADS_WEBHOOK_URL = webhook_receiver.url
    settings.UPLOADS_WEBHOOK_SECRET = SECRET
    webhook_receiver.answers = [status]

    with pytest.raises(WebhookFailed):
        tasks.deliver_webhook(event())


def test_a_webhook_refused_with_a_client_error_is_not_retried(settings, webhook_receiver):
    settings.UPLOADS_WEBHOOK_URL = webhook_receiver.url
    settings.UPLOADS_WEBHOOK_SECRET = SECRET
    webhook_receiver.answers = [410]

    assert tasks.deliver_webhook(event()) == 410


def test_an_unreachable_webhook_raises_for_a_retry(settings):
    from project.dev.seaweedfs import free_port

    settings.UPLOADS_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/hook"
    settings.UPLOADS_WEBHOOK_SECRET = SECRET

    with pytest.raises(WebhookFailed, match="could not be reached"):
        tasks.deliver_webhook(event())


# --- completions whose announcement was lost ------------------------------------------------
def test_a_completion_unverified_past_the_setting_is_announced_again(db, settings):
    settings.UPLOADS_VERIFY_OVERDUE_AFTER = 3600
    announced: list[str] = []

    @receiver(upload_completed, dispatch_uid="test-announced")
    def record(sender, upload, **kwargs) -> None:
        announced.append(str(upload.pk))

    try:
        an_hour_ago = timezone.now() - timedelta(hours=1, minutes=1)
        lost = UploadFactory(completed=True, completed_at=an_hour_ago)
        UploadFactory(completed=True)  # its announcement may still be on its way
        UploadFactory(completed=True, completed_at=an_hour_ago, verification="ok")
        UploadFactory(completed=True, completed_at=an_hour_ago, verification="mismatch")
        UploadFactory(status="uploading")

        assert tasks.resend_lost_completions() == 1
    finally:
        upload_completed.disconnect(dispatch_uid="test-announced")
    assert announced == [str(lost.pk)]


def test_an_announced_again_completion_is_verified_and_its_webhook_keeps_its_event_id(
    db, storage, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.UPLOADS_VERIFY_OVERDUE_AFTER = 0
    settings.UPLOADS_WEBHOOK_URL, settings.UPLOADS_WEBHOOK_SECRET = "http://127.0.0.1:9/", SECRET
    sent: list[dict] = []
    monkeypatch.setattr(tasks.deliver_webhook, "delay", sent.append)
    # The worker, run in this process: the queued verification runs at once.
    monkeypatch.setattr(
        tasks.verify_upload, "delay", lambda upload_id: tasks.verify_upload(upload_id)
    )
    upload = start_in_s3(UserFactory(), filename="a.bin", data=b"x" * 10)
    with django_capture_on_commit_callbacks(execute=True):
        upload = services.complete_upload(upload, by=upload.owner)
    first_event = sent[0]["id"]
    Upload.objects.filter(pk=upload.pk).update(verification="")  # as if its task was lost

    with django_capture_on_commit_callbacks(execute=True):
        assert services.resend_lost_completions() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert services.resend_lost_completions() == 0  # verified by now

    assert Upload.objects.get(pk=upload.pk).verification == "ok"
    assert [event["id"] for event in sent] == [first_event, first_event]
