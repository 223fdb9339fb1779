"""The upload use cases against moto: every rule, every error path, and racing calls.

Parts are real 5 MiB parts (S3's minimum, which moto enforces at completion), PUT into moto
directly as a client would after signing.
"""

import base64
import hashlib
from datetime import timedelta

import pytest
from botocore.exceptions import EndpointConnectionError
from django.db import DatabaseError
from django.utils import timezone

from tests.factories import UploadFactory, UploadPartFactory, UserFactory
from tests.support.checksums import sha256_b64
from tests.support.s3_faults import s3_answers, s3_error
from tests.support.uploads import DATA, SIZE, part_of, put_all, put_part, start
from uploads import services
from uploads.exceptions import (
    ChecksumRequired,
    CompletionUnknown,
    IdempotencyConflict,
    InvalidFilename,
    InvalidInput,
    PartConflict,
    PartMismatch,
    PartMissing,
    PartOutOfRange,
    StorageFailed,
    TypeNotAllowed,
    UploadConflict,
    UploadTooLarge,
)
from uploads.models import Upload, UploadPart
from uploads.parts import MiB
from uploads.services import PartToSign, ReportedPart, state
from uploads.storage import StoredObject

pytestmark = pytest.mark.django_db

Status = Upload.Status


def in_s3(storage) -> list[str]:
    return [info.key for info in storage.list_multipart_uploads("")]


def status_in_db(upload: Upload) -> str:
    return Upload.objects.values_list("status", flat=True).get(pk=upload.pk)


@pytest.fixture
def owner(db):
    return UserFactory()


@pytest.fixture
def upload(storage, owner) -> Upload:
    return start(owner)


@pytest.fixture
def completions(storage, monkeypatch) -> list[tuple]:
    """The CompleteMultipartUpload calls that reach S3 (they still do)."""
    calls = []
    complete = storage.complete_multipart_upload

    def counting(*args, **kwargs):
        calls.append(args)
        return complete(*args, **kwargs)

    monkeypatch.setattr(storage, "complete_multipart_upload", counting)
    return calls


# --- start_upload -----------------------------------------------------------------------------
def test_start_upload_plans_parts_and_creates_the_s3_upload_under_a_server_key(
    storage, owner, settings
):
    settings.UPLOADS_KEY_PREFIX = "incoming/"
    before = timezone.now()

    upload, created = services.start_upload(
        owner=owner, filename="my movie (1).mp4", size=SIZE, fingerprint="fp-1"
    )

    assert created
    assert (upload.status, upload.size, upload.part_size, upload.part_count) == (
        Status.UPLOADING,
        SIZE,
        8 * MiB,
        2,
    )
    assert upload.filename == "my movie (1).mp4"
    assert upload.key == f"incoming/{upload.id}/my_movie_1.mp4"
    assert upload.content_type == "video/mp4"  # guessed from the name
    assert upload.fingerprint == "fp-1"
    assert upload.expires_at >= before + timedelta(seconds=settings.UPLOADS_STALE_AFTER)
    assert [(u.key, u.s3_upload_id) for u in storage.list_multipart_uploads("incoming/")] == [
        (upload.key, upload.s3_upload_id)
    ]


def test_start_upload_of_an_empty_file_plans_one_empty_part(storage, owner):
    upload = start(owner, size=0)

    assert (upload.part_count, upload.plan.size_of(1)) == (1, 0)


def test_start_upload_keeps_the_name_normalised_and_trimmed(storage, owner):
    upload, _ = services.start_upload(owner=owner, filename=" cafe\u0301.txt ", size=1)

    assert upload.filename == "caf\u00e9.txt"


@pytest.mark.parametrize(
    "filename",
    [
        "../etc/passwd",
        "..",
        "a/b.txt",
        "a\\b.txt",
        "bad\x00name",
        "bell\x07.txt",
        "line\nbreak.txt",
        "\u202etxt.exe",
        "x" * 2000,
        "x" * 256,
        "",
        "   ",
    ],
    ids=[
        "dot-dot slash",
        "dot-dot",
        "slash",
        "backslash",
        "NUL",
        "control character",
        "newline",
        "right-to-left override",
        "2,000 characters",
        "256 characters",
        "empty",
        "blank",
    ],
)
def test_start_upload_refuses_a_bad_file_name_before_touching_s3(storage, owner, filename):
    with pytest.raises(InvalidFilename):
        services.start_upload(owner=owner, filename=filename, size=10)

    assert in_s3(storage) == []
    assert not Upload.objects.exists()


