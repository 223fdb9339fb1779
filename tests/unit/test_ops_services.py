"""The operations services: expiry, orphans, reconciliation, verification, expiry extension.

Uploads here are real: started through `start_upload` against moto, with parts PUT to moto, so
S3's side (ListMultipartUploads, ListParts, HeadObject) is what the services really see.
"""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import UploadFactory, start_in_s3
from tests.support.checksums import sha256_b64
from uploads import selectors, services
from uploads.exceptions import InvalidInput, StorageBusy, StorageFailed
from uploads.models import Upload, UploadPart
from uploads.services import cleanup as cleanup_service
from uploads.storage import MultipartStorage, StoredPart

Status = Upload.Status
DATA = b"partwise " * 200


def start(owner, data: bytes = DATA, *, checksum: bool = False, put: bool = True) -> Upload:
    """An upload started in S3 (moto) with its single part PUT (not reported)."""
    return start_in_s3(owner, filename="report.pdf", data=data, put=put, checksum=checksum)


def completed(owner, data: bytes = DATA, *, checksum: bool = False) -> Upload:
    upload = start(owner, data, checksum=checksum)
    return services.complete_upload(upload, by=owner)


def in_progress(storage: MultipartStorage) -> set[tuple[str, str]]:
    return {(item.key, item.s3_upload_id) for item in storage.list_multipart_uploads("")}


def make_stale(upload: Upload) -> None:
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now() - timedelta(minutes=1))


# --- expire_stale_uploads ------------------------------------------------------------------
def test_expiry_aborts_a_stale_upload_in_s3_and_marks_it_expired(storage, user):
    upload = start(user)
    make_stale(upload)

    expired = services.expire_stale_uploads()

    assert [u.pk for u in expired] == [upload.pk]
    upload.refresh_from_db()
    assert upload.status == Status.EXPIRED
    assert (upload.key, upload.s3_upload_id) not in in_progress(storage)


def test_expiry_leaves_fresh_completed_and_completing_uploads_alone(storage, user):
    fresh = start(user)
    done = completed(user)
    completing = start(user)
    Upload.objects.filter(pk=completing.pk).update(status=Status.COMPLETING)
    for upload in (done, completing):
        make_stale(upload)
    object_before = storage.head_object(done.key)

    assert services.expire_stale_uploads() == []

    statuses = dict(Upload.objects.values_list("pk", "status"))
    assert statuses == {
        fresh.pk: Status.UPLOADING,
        done.pk: Status.COMPLETED,
        completing.pk: Status.COMPLETING,
    }
    assert storage.head_object(done.key) == object_before
    assert {(fresh.key, fresh.s3_upload_id), (completing.key, completing.s3_upload_id)} <= (
        in_progress(storage)
    )


def test_expiry_also_expires_a_failed_upload_that_never_made_an_object(storage, user):
    upload = start(user)
    Upload.objects.filter(pk=upload.pk).update(status=Status.FAILED)
    make_stale(upload)

    assert len(services.expire_stale_uploads()) == 1
    assert Upload.objects.get(pk=upload.pk).status == Status.EXPIRED


def test_expiry_dry_run_lists_the_stale_uploads_and_changes_nothing(storage, user):
    upload = start(user)
    make_stale(upload)

    assert [u.pk for u in services.expire_stale_uploads(dry_run=True)] == [upload.pk]
    assert Upload.objects.get(pk=upload.pk).status == Status.UPLOADING
    assert (upload.key, upload.s3_upload_id) in in_progress(storage)


def test_expiry_repeats_the_abort_while_list_parts_still_shows_parts(storage, user, monkeypatch):
    upload = start(user)
    make_stale(upload)
    real_list_parts = storage.list_parts
    aborts = []
    real_abort = storage.abort_multipart_upload

    def abort(key, upload_id):
        aborts.append(key)
        # Only the first abort "misses" a part that lands after it; the second one is real.
        return True if len(aborts) == 1 else real_abort(key, upload_id)

    def list_parts(key, upload_id):
        if len(aborts) == 1:
            return [StoredPart(number=1, size=len(DATA), etag="e" * 32)]
        return real_list_parts(key, upload_id)

    monkeypatch.setattr(storage, "abort_multipart_upload", abort)
    monkeypatch.setattr(storage, "list_parts", list_parts)

    services.expire_stale_uploads()

    assert aborts == [upload.key, upload.key]
    assert (upload.key, upload.s3_upload_id) not in in_progress(storage)


