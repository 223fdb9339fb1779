"""The edges the security review found (issue "Hardening"), held at the service level.

Each test names the defect it holds: the key segment of long non-ASCII names (6), the size cap
on unplanned uploads (1), a completion whose outcome and settling HEAD both fail (3), the
quotas (13), the Uppy completion that must leave strays out (16). The HTTP-level attacks are
rows of the bad-input catalogue (test_bad_input.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.exceptions import ConnectionClosedError
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from tests.support.s3_faults import s3_answers, s3_error
from tests.support.uploads import DATA, put_part, start, upload_part
from uploads import selectors, services
from uploads.exceptions import QuotaExceeded, StorageFailed, UploadTooLarge
from uploads.models import Upload
from uploads.parts import MiB, ReportedPart
from uploads.services.state import COMPLETION_TAKEOVER_AFTER
from uploads.services.validation import MAX_KEY_SEGMENT_BYTES, key_segment

pytestmark = pytest.mark.django_db
Status = Upload.Status


# --- 6: a key's name segment fits every store's 255-byte path segment --------------------------
def test_a_long_cjk_name_gets_a_key_segment_of_at_most_255_bytes_with_its_extension():
    name = "文" * 88 + ".pdf"  # 268 bytes of UTF-8

    segment = key_segment(name)

    assert len(segment.encode()) <= MAX_KEY_SEGMENT_BYTES
    assert segment.endswith(".pdf")
    assert segment.startswith("文" * 10)


def test_the_upload_of_a_long_non_ascii_name_keeps_its_name_and_a_short_key(storage, user):
    name = "長い名前" * 30 + ".mkv"

    upload, _ = services.start_upload(owner=user, filename=name, size=1)

    assert upload.filename == name
    assert len(upload.key.rsplit("/", 1)[1].encode()) <= MAX_KEY_SEGMENT_BYTES


@given(st.text(min_size=1, max_size=400))
def test_any_name_gives_a_short_safe_key_segment(name):
    segment = key_segment(name)
    assert 0 < len(segment.encode()) <= MAX_KEY_SEGMENT_BYTES
    assert "/" not in segment
    assert "\\" not in segment
    assert segment not in {".", ".."}


# --- 1: the size cap holds for uploads that declared no size (the Uppy routes) --------------------
def test_an_unplanned_upload_over_the_cap_is_refused_at_completion_and_aborted(
    storage, user, settings
):
    settings.UPLOADS_MAX_SIZE = 6 * MiB
    upload, _ = services.start_upload(owner=user, filename="big.bin", size=None)
    for number, body in ((1, DATA[: 5 * MiB]), (2, DATA[: 2 * MiB])):
        upload_part(storage, upload.key, upload.s3_upload_id, number, body)

    with pytest.raises(UploadTooLarge):
        services.complete_upload(upload, by=user)

    upload.refresh_from_db()
    assert upload.status == Status.ABORTED
    assert "7340032 bytes" in upload.failure_reason
    assert storage.list_multipart_uploads(upload.key) == []
    assert storage.head_object(upload.key) is None


def test_an_unplanned_upload_within_the_cap_completes(storage, user, settings):
    settings.UPLOADS_MAX_SIZE = 6 * MiB
    upload, _ = services.start_upload(owner=user, filename="ok.bin", size=None)
    upload_part(storage, upload.key, upload.s3_upload_id, 1, DATA[: 6 * MiB])

    assert services.complete_upload(upload, by=user).size == 6 * MiB


# --- 16: Uppy's completion is exactly the parts it lists ---------------------------------------
def test_completing_with_the_listed_parts_leaves_a_stray_part_out(storage, user):
    upload, _ = services.start_upload(owner=user, filename="uppy.bin", size=None)
    etags = [
        upload_part(storage, upload.key, upload.s3_upload_id, n, DATA[: 5 * MiB]) for n in (1, 2, 3)
    ]
    listed = [ReportedPart(number=n, etag=etags[n - 1]) for n in (1, 2)]

    done = services.record_parts_and_complete(upload, parts=listed, by=user)

    assert done.status == Status.COMPLETED
    assert done.size == 10 * MiB
    assert storage.head_object(upload.key).size == 10 * MiB


# --- 3: an unknown outcome that cannot be settled gives the upload back -----------------------
def test_a_completion_whose_outcome_and_settling_head_both_fail_can_be_retried(
    storage, user, monkeypatch
):
    upload = start(user)
    for number in (1, 2, 3):
        put_part(storage, upload, number)
    real_complete = storage.client.complete_multipart_upload
    real_head = storage.client.head_object
    dropped = ConnectionClosedError(endpoint_url="http://s3")
    monkeypatch.setattr(
        storage.client, "complete_multipart_upload", s3_answers(dropped, then=real_complete)
    )
    monkeypatch.setattr(
        storage.client, "head_object", s3_answers(s3_error("503", 503), then=real_head)
    )

    with pytest.raises(StorageFailed):
        services.complete_upload(upload, by=user)
    assert Upload.objects.get(pk=upload.pk).status == Status.UPLOADING

    assert services.complete_upload(upload, by=user).status == Status.COMPLETED


def test_the_expiry_task_settles_a_completion_that_died(storage, user):
    upload = start(user)
    for number in (1, 2, 3):
        put_part(storage, upload, number)
    long_ago = timezone.now() - COMPLETION_TAKEOVER_AFTER - timedelta(seconds=1)
    Upload.objects.filter(pk=upload.pk).update(status=Status.COMPLETING, updated_at=long_ago)

    from uploads import tasks

    tasks.expire_stale_uploads()

    assert Upload.objects.get(pk=upload.pk).status == Status.UPLOADING  # resumable again


def test_a_fresh_completion_is_left_to_its_call(storage, user):
    upload = start(user)
    Upload.objects.filter(pk=upload.pk).update(status=Status.COMPLETING)

    assert services.settle_dead_completions().changed == 0
    assert Upload.objects.get(pk=upload.pk).status == Status.COMPLETING


# --- 13: quotas on open uploads ---------------------------------------------------------------
def test_the_open_upload_count_is_capped_and_aborting_frees_room(storage, user, settings):
    settings.UPLOADS_USER_MAX_OPEN_UPLOADS = 2
    first, second = start(user), start(user)

    with pytest.raises(QuotaExceeded) as caught:
        start(user)
    assert caught.value.extra["limit"] == "UPLOADS_USER_MAX_OPEN_UPLOADS"
    assert len(storage.list_multipart_uploads("")) == 2  # the refused one cost S3 nothing

    services.abort_upload(first, by=user)
    assert start(user).status == Status.UPLOADING
    assert second.status == Status.UPLOADING


def test_the_open_bytes_are_capped_per_user(storage, user, other_user, settings):
    settings.UPLOADS_USER_MAX_OPEN_BYTES = 20 * MiB
    start(user, size=11 * MiB)

    with pytest.raises(QuotaExceeded) as caught:
        start(user, size=10 * MiB)
    assert caught.value.extra["limit"] == "UPLOADS_USER_MAX_OPEN_BYTES"
    assert start(other_user, size=11 * MiB)  # another user's room is their own
    assert selectors.open_usage(user) == selectors.OpenUsage(uploads=1, bytes=11 * MiB)


def test_a_completed_upload_frees_its_room(storage, user, settings):
    settings.UPLOADS_USER_MAX_OPEN_UPLOADS = 1
    upload = start(user)
    for number in (1, 2, 3):
        put_part(storage, upload, number)
    services.complete_upload(upload, by=user)

    assert start(user).status == Status.UPLOADING


def test_over_the_quota_the_api_answers_403_naming_the_limit(api_client, storage, settings):
    settings.UPLOADS_USER_MAX_OPEN_UPLOADS = 1
    body = {"filename": "a.bin", "size": 10}
    assert api_client.post("/api/uploads/", body, format="json").status_code == 201

    refused = api_client.post("/api/uploads/", body, format="json")

    assert refused.status_code == 403
    assert refused.json()["code"] == "quota_exceeded"
    assert refused.json()["limit"] == "UPLOADS_USER_MAX_OPEN_UPLOADS"
    assert "UPLOADS_USER_MAX_OPEN_UPLOADS = 1" in refused.json()["detail"]
    assert Upload.objects.count() == 1