def test_start_upload_accepts_a_255_character_name(storage, owner):
    upload, _ = services.start_upload(owner=owner, filename="x" * 255, size=10)

    assert upload.filename == "x" * 255


@pytest.mark.parametrize(
    ("content_type", "filename", "expected"),
    [
        pytest.param("image/png", "a.bin", "image/png", id="image/* pattern"),
        pytest.param("IMAGE/JPEG", "a.bin", "image/jpeg", id="case-insensitive"),
        pytest.param("application/pdf", "a.bin", "application/pdf", id="exact type"),
        pytest.param("", "photo.png", "image/png", id="guessed from the name"),
        pytest.param(
            "image/svg+xml; charset=utf-8", "a", "image/svg+xml; charset=utf-8", id="params"
        ),
    ],
)
def test_start_upload_accepts_types_the_policy_allows(
    storage, owner, settings, content_type, filename, expected
):
    settings.UPLOADS_ALLOWED_TYPES = ["image/*", "application/pdf"]

    upload, _ = services.start_upload(
        owner=owner, filename=filename, size=10, content_type=content_type
    )

    assert upload.content_type == expected


@pytest.mark.parametrize(
    ("content_type", "filename"),
    [
        pytest.param("text/plain", "a.png", id="declared type wins over the name"),
        pytest.param("", "notes.txt", id="guessed type"),
        pytest.param("", "no-extension", id="unknown type is octet-stream"),
        pytest.param("imagex/png", "a.png", id="prefix lookalike"),
    ],
)
def test_start_upload_refuses_types_the_policy_excludes(
    storage, owner, settings, content_type, filename
):
    settings.UPLOADS_ALLOWED_TYPES = ["image/*", "application/pdf"]

    with pytest.raises(TypeNotAllowed) as caught:
        services.start_upload(owner=owner, filename=filename, size=10, content_type=content_type)

    assert caught.value.status_code == 415
    assert in_s3(storage) == []


def test_start_upload_accepts_any_type_without_a_policy(storage, owner, settings):
    settings.UPLOADS_ALLOWED_TYPES = []

    upload, _ = services.start_upload(owner=owner, filename="a", size=1, content_type="x/y")

    assert upload.content_type == "x/y"


@pytest.mark.parametrize(
    "content_type",
    ["not a type", "text", "text/plain/extra", "a" * 300 + "/b"],
    ids=["spaces", "no subtype", "two slashes", "too long"],
)
def test_start_upload_refuses_a_malformed_content_type(storage, owner, content_type):
    with pytest.raises(InvalidInput):
        services.start_upload(owner=owner, filename="a", size=1, content_type=content_type)


def test_start_upload_refuses_a_file_over_the_size_limit(storage, owner, settings):
    settings.UPLOADS_MAX_SIZE = 10 * MiB

    assert start(owner, size=10 * MiB).size == 10 * MiB
    with pytest.raises(UploadTooLarge) as caught:
        start(owner, size=10 * MiB + 1)

    assert caught.value.status_code == 413
    assert Upload.objects.count() == 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"size": -1}, "size", id="negative size"),
        pytest.param({"part_size": 5 * MiB - 1}, "part_size", id="part size under 5 MiB"),
        pytest.param({"part_size": 5 * 1024 * MiB + 1}, "part_size", id="part size over 5 GiB"),
        pytest.param({"checksum_algorithm": "SHA1"}, "checksum_algorithm", id="unknown checksum"),
    ],
)
def test_start_upload_refuses_values_out_of_range(storage, owner, options, field):
    options = {"filename": "a.bin", "size": 10, **options}

    with pytest.raises(InvalidInput) as caught:
        services.start_upload(owner=owner, **options)

    assert caught.value.extra["field"] == field
    assert in_s3(storage) == []


def test_start_upload_with_the_same_client_token_replays_the_first_upload(storage, owner):
    first = start(owner, client_token="tok-1")

    again, created = services.start_upload(
        owner=owner, filename="movie.mp4", size=SIZE, part_size=5 * MiB, client_token="tok-1"
    )

    assert not created
    assert again.pk == first.pk
    assert len(in_s3(storage)) == 1


@pytest.mark.parametrize(
    "change", [{"size": SIZE + 1}, {"filename": "other.mp4"}], ids=["other size", "other name"]
)
def test_start_upload_with_a_used_client_token_for_another_file_conflicts(storage, owner, change):
    first = start(owner, client_token="tok-1")
    request = {"filename": "movie.mp4", "size": SIZE, "client_token": "tok-1", **change}

    with pytest.raises(IdempotencyConflict) as caught:
        services.start_upload(owner=owner, **request)

    assert caught.value.status_code == 409
    assert caught.value.extra == {"upload": str(first.pk)}
    assert len(in_s3(storage)) == 1