def test_expiry_counts_an_upload_s3_no_longer_knows_as_done(storage, user):
    upload = start(user)
    storage.abort_multipart_upload(upload.key, upload.s3_upload_id)  # e.g. the lifecycle rule
    make_stale(upload)

    assert len(services.expire_stale_uploads()) == 1
    assert Upload.objects.get(pk=upload.pk).status == Status.EXPIRED


def test_when_s3_fails_the_expired_upload_becomes_an_orphan_the_sweep_aborts(
    storage, user, monkeypatch
):
    upload = start(user)
    make_stale(upload)

    def refuse(key, upload_id):
        raise StorageBusy("S3 refused AbortMultipartUpload (SlowDown).", s3_code="SlowDown")

    with monkeypatch.context() as patch:
        patch.setattr(storage, "abort_multipart_upload", refuse)
        assert len(services.expire_stale_uploads()) == 1

    assert Upload.objects.get(pk=upload.pk).status == Status.EXPIRED
    [orphan] = services.find_orphans()
    assert (orphan.key, orphan.upload_pk, orphan.upload_status) == (
        upload.key,
        upload.pk,
        Status.EXPIRED,
    )
    assert [o.s3_upload_id for o in services.reconcile_orphans(older_than=0)] == [
        orphan.s3_upload_id
    ]
    assert in_progress(storage) == set()


# --- orphans -------------------------------------------------------------------------------
def test_an_s3_upload_without_a_row_is_an_orphan_only_once_past_the_grace_period(storage, user):
    start(user)  # a live upload: never an orphan
    lost_id = storage.create_multipart_upload("uploads/lost/file.bin", content_type="")
    [orphan] = services.find_orphans()
    assert (orphan.key, orphan.s3_upload_id, orphan.upload_pk) == (
        "uploads/lost/file.bin",
        lost_id,
        None,
    )
    young = orphan.initiated + timedelta(minutes=30)

    assert services.reconcile_orphans(older_than=3600, now=young) == []
    assert ("uploads/lost/file.bin", lost_id) in in_progress(storage)

    old = orphan.initiated + timedelta(hours=2)
    assert [o.s3_upload_id for o in services.reconcile_orphans(older_than=3600, now=old)] == [
        lost_id
    ]
    assert ("uploads/lost/file.bin", lost_id) not in in_progress(storage)


def test_the_orphan_sweep_never_touches_keys_outside_the_prefix(storage):
    outside = storage.create_multipart_upload("elsewhere/file.bin", content_type="")
    lookalike = storage.create_multipart_upload("uploadsX/file.bin", content_type="")

    assert services.find_orphans() == []
    assert services.reconcile_orphans(older_than=0) == []
    assert {("elsewhere/file.bin", outside), ("uploadsX/file.bin", lookalike)} <= in_progress(
        storage
    )


def test_the_orphan_sweep_leaves_completed_objects_alone(storage, user):
    done = completed(user)
    before = storage.head_object(done.key)

    services.reconcile_orphans(older_than=0)

    assert storage.head_object(done.key) == before


def test_the_orphan_sweep_skips_a_prefix_that_a_server_ignored(storage, monkeypatch):
    # A server that ignores Prefix answers every key: the sweep filters again itself.
    outside = storage.create_multipart_upload("elsewhere/file.bin", content_type="")
    real = storage.list_multipart_uploads
    monkeypatch.setattr(storage, "list_multipart_uploads", lambda p: real(""))

    assert services.reconcile_orphans(older_than=0) == []
    assert ("elsewhere/file.bin", outside) in in_progress(storage)


def test_orphans_are_found_among_many_uploads_looked_up_in_chunks(storage, user, monkeypatch):
    monkeypatch.setattr(cleanup_service, "_ORPHAN_LOOKUP_CHUNK", 2)
    live = [start(user, put=False) for _ in range(3)]
    lost = [storage.create_multipart_upload(f"uploads/lost/{n}", content_type="") for n in range(2)]
    # Same key as a live row, but another S3 upload: not that row's, so an orphan too.
    stray = storage.create_multipart_upload(live[0].key, content_type="")

    found = {orphan.s3_upload_id for orphan in services.find_orphans()}

    assert found == {*lost, stray}


def test_cleanup_refuses_to_run_with_an_empty_key_prefix(storage, settings):
    settings.UPLOADS_KEY_PREFIX = ""
    with pytest.raises(ImproperlyConfigured):
        services.reconcile_orphans(older_than=0)


