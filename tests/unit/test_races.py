"""Races and recoveries of the state machine: a call that loses, and a call that died."""

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.uploads import put_all, start
from uploads import services
from uploads.exceptions import UploadConflict
from uploads.models import Upload, UploadPart
from uploads.services import state


@pytest.fixture
def owner(user):
    return user


def test_signing_loses_to_an_abort_that_landed_after_the_upload_was_read(storage, owner):
    upload = start(owner)
    stale_copy = Upload.objects.get(pk=upload.pk)  # read by the sign request…
    services.abort_upload(upload, by=owner)  # …while another request aborts it
    with pytest.raises(UploadConflict):
        services.sign_parts(stale_copy, parts=[services.PartToSign(1)], by=owner)
    assert not UploadPart.objects.filter(upload=upload).exists()


def test_reporting_loses_to_an_abort_that_landed_after_the_upload_was_read(storage, owner):
    upload = start(owner)
    stale_copy = Upload.objects.get(pk=upload.pk)
    services.abort_upload(upload, by=owner)
    with pytest.raises(UploadConflict):
        services.record_parts(stale_copy, parts=[services.ReportedPart(1, "a" * 32)], by=owner)
    assert not UploadPart.objects.filter(upload=upload).exists()


def test_a_completion_in_progress_is_not_taken_over(storage, owner, monkeypatch):
    monkeypatch.setattr(state, "COMPLETION_WAIT", 0)  # nobody will finish it here
    upload = start(owner)
    put_all(storage, upload)
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.COMPLETING)
    upload.refresh_from_db()
    with pytest.raises(UploadConflict):
        services.complete_upload(upload, by=owner)
    assert Upload.objects.get(pk=upload.pk).status == Upload.Status.COMPLETING


def test_a_completion_abandoned_by_a_dead_process_is_taken_over_at_once_and_finished(
    storage, owner, monkeypatch
):
    upload = start(owner)
    put_all(storage, upload)
    long_ago = timezone.now() - services.COMPLETION_TAKEOVER_AFTER - timedelta(seconds=1)
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.COMPLETING, updated_at=long_ago)
    upload.refresh_from_db()

    def no_waiting(seconds):
        raise AssertionError("an abandoned completion is not waited for")

    monkeypatch.setattr(state.time, "sleep", no_waiting)
    done = services.complete_upload(upload, by=owner)
    assert done.status == Upload.Status.COMPLETED
    assert storage.head_object(upload.key).size == upload.size


@pytest.mark.django_db(transaction=True)  # the heartbeat writes from its own thread
def test_a_completion_slower_than_the_take_over_window_keeps_its_claim_alive(
    storage, owner, monkeypatch
):
    monkeypatch.setattr(state, "COMPLETION_HEARTBEAT", 0.05)
    monkeypatch.setattr(state, "COMPLETION_TAKEOVER_AFTER", timedelta(seconds=0.3))
    upload = start(owner)
    put_all(storage, upload)
    seen_while_completing = []
    complete_in_s3 = storage.complete_multipart_upload

    def slow_complete(*args, **kwargs):
        # S3 takes several take-over windows; a retry meanwhile must find the claim alive.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            row = Upload.objects.get(pk=upload.pk)
            seen_while_completing.append(state.completion_is_abandoned(row))
            assert not state.take_over_dead_completion(row)
            time.sleep(0.1)
        return complete_in_s3(*args, **kwargs)

    monkeypatch.setattr(storage, "complete_multipart_upload", slow_complete)
    done = services.complete_upload(upload, by=owner, storage=storage)

    assert done.status == Upload.Status.COMPLETED
    assert len(seen_while_completing) >= 5
    assert not any(seen_while_completing)
    assert not any(thread.name.startswith("completing-") for thread in threading.enumerate())


def test_a_completion_that_stopped_renewing_its_claim_is_not_waited_for(
    storage, owner, monkeypatch
):
    upload = start(owner)
    put_all(storage, upload)
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.COMPLETING)
    upload.refresh_from_db()
    assert not state.completion_is_abandoned(upload)
    later = timezone.now() + services.COMPLETION_TAKEOVER_AFTER + timedelta(seconds=1)
    monkeypatch.setattr(state.timezone, "now", lambda: later)
    assert state.completion_is_abandoned(upload)
    assert state.take_over_dead_completion(upload)
    assert upload.status == Upload.Status.UPLOADING