def test_client_tokens_are_per_owner(storage, owner):
    mine = start(owner, client_token="tok-1")

    theirs = start(UserFactory(), client_token="tok-1")

    assert theirs.pk != mine.pk


def test_start_upload_aborts_the_s3_upload_when_the_database_write_fails(
    storage, owner, monkeypatch
):
    def broken_insert(**fields):
        raise DatabaseError("disk full")

    monkeypatch.setattr(Upload.objects, "create", broken_insert)

    with pytest.raises(DatabaseError):
        start(owner)

    assert in_s3(storage) == []


def test_start_upload_losing_a_client_token_race_answers_the_winner(storage, owner, monkeypatch):
    # The other request inserts its row between our lookup and our insert.
    create = storage.create_multipart_upload
    winner = []

    def create_while_another_request_wins(key, **kwargs):
        winner.append(
            UploadFactory(owner=owner, client_token="tok-1", filename="movie.mp4", size=SIZE)
        )
        return create(key, **kwargs)

    monkeypatch.setattr(storage, "create_multipart_upload", create_while_another_request_wins)

    upload, created = services.start_upload(
        owner=owner, filename="movie.mp4", size=SIZE, client_token="tok-1"
    )

    assert (upload.pk, created) == (winner[0].pk, False)
    assert in_s3(storage) == []  # ours was aborted; the winner's S3 upload is its own


# --- sign_parts -------------------------------------------------------------------------------
def test_sign_parts_binds_each_part_to_its_planned_size(upload, owner, settings):
    before = timezone.now()

    signed = services.sign_parts(upload, parts=[PartToSign(1), PartToSign(3)], by=owner)

    assert [(s.number, s.method, s.size, s.headers) for s in signed] == [
        (1, "PUT", 5 * MiB, {}),
        (3, "PUT", 1 * MiB, {}),
    ]
    assert all("X-Amz-SignedHeaders=content-length%3Bhost" in s.url for s in signed)
    assert all(f"uploadId={upload.s3_upload_id}" in s.url for s in signed)
    assert signed[0].expires_at >= before + timedelta(seconds=settings.UPLOADS_URL_EXPIRY)


def test_sign_parts_signs_and_stores_a_given_checksum(upload, owner):
    checksum = sha256_b64(part_of(upload, 2))

    [signed] = services.sign_parts(upload, parts=[PartToSign(2, checksum=checksum)], by=owner)

    assert signed.headers == {"x-amz-checksum-sha256": checksum}
    assert "x-amz-checksum-sha256" in signed.url
    part = UploadPart.objects.get(upload=upload, number=2)
    assert (part.checksum, part.size, part.etag) == (checksum, 5 * MiB, "")
    assert part.signed_at is not None


def test_sign_parts_keeps_the_upload_alive(upload, owner):
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now())

    services.sign_parts(upload, parts=[PartToSign(1)], by=owner)

    assert Upload.objects.get(pk=upload.pk).expires_at > timezone.now() + timedelta(days=1)


@pytest.mark.parametrize(
    "numbers", [[0], [4], [10_001], [-1], [1, 4]], ids=["0", "past the last", "10,001", "-1", "mix"]
)
def test_sign_parts_refuses_numbers_outside_the_plan(upload, owner, numbers):
    with pytest.raises(PartOutOfRange) as caught:
        services.sign_parts(upload, parts=[PartToSign(n) for n in numbers], by=owner)

    assert caught.value.extra["parts"] == [n for n in numbers if not 1 <= n <= 3]


@pytest.mark.parametrize("numbers", [[], [1, 1]], ids=["empty", "duplicates"])
def test_sign_parts_refuses_an_empty_or_repeated_batch(upload, owner, numbers):
    with pytest.raises(InvalidInput):
        services.sign_parts(upload, parts=[PartToSign(n) for n in numbers], by=owner)


def test_sign_parts_refuses_a_batch_over_the_limit(upload, owner, settings):
    settings.UPLOADS_SIGN_BATCH_MAX = 2

    assert len(services.sign_parts(upload, parts=[PartToSign(1), PartToSign(2)], by=owner)) == 2
    with pytest.raises(InvalidInput, match="At most 2"):
        services.sign_parts(upload, parts=[PartToSign(n) for n in (1, 2, 3)], by=owner)