def test_abort_orphans_aborts_only_the_chosen_pairs_that_are_still_orphans(storage, user):
    live = start(user)
    lost_a = storage.create_multipart_upload("uploads/lost/a", content_type="")
    lost_b = storage.create_multipart_upload("uploads/lost/b", content_type="")

    aborted = services.abort_orphans(
        [("uploads/lost/a", lost_a), (live.key, live.s3_upload_id), ("elsewhere/x", "nope")]
    )

    assert [o.s3_upload_id for o in aborted] == [lost_a]
    assert in_progress(storage) == {("uploads/lost/b", lost_b), (live.key, live.s3_upload_id)}


# --- verify_upload -------------------------------------------------------------------------
def test_verification_records_ok_for_an_object_as_completed(storage, user):
    upload = completed(user)

    services.verify_upload(upload)

    upload.refresh_from_db()
    assert (upload.status, upload.verification) == (Status.COMPLETED, "ok")
    assert upload.verified_at is not None


def test_verification_checks_the_checksum_the_signed_parts_compose_to(storage, user):
    upload = completed(user, checksum=True)
    assert services.composite_checksum(upload)  # known, so it is checked

    assert services.verify_upload(upload).verification == "ok"


def test_verification_fails_an_upload_whose_parts_checksums_do_not_match_the_object(storage, user):
    upload = completed(user, checksum=True)
    other = sha256_b64(b"other bytes")
    UploadPart.objects.filter(upload=upload).update(checksum=other)

    services.verify_upload(upload)

    upload.refresh_from_db()
    assert (upload.status, upload.verification) == (Status.FAILED, "mismatch")
    assert "checksum" in upload.failure_reason


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda s, u: s.client.put_object(Bucket=s.bucket, Key=u.key, Body=b"short"), "5 bytes"),
        (lambda s, u: s.client.put_object(Bucket=s.bucket, Key=u.key, Body=DATA[::-1]), "ETag"),
        (lambda s, u: s.client.delete_object(Bucket=s.bucket, Key=u.key), "missing"),
    ],
    ids=["wrong-size", "overwritten-same-size", "deleted"],
)
def test_verification_marks_the_upload_failed_when_the_object_is_wrong(
    storage, user, tamper, reason
):
    upload = completed(user)
    tamper(storage, upload)

    services.verify_upload(upload)

    upload.refresh_from_db()
    assert (upload.status, upload.verification) == (Status.FAILED, "mismatch")
    assert reason in upload.failure_reason
    assert upload.completed_at is not None  # it did complete; the object went wrong after


@pytest.mark.parametrize("status", [Status.UPLOADING, Status.ABORTED], ids=str)
def test_verification_leaves_uploads_that_are_not_completed_alone(db, status):
    upload = UploadFactory(status=status)
    assert services.verify_upload(upload).verification == ""
    assert Upload.objects.get(pk=upload.pk).status == status


# --- reconcile_upload ----------------------------------------------------------------------
def test_reconcile_records_parts_s3_holds_that_were_never_reported(storage, user):
    upload = start(user)

    assert services.reconcile_upload(upload) is True

    upload.refresh_from_db()
    assert (upload.parts_uploaded, upload.bytes_uploaded) == (1, len(DATA))
    assert services.reconcile_upload(upload) is False  # nothing new the second time


def test_reconcile_expires_an_upload_that_s3_no_longer_has(storage, user):
    upload = start(user)
    storage.abort_multipart_upload(upload.key, upload.s3_upload_id)

    assert services.reconcile_upload(upload) is True
    upload.refresh_from_db()
    assert upload.status == Status.EXPIRED
    assert "no longer" in upload.failure_reason


def test_reconcile_settles_a_completion_that_died_after_s3_completed(
    storage, user, django_capture_on_commit_callbacks
):
    upload = start(user)
    services.complete_upload(upload, by=user)
    Upload.objects.filter(pk=upload.pk).update(status=Status.COMPLETING, completed_at=None)
    upload.refresh_from_db()

    with django_capture_on_commit_callbacks() as callbacks:
        assert services.reconcile_upload(upload) is True

    assert Upload.objects.get(pk=upload.pk).status == Status.COMPLETED
    assert len(callbacks) == 1  # upload_completed, whose receivers queue the verification


def test_reconcile_puts_a_stuck_completion_back_to_uploading_when_s3_still_has_the_parts(
    storage, user
):
    upload = start(user)
    Upload.objects.filter(pk=upload.pk).update(status=Status.COMPLETING)
    upload.refresh_from_db()

    assert services.reconcile_upload(upload) is True
    assert Upload.objects.get(pk=upload.pk).status == Status.UPLOADING


