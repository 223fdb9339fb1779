"""Races and recoveries of the state machine: a call that loses, and a call that died."""

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


def test_a_completion_abandoned_by_a_dead_process_is_taken_over_and_finished(storage, owner):
    upload = start(owner)
    put_all(storage, upload)
    long_ago = timezone.now() - services.COMPLETION_TAKEOVER_AFTER - timedelta(seconds=1)
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.COMPLETING, updated_at=long_ago)
    upload.refresh_from_db()
    done = services.complete_upload(upload, by=owner)
    assert done.status == Upload.Status.COMPLETED
    assert storage.head_object(upload.key).size == upload.size