def test_sign_parts_of_a_checksummed_upload_requires_every_checksum(storage, owner):
    upload = start(owner, checksum_algorithm="SHA256")
    good = sha256_b64(part_of(upload, 1))

    with pytest.raises(ChecksumRequired) as caught:
        services.sign_parts(upload, parts=[PartToSign(1, checksum=good), PartToSign(2)], by=owner)

    assert caught.value.extra == {"parts": [2]}
    assert not UploadPart.objects.exists()


@pytest.mark.parametrize(
    "checksum",
    ["abc", base64.b64encode(b"x" * 31).decode(), "!" * 44, hashlib.sha256(b"").hexdigest()],
    ids=["short", "31 bytes", "not base64", "hex digest"],
)
def test_sign_parts_refuses_a_malformed_checksum(upload, owner, checksum):
    with pytest.raises(InvalidInput) as caught:
        services.sign_parts(upload, parts=[PartToSign(1, checksum=checksum)], by=owner)

    assert caught.value.extra == {"field": "checksum"}


def test_a_part_not_yet_uploaded_may_be_resigned_with_another_checksum(upload, owner):
    services.sign_parts(upload, parts=[PartToSign(1, checksum=sha256_b64(b"old"))], by=owner)

    services.sign_parts(upload, parts=[PartToSign(1, checksum=sha256_b64(b"new"))], by=owner)

    assert UploadPart.objects.get(upload=upload, number=1).checksum == sha256_b64(b"new")


def test_an_uploaded_part_cannot_be_resigned_with_another_checksum(upload, owner, storage):
    checksum = sha256_b64(part_of(upload, 1))
    services.sign_parts(upload, parts=[PartToSign(1, checksum=checksum)], by=owner)
    services.record_parts(upload, parts=[ReportedPart(1, put_part(storage, upload, 1))], by=owner)

    with pytest.raises(PartConflict) as caught:
        services.sign_parts(upload, parts=[PartToSign(1, checksum=sha256_b64(b"other"))], by=owner)
    services.sign_parts(upload, parts=[PartToSign(1, checksum=checksum)], by=owner)  # same: fine

    assert caught.value.extra == {"parts": [1]}
    assert UploadPart.objects.get(upload=upload, number=1).checksum == checksum


@pytest.mark.parametrize(
    ("batch", "clashing"),
    [([1, 2, 3], [2]), ([2, 3], [2]), ([3, 1], []), ([1], []), ([3], [])],
)
def test_the_checksum_clash_check_looks_at_exactly_the_parts_of_the_batch(
    upload, owner, storage, batch, clashing
):
    # Part 2 is uploaded; the batch signs its parts with checksums other than the stored ones.
    services.sign_parts(
        upload, parts=[PartToSign(2, checksum=sha256_b64(part_of(upload, 2)))], by=owner
    )
    services.record_parts(upload, parts=[ReportedPart(2, put_part(storage, upload, 2))], by=owner)
    parts = [PartToSign(n, checksum=sha256_b64(b"other %d" % n)) for n in batch]

    if clashing:
        with pytest.raises(PartConflict) as caught:
            services.sign_parts(upload, parts=parts, by=owner)
        assert caught.value.extra == {"parts": clashing}
    else:
        assert [p.number for p in services.sign_parts(upload, parts=parts, by=owner)] == batch


@pytest.mark.parametrize("trait", ["completing", "completed", "aborted", "expired", "failed"])
def test_sign_parts_needs_an_uploading_upload(storage, trait):
    upload = UploadFactory(**{trait: True})

    with pytest.raises(UploadConflict) as caught:
        services.sign_parts(upload, parts=[PartToSign(1)], by=upload.owner)

    assert caught.value.extra == {"status": trait}


def test_sign_parts_refuses_another_users_upload(upload):
    with pytest.raises(UploadConflict):
        services.sign_parts(upload, parts=[PartToSign(1)], by=UserFactory())


# --- record_parts -----------------------------------------------------------------------------
def test_record_parts_accepts_quoted_and_unquoted_etags_and_counts_progress(upload, owner, storage):
    etags = put_all(storage, upload)

    services.record_parts(
        upload,
        parts=[ReportedPart(1, f'"{etags[1]}"'), ReportedPart(3, etags[3].upper())],
        by=owner,
    )

    assert (upload.parts_uploaded, upload.bytes_uploaded) == (2, 6 * MiB)
    stored = Upload.objects.get(pk=upload.pk)
    assert (stored.parts_uploaded, stored.bytes_uploaded) == (2, 6 * MiB)
    assert dict(UploadPart.objects.values_list("number", "etag")) == {1: etags[1], 3: etags[3]}