def test_reconcile_fails_a_stuck_completion_when_s3_has_neither_upload_nor_object(storage, user):
    upload = start(user)
    storage.abort_multipart_upload(upload.key, upload.s3_upload_id)
    Upload.objects.filter(pk=upload.pk).update(status=Status.COMPLETING)
    upload.refresh_from_db()

    services.reconcile_upload(upload)

    upload.refresh_from_db()
    assert upload.status == Status.FAILED
    assert "neither" in upload.failure_reason


def test_reconcile_uploads_reports_s3_failures_and_goes_on(storage, user, monkeypatch):
    good = start(user)
    bad = start(user)
    real = storage.list_parts

    def list_parts(key, upload_id):
        if key == bad.key:
            raise StorageBusy("S3 refused ListParts (InternalError).", s3_code="InternalError")
        return real(key, upload_id)

    monkeypatch.setattr(storage, "list_parts", list_parts)

    result = services.reconcile_uploads(Upload.objects.filter(pk__in=[good.pk, bad.pk]))

    assert (result.changed, result.unchanged) == (1, 0)
    assert len(result.errors) == 1
    assert str(bad.pk) in result.errors[0]


# --- abort_uploads / extend_expiry ---------------------------------------------------------
def test_abort_uploads_aborts_unfinished_ones_and_refuses_completed_ones(storage, user):
    unfinished = start(user)
    done = completed(user)

    result = services.abort_uploads(Upload.objects.filter(pk__in=[unfinished.pk, done.pk]))

    assert result.changed == 1
    assert len(result.errors) == 1
    assert str(done.pk) in result.errors[0]
    assert dict(Upload.objects.values_list("pk", "status")) == {
        unfinished.pk: Status.ABORTED,
        done.pk: Status.COMPLETED,
    }
    assert in_progress(storage) == set()
    assert storage.head_object(done.key) is not None


def test_extend_expiry_pushes_unfinished_uploads_from_now_when_already_past(db):
    now = timezone.now()
    past = UploadFactory(expires_at=now - timedelta(days=2))
    future = UploadFactory(expires_at=now + timedelta(days=1))
    done = UploadFactory(completed=True, expires_at=now - timedelta(days=2))

    result = services.extend_expiry([past, future, done], by=timedelta(days=7), abort_days=None)

    assert result.extended == 2
    expiry = dict(Upload.objects.values_list("pk", "expires_at"))
    assert now + timedelta(days=7) <= expiry[past.pk] <= timezone.now() + timedelta(days=7)
    assert expiry[future.pk] == future.expires_at + timedelta(days=7)
    assert expiry[done.pk] == done.expires_at


def test_extend_expiry_refuses_a_non_positive_extension(db):
    with pytest.raises(InvalidInput):
        services.extend_expiry([], by=timedelta(0), abort_days=None)


def started(days_ago: float, **expiry) -> Upload:
    """An upload started `days_ago` (created_at is set on insert, so it is moved after)."""
    upload = UploadFactory(**expiry)
    created_at = timezone.now() - timedelta(days=days_ago)
    Upload.objects.filter(pk=upload.pk).update(created_at=created_at)
    upload.refresh_from_db()
    return upload


def test_extend_expiry_never_passes_the_date_the_lifecycle_rule_aborts_the_parts_in_s3(db):
    """S3 drops the parts on its own date: an expiry after it would promise what S3 won't keep."""
    now = timezone.now()
    # The rule aborts 8 days after initiation, at the next midnight UTC.
    young = started(0, expires_at=now + timedelta(days=1))
    older = started(6, expires_at=now + timedelta(days=1))  # S3 aborts it in 2 to 3 days
    at_limit = started(5)
    limit = selectors.lifecycle_abort_date(at_limit.created_at, 8)
    Upload.objects.filter(pk=at_limit.pk).update(expires_at=limit)

    result = services.extend_expiry([young, older, at_limit], by=timedelta(days=2), abort_days=8)

    assert (result.extended, result.capped, result.at_lifecycle_limit) == (2, 1, 1)
    expiry = dict(Upload.objects.values_list("pk", "expires_at"))
    assert expiry[young.pk] == young.expires_at + timedelta(days=2)  # well inside the rule
    assert expiry[older.pk] == selectors.lifecycle_abort_date(older.created_at, 8)
    assert expiry[at_limit.pk] == limit
    assert Upload.objects.get(pk=older.pk).updated_at == older.updated_at  # not an activity


def test_extend_expiry_leaves_an_upload_alone_once_s3_has_aborted_its_parts(db):
    gone = started(10, expires_at=timezone.now() - timedelta(days=3))

    result = services.extend_expiry([gone], by=timedelta(days=7), abort_days=7)

    assert (result.extended, result.at_lifecycle_limit) == (0, 1)
    assert Upload.objects.get(pk=gone.pk).expires_at == gone.expires_at