def test_recording_a_part_again_does_not_count_it_twice(upload, owner, storage):
    etag = put_part(storage, upload, 1)

    services.record_parts(upload, parts=[ReportedPart(1, etag)], by=owner)
    services.record_parts(upload, parts=[ReportedPart(1, etag)], by=owner)

    assert (upload.parts_uploaded, upload.bytes_uploaded) == (1, 5 * MiB)


@pytest.mark.parametrize(
    "etag",
    ["", "abc", "g" * 32, 'W/"' + "a" * 32 + '"', "a" * 33, "a" * 32 + "-x"],
    ids=["empty", "short", "not hex", "weak", "33 digits", "bad suffix"],
)
def test_record_parts_refuses_a_malformed_etag(upload, owner, etag):
    with pytest.raises(InvalidInput) as caught:
        services.record_parts(upload, parts=[ReportedPart(1, etag)], by=owner)

    assert caught.value.extra == {"field": "etag"}
    assert not UploadPart.objects.exists()


def test_record_parts_refuses_a_checksum_other_than_the_signed_one(upload, owner):
    services.sign_parts(upload, parts=[PartToSign(1, checksum=sha256_b64(b"signed"))], by=owner)

    with pytest.raises(PartConflict) as caught:
        services.record_parts(
            upload, parts=[ReportedPart(1, "a" * 32, sha256_b64(b"other"))], by=owner
        )

    assert caught.value.extra == {"parts": [1]}
    assert UploadPart.objects.get(number=1).etag == ""


def test_record_parts_refuses_a_malformed_checksum(upload, owner):
    with pytest.raises(InvalidInput) as caught:
        services.record_parts(upload, parts=[ReportedPart(1, "a" * 32, "not-a-checksum")], by=owner)

    assert caught.value.extra == {"field": "checksum"}
    assert not UploadPart.objects.exists()


def test_record_parts_of_a_checksummed_upload_needs_a_signed_or_given_checksum(storage, owner):
    upload = start(owner, checksum_algorithm="SHA256")

    with pytest.raises(ChecksumRequired) as caught:
        services.record_parts(upload, parts=[ReportedPart(1, "a" * 32)], by=owner)
    services.record_parts(
        upload, parts=[ReportedPart(2, "b" * 32, sha256_b64(b"part 2"))], by=owner
    )

    assert caught.value.extra == {"parts": [1]}
    assert UploadPart.objects.get(number=2).checksum == sha256_b64(b"part 2")


@pytest.mark.parametrize("numbers", [[4], [0], [1, 1]], ids=["past the last", "zero", "duplicates"])
def test_record_parts_refuses_bad_part_numbers(upload, owner, numbers):
    with pytest.raises((PartOutOfRange, InvalidInput)):
        services.record_parts(upload, parts=[ReportedPart(n, "a" * 32) for n in numbers], by=owner)

    assert not UploadPart.objects.exists()


@pytest.mark.parametrize("trait", ["completing", "completed", "aborted", "expired", "failed"])
def test_record_parts_needs_an_uploading_upload(storage, trait):
    upload = UploadFactory(**{trait: True})

    with pytest.raises(UploadConflict):
        services.record_parts(upload, parts=[ReportedPart(1, "a" * 32)], by=upload.owner)

    assert not UploadPart.objects.exists()


# --- sync_upload_parts ----------------------------------------------------------------------------
def test_sync_upload_parts_records_parts_s3_holds_that_were_never_reported(upload, owner, storage):
    etags = {n: put_part(storage, upload, n) for n in (1, 3)}

    status = services.sync_upload_parts(upload, by=owner)

    assert list(status.parts.values_list("number", "size", "etag", "checksum")) == [
        (1, 5 * MiB, etags[1], ""),
        (3, 1 * MiB, etags[3], ""),
    ]
    assert (status.parts_uploaded, status.bytes_uploaded) == (2, 6 * MiB)


def test_sync_upload_parts_forgets_reported_parts_s3_does_not_hold(upload, owner, storage):
    etag = put_part(storage, upload, 1)
    services.record_parts(
        upload, parts=[ReportedPart(1, etag), ReportedPart(2, "a" * 32)], by=owner
    )

    status = services.sync_upload_parts(upload, by=owner)

    assert {p.number: p.etag for p in status.parts.all()} == {1: etag, 2: ""}
    assert (status.parts_uploaded, status.bytes_uploaded) == (1, 5 * MiB)
    assert Upload.objects.get(pk=upload.pk).parts_uploaded == 1


def test_sync_upload_parts_takes_s3s_etag_over_a_reported_one(upload, owner, storage):
    etag = put_part(storage, upload, 1)
    services.record_parts(upload, parts=[ReportedPart(1, "a" * 32)], by=owner)

    status = services.sync_upload_parts(upload, by=owner)

    assert [p.etag for p in status.parts.all()] == [etag]


def test_sync_upload_parts_of_a_finished_upload_answers_from_the_database(storage):
    # The S3 upload id is made up: asking S3 would fail.
    upload = UploadFactory(completed=True)
    UploadPartFactory(upload=upload, number=1)

    status = services.sync_upload_parts(upload, by=upload.owner)

    assert [p.number for p in status.parts.all()] == [1]


# --- complete_upload --------------------------------------------------------------------------
def test_complete_upload_assembles_the_object_from_the_parts(upload, owner, storage):
    etags = put_all(storage, upload)
    services.record_parts(
        upload, parts=[ReportedPart(n, etag) for n, etag in etags.items()], by=owner
    )

    done = services.complete_upload(upload, by=owner)

    assert done.status == status_in_db(upload) == Status.COMPLETED
    assert done.etag.endswith("-3")
    assert done.completed_at is not None
    assert (done.parts_uploaded, done.bytes_uploaded) == (3, SIZE)
    body = storage.client.get_object(Bucket=storage.bucket, Key=upload.key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(DATA).digest()
    assert in_s3(storage) == []


def test_complete_upload_needs_no_report_when_s3_holds_every_part(upload, owner, storage):
    put_all(storage, upload)

    done = services.complete_upload(upload, by=owner)

    assert done.status == Status.COMPLETED
    assert [p.number for p in done.parts.all() if p.etag] == [1, 2, 3]


def test_complete_upload_with_a_part_missing_names_it_and_goes_back_to_uploading(
    upload, owner, storage
):
    put_part(storage, upload, 1)
    put_part(storage, upload, 3)

    with pytest.raises(PartMissing) as caught:
        services.complete_upload(upload, by=owner)

    assert caught.value.extra == {"missing_parts": [2]}
    assert upload.status == status_in_db(upload) == Status.UPLOADING
    # Upload the missing part and try again.
    put_part(storage, upload, 2)
    assert services.complete_upload(upload, by=owner).status == Status.COMPLETED


def test_complete_upload_refuses_a_part_of_the_wrong_size(upload, owner, storage):
    put_part(storage, upload, 1, DATA[: 6 * MiB])
    put_part(storage, upload, 2)
    put_part(storage, upload, 3)

    with pytest.raises(PartMismatch) as caught:
        services.complete_upload(upload, by=owner)

    assert caught.value.extra == {"parts": [1]}
    assert status_in_db(upload) == Status.UPLOADING


def test_complete_upload_refuses_a_part_whose_etag_differs_from_the_reported_one(
    upload, owner, storage
):
    etags = put_all(storage, upload)
    services.record_parts(upload, parts=[ReportedPart(2, "f" * 32)], by=owner)

    with pytest.raises(PartMismatch) as caught:
        services.complete_upload(upload, by=owner)

    assert caught.value.extra == {"parts": [2]}
    assert status_in_db(upload) == Status.UPLOADING
    assert etags[2] != "f" * 32


def test_complete_upload_repeated_answers_the_same_result(upload, owner, storage, completions):
    put_all(storage, upload)

    first = services.complete_upload(upload, by=owner)
    fields = (first.status, first.etag, first.size, first.completed_at)
    again = services.complete_upload(Upload.objects.get(pk=upload.pk), by=owner)

    assert (again.status, again.etag, again.size, again.completed_at) == fields
    assert len(completions) == 1


def test_complete_upload_settles_a_completing_upload_from_the_object(upload, owner, storage):
    # A previous call completed in S3 and died before recording it.
    etags = put_all(storage, upload)
    storage.client.complete_multipart_upload(
        Bucket=storage.bucket,
        Key=upload.key,
        UploadId=upload.s3_upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in etags.items()]},
    )
    Upload.objects.filter(pk=upload.pk).update(status=Status.COMPLETING)
    upload.refresh_from_db()

    done = services.complete_upload(upload, by=owner)

    assert done.status == status_in_db(upload) == Status.COMPLETED
    assert done.etag == storage.head_object(upload.key).etag