# --- lifecycle ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rules", "days"),
    [
        ([], None),
        ([{"Filter": {"Prefix": "uploads/"}, "days": 8}], 8),
        ([{"Filter": {"Prefix": ""}, "days": 3}, {"Filter": {"Prefix": "uploads/"}, "days": 8}], 3),
        ([{"Filter": {"Prefix": "other/"}, "days": 8}], None),
        ([{"Filter": {"Prefix": "uploads/"}, "days": 8, "Status": "Disabled"}], None),
    ],
    ids=["no-rule", "our-prefix", "whole-bucket-wins", "other-prefix", "disabled"],
)
def test_lifecycle_abort_days_reads_the_rule_that_covers_the_key_prefix(storage, rules, days):
    if rules:
        storage.client.put_bucket_lifecycle_configuration(
            Bucket=storage.bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": f"rule{i}",
                        "Status": rule.get("Status", "Enabled"),
                        "Filter": rule["Filter"],
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": rule["days"]},
                    }
                    for i, rule in enumerate(rules)
                ]
            },
        )
    assert selectors.lifecycle_abort_days() == days


def test_lifecycle_abort_days_is_none_when_s3_cannot_answer(storage, monkeypatch):
    def fail():
        raise StorageFailed("S3 could not be reached.")

    monkeypatch.setattr(storage, "get_bucket_lifecycle_configuration", fail)
    assert selectors.lifecycle_abort_days() is None


@pytest.mark.parametrize(
    ("initiated", "expected"),
    [
        (datetime(2026, 3, 1, 10, 30, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)),
        (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC)),
    ],
    ids=["rounded-up-to-midnight", "already-midnight"],
)
def test_s3_aborts_at_the_midnight_utc_after_initiation_plus_the_days(initiated, expected):
    assert selectors.lifecycle_abort_date(initiated, 7) == expected


# --- the cleanup_uploads command -----------------------------------------------------------
def cleanup(*args: str) -> str:
    out = StringIO()
    call_command("cleanup_uploads", *args, stdout=out)
    return out.getvalue()


def test_cleanup_uploads_expires_and_sweeps_and_prints_what_it_aborted(storage, user):
    stale = start(user)
    make_stale(stale)
    fresh = start(user)
    lost = storage.create_multipart_upload("uploads/lost/file.bin", content_type="")

    output = cleanup("--orphan-grace", "3600")  # moto dates the orphan in 2010: old enough

    assert f"aborted expired upload {stale.pk} {stale.key} (owner alice" in output
    assert f"aborted orphan uploads/lost/file.bin (S3 upload id {lost}" in output
    assert "\n1 expired uploads and 1 orphans aborted.\n" in output
    assert Upload.objects.get(pk=stale.pk).status == Status.EXPIRED
    assert in_progress(storage) == {(fresh.key, fresh.s3_upload_id)}


def test_cleanup_uploads_dry_run_prints_and_changes_nothing(storage, user):
    stale = start(user)
    make_stale(stale)
    storage.create_multipart_upload("uploads/lost/file.bin", content_type="")
    before = in_progress(storage)

    output = cleanup("--dry-run")

    assert f"would abort expired upload {stale.pk}" in output
    assert "would abort orphan uploads/lost/file.bin" in output
    assert output.endswith("1 expired uploads and 1 orphans would be aborted.\n")
    assert Upload.objects.get(pk=stale.pk).status == Status.UPLOADING
    assert in_progress(storage) == before


def test_cleanup_uploads_leaves_orphans_younger_than_the_grace_period(db, storage, settings):
    settings.UPLOADS_ORPHAN_GRACE = 100 * 365 * 24 * 3600  # older than any moto upload
    storage.create_multipart_upload("uploads/lost/file.bin", content_type="")

    assert cleanup().startswith("0 expired uploads and 0 orphans aborted.\n")
    assert len(in_progress(storage)) == 1


def test_cleanup_uploads_refuses_a_negative_grace_period(db):
    with pytest.raises(CommandError, match="must not be negative"):
        cleanup("--orphan-grace", "-1")


def test_cleanup_uploads_fails_clearly_when_s3_cannot_be_listed(db, storage, monkeypatch):
    def fail(prefix):
        raise StorageFailed("S3 could not be reached for ListMultipartUploads.")

    monkeypatch.setattr(storage, "list_multipart_uploads", fail)
    with pytest.raises(CommandError, match="S3 failed: S3 could not be reached"):
        cleanup()