def test_complete_upload_of_a_completing_upload_without_object_conflicts(
    upload, owner, storage, monkeypatch
):
    monkeypatch.setattr(state, "COMPLETION_WAIT", 0)  # nobody will finish it here
    Upload.objects.filter(pk=upload.pk).update(status=Status.COMPLETING)
    upload.refresh_from_db()

    with pytest.raises(UploadConflict, match="being completed"):
        services.complete_upload(upload, by=owner)

    assert status_in_db(upload) == Status.COMPLETING


def test_completion_unknown_is_settled_by_the_object(upload, owner, storage, monkeypatch):
    put_all(storage, upload)
    complete = storage.complete_multipart_upload

    def completes_then_drops(*args, **kwargs):
        complete(*args, **kwargs)
        raise CompletionUnknown("The connection to S3 dropped while completing.")

    monkeypatch.setattr(storage, "complete_multipart_upload", completes_then_drops)

    done = services.complete_upload(upload, by=owner)

    assert done.status == status_in_db(upload) == Status.COMPLETED


def test_completion_unknown_without_an_object_goes_back_to_uploading(
    upload, owner, storage, monkeypatch
):
    put_all(storage, upload)

    def drops(*args, **kwargs):
        raise CompletionUnknown("The connection to S3 dropped while completing.")

    monkeypatch.setattr(storage, "complete_multipart_upload", drops)

    with pytest.raises(CompletionUnknown):
        services.complete_upload(upload, by=owner)

    assert status_in_db(upload) == Status.UPLOADING


def test_s3_refusing_completion_fails_the_upload_with_the_reason(
    upload, owner, storage, monkeypatch
):
    put_all(storage, upload)

    monkeypatch.setattr(
        storage.client, "complete_multipart_upload", s3_answers(s3_error("InvalidPart", 400))
    )

    with pytest.raises(StorageFailed) as caught:
        services.complete_upload(upload, by=owner)

    assert caught.value.s3_code == "InvalidPart"
    failed = Upload.objects.get(pk=upload.pk)
    assert failed.status == Status.FAILED
    assert "InvalidPart" in failed.failure_reason


@pytest.mark.parametrize(
    "error",
    [
        s3_error("InternalError", 500),
        s3_error("SlowDown", 503),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
    ],
    ids=["5xx", "throttled", "network"],
)
def test_a_transient_storage_failure_while_completing_can_be_retried(
    upload, owner, storage, monkeypatch, error
):
    put_all(storage, upload)
    monkeypatch.setattr(
        storage.client,
        "complete_multipart_upload",
        s3_answers(error, then=storage.client.complete_multipart_upload),
    )

    with pytest.raises(StorageFailed):
        services.complete_upload(upload, by=owner)
    assert status_in_db(upload) == Status.UPLOADING

    assert services.complete_upload(upload, by=owner).status == Status.COMPLETED


def test_complete_upload_checks_the_final_object_size(upload, owner, storage, monkeypatch):
    put_all(storage, upload)
    monkeypatch.setattr(storage, "head_object", lambda key: StoredObject(size=SIZE - 1, etag="x"))

    with pytest.raises(PartMismatch):
        services.complete_upload(upload, by=owner)

    failed = Upload.objects.get(pk=upload.pk)
    assert failed.status == Status.FAILED
    assert failed.failure_reason == f"The object holds {SIZE - 1} bytes, not {SIZE}."


def test_complete_upload_of_a_checksummed_upload_sends_the_signed_checksums(storage, owner):
    upload = start(owner, checksum_algorithm="SHA256")
    checksums = {n: sha256_b64(part_of(upload, n)) for n in (1, 2, 3)}
    services.sign_parts(
        upload, parts=[PartToSign(n, checksum=c) for n, c in checksums.items()], by=owner
    )
    for number, checksum in checksums.items():
        put_part(storage, upload, number, ChecksumSHA256=checksum)

    done = services.complete_upload(upload, by=owner)

    assert done.status == Status.COMPLETED
    assert {p.number: p.checksum for p in done.parts.all()} == checksums


def test_complete_upload_of_an_unplanned_upload_records_the_size_s3_found(storage, owner):
    upload = start(owner, size=None)
    put_part(storage, upload, 1, DATA[: 5 * MiB])
    put_part(storage, upload, 2, b"tail")

    done = services.complete_upload(upload, by=owner)

    assert (done.status, done.size) == (Status.COMPLETED, 5 * MiB + 4)


def test_complete_upload_of_an_unplanned_upload_refuses_a_small_middle_part(storage, owner):
    upload = start(owner, size=None)
    put_part(storage, upload, 1, b"small")
    put_part(storage, upload, 2, b"tail")

    with pytest.raises(PartMismatch) as caught:
        services.complete_upload(upload, by=owner)

    assert caught.value.extra == {"parts": [1]}


def test_complete_upload_of_an_unplanned_upload_without_parts_is_missing_part_one(storage, owner):
    upload = start(owner, size=None)

    with pytest.raises(PartMissing) as caught:
        services.complete_upload(upload, by=owner)

    assert caught.value.extra == {"missing_parts": [1]}


@pytest.mark.parametrize("trait", ["aborted", "expired", "failed"])
def test_complete_upload_needs_an_uploading_upload(storage, trait):
    upload = UploadFactory(**{trait: True})

    with pytest.raises(UploadConflict):
        services.complete_upload(upload, by=upload.owner)

    assert status_in_db(upload) == trait


# --- abort_upload -----------------------------------------------------------------------------
def test_abort_upload_aborts_in_s3_and_marks_it_aborted(upload, owner, storage):
    put_part(storage, upload, 1)

    aborted = services.abort_upload(upload, by=owner)

    assert aborted.status == status_in_db(upload) == Status.ABORTED
    assert in_s3(storage) == []


def test_abort_upload_is_idempotent(upload, owner, storage):
    services.abort_upload(upload, by=owner)

    again = services.abort_upload(Upload.objects.get(pk=upload.pk), by=owner)

    assert again.status == Status.ABORTED


def test_a_failed_upload_can_be_aborted(upload, owner, storage):
    Upload.objects.filter(pk=upload.pk).update(status=Status.FAILED)
    upload.refresh_from_db()

    assert services.abort_upload(upload, by=owner).status == Status.ABORTED
    assert in_s3(storage) == []


def test_a_completed_upload_cannot_be_aborted_and_its_object_is_untouched(upload, owner, storage):
    put_all(storage, upload)
    services.complete_upload(upload, by=owner)

    with pytest.raises(UploadConflict) as caught:
        services.abort_upload(upload, by=owner)

    assert caught.value.extra == {"status": Status.COMPLETED}
    assert status_in_db(upload) == Status.COMPLETED
    assert storage.head_object(upload.key).size == SIZE


def test_a_completing_upload_cannot_be_aborted(upload, owner, storage):
    Upload.objects.filter(pk=upload.pk).update(status=Status.COMPLETING)
    upload.refresh_from_db()

    with pytest.raises(UploadConflict):
        services.abort_upload(upload, by=owner)

    assert in_s3(storage) == [upload.key]


# --- compare-and-set races --------------------------------------------------------------------
def test_abort_racing_a_finished_complete_loses(upload, owner, storage):
    # Both requests loaded the upload while it was uploading.
    for_complete, for_abort = Upload.objects.get(pk=upload.pk), Upload.objects.get(pk=upload.pk)
    put_all(storage, upload)
    services.complete_upload(for_complete, by=owner)

    with pytest.raises(UploadConflict):
        services.abort_upload(for_abort, by=owner)

    assert status_in_db(upload) == Status.COMPLETED
    assert storage.head_object(upload.key).size == SIZE


def test_complete_racing_a_finished_abort_loses_without_touching_s3(
    upload, owner, storage, monkeypatch
):
    for_complete, for_abort = Upload.objects.get(pk=upload.pk), Upload.objects.get(pk=upload.pk)
    put_all(storage, upload)
    services.abort_upload(for_abort, by=owner)
    monkeypatch.setattr(storage, "list_parts", lambda *a: pytest.fail("S3 was asked"))

    with pytest.raises(UploadConflict):
        services.complete_upload(for_complete, by=owner)

    assert for_complete.status == status_in_db(upload) == Status.ABORTED
    assert storage.head_object(upload.key) is None


def test_two_racing_completes_complete_once(upload, owner, storage, completions):
    first, second = Upload.objects.get(pk=upload.pk), Upload.objects.get(pk=upload.pk)
    put_all(storage, upload)

    services.complete_upload(first, by=owner)
    answer = services.complete_upload(second, by=owner)

    assert answer.status == Status.COMPLETED
    assert answer.etag == first.etag
    assert len(completions) == 1


def test_a_status_change_between_load_and_transition_is_a_conflict(upload, owner, storage):
    stale = Upload.objects.get(pk=upload.pk)
    Upload.objects.filter(pk=upload.pk).update(status=Status.EXPIRED)

    with pytest.raises(UploadConflict):
        services.complete_upload(stale, by=owner)

    assert stale.status == status_in_db(upload) == Status.EXPIRED
