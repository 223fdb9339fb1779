"""Every query-count assertion: the API, token lookup and the operators' admin and services.

For each endpoint (REST and Uppy/Companion) the call is measured on a 1-part upload, within a
budget, and then must make exactly as many queries on a 1,000-part upload, and for sign and
report with a batch of 1 and of 1,000 parts; a list costs the same for 1 upload and 50. Token
lookup costs at most one query, the admin's changelist does not grow with uploads or parts, and
extending the expiry of many uploads is one statement. Part rows are written by one statement
(UploadPart.objects.upsert in uploads/models.py), not by bulk_create batches of 142 rows
(SQLite's 999 parameters).

S3's side is simulated on the storage object (ListParts, CompleteMultipartUpload, HeadObject
answer from what the test "uploaded"): 1,000 real 5 MiB parts would need 5 GB in moto, and
what is counted here is SQL, not S3.
"""

import hashlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import UploadFactory, UploadPartFactory, UserFactory
from uploads import models, selectors, services
from uploads.models import Upload, UploadPart
from uploads.storage import StoredObject, StoredPart
from uploads.tokens.models import ApiToken

MiB = 1024 * 1024
PART = 5 * MiB
CHANGELIST = reverse("admin:uploads_upload_changelist")
MANY = 1000
CHECKSUM = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
# The most queries each call may make, token authentication and the owner-scoped lookup
# included: today's counts, so that any new query per call shows up here.
BUDGET = {
    "create": 7,  # with the quota: read before S3 is asked, then again under the owner's lock
    "list": 2,
    "create-resume-sign": 14,  # a resume found: ListParts reconciled, then a signed batch
    "detail": 8,  # + other_sessions
    "sign": 6,  # + other_sessions
    "sign-session": 10,  # + the transaction, the session's activity and its leases
    "report": 8,  # + other_sessions
    "report-session": 9,  # + the session's activity
    "complete": 10,
    "abort": 3,
    "uppy-create": 6,
    "uppy-parts": 7,
    "uppy-sign": 3,
    "uppy-complete": 14,
    "uppy-abort": 3,
}


def etag(number: int) -> str:
    return hashlib.md5(str(number).encode()).hexdigest()  # noqa: S324 (an ETag, not security)


class FakeS3Parts:
    """What S3 holds for each multipart upload, as the storage's read methods will answer."""

    def __init__(self) -> None:
        self.held: dict[str, dict[int, StoredPart]] = {}
        self.objects: dict[str, StoredObject] = {}

    def put(self, upload: Upload, numbers: range | list[int]) -> None:
        plan = upload.plan
        held = self.held.setdefault(upload.s3_upload_id, {})
        for number in numbers:
            size = plan.size_of(number) if plan else PART
            held[number] = StoredPart(number=number, size=size, etag=etag(number))

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        return [part for _, part in sorted(self.held.get(upload_id, {}).items())]

    def complete_multipart_upload(self, key: str, upload_id: str, parts: Any, **_: Any) -> str:
        size = sum(self.held[upload_id][part.number].size for part in parts)
        self.objects[key] = StoredObject(size=size, etag=f"{'a' * 32}-{len(parts)}")
        return self.objects[key].etag

    def head_object(self, key: str) -> StoredObject | None:
        return self.objects.get(key)


@pytest.fixture(autouse=True)
def _store_profile_read(db, storage) -> None:
    # A new upload reads the store's profile from the cache; the first read of a process
    # fills it (one query, as after every restart), which is not a per-call cost.
    selectors.store_profile(storage)


@pytest.fixture
def s3_side(storage, monkeypatch) -> FakeS3Parts:
    fake = FakeS3Parts()
    for name in ("list_parts", "complete_multipart_upload", "head_object"):
        monkeypatch.setattr(storage, name, getattr(fake, name))
    return fake


@pytest.fixture
def count(
    django_assert_num_queries, django_assert_max_num_queries
) -> Callable[[str, list[Callable[[], Any]]], int]:
    """count(endpoint, [call on 1 part, call(s) on 1,000 parts…]) asserts they cost the same."""

    def check(endpoint: str, calls: list[Callable[[], Any]]) -> int:
        first, *others = calls
        with django_assert_max_num_queries(BUDGET[endpoint]) as captured:
            ok(first())
        expected = len(captured)
        print(f"{endpoint}: {expected} queries")  # shown with -s
        for call in others:
            with django_assert_num_queries(expected):
                ok(call())
        return expected

    return check


def ok(response: Any) -> Any:
    assert response.status_code < 300, getattr(response, "data", response)
    return response


# --- the REST API -----------------------------------------------------------------------------
def create(api_client, parts: int, *, checksum: bool = True):
    body = {"filename": "f.bin", "size": parts * PART, "part_size": PART}
    if checksum:
        body["checksum_algorithm"] = "SHA256"
    return api_client.post("/api/uploads/", body, format="json")


def new_upload(api_client, parts: int, *, checksum: bool = True) -> Upload:
    return Upload.objects.get(pk=ok(create(api_client, parts, checksum=checksum)).data["id"])


def sign(api_client, upload: Upload, numbers, *, checksum: bool = True):
    parts = [{"number": n, **({"checksum": CHECKSUM} if checksum else {})} for n in numbers]
    return api_client.post(f"/api/uploads/{upload.pk}/sign/", {"parts": parts}, format="json")


def report(api_client, upload: Upload, numbers):
    parts = [{"number": n, "etag": etag(n), "checksum": CHECKSUM} for n in numbers]
    return api_client.post(f"/api/uploads/{upload.pk}/parts/", {"parts": parts}, format="json")


def uploaded(api_client, s3_side: FakeS3Parts, parts: int) -> Upload:
    """An upload whose parts are all in S3 and reported."""
    upload = new_upload(api_client, parts)
    ok(sign(api_client, upload, range(1, parts + 1)))
    s3_side.put(upload, range(1, parts + 1))
    ok(report(api_client, upload, range(1, parts + 1)))
    return upload


def test_creating_an_upload_costs_the_same_queries_for_1_and_1000_parts(bucket, api_client, count):
    count("create", [lambda: create(api_client, 1), lambda: create(api_client, MANY)])


def test_listing_uploads_costs_the_same_queries_whatever_their_part_counts(
    bucket, api_client, s3_side, django_assert_max_num_queries, django_assert_num_queries
):
    uploaded(api_client, s3_side, 1)
    with django_assert_max_num_queries(BUDGET["list"]) as one:
        ok(api_client.get("/api/uploads/"))
    expected = len(one)  # now: the capture reads the connection's log, which moves on
    uploaded(api_client, s3_side, MANY)

    with django_assert_num_queries(expected):
        assert len(ok(api_client.get("/api/uploads/")).data["results"]) == 2


def test_listing_costs_the_same_queries_for_1_upload_and_50(
    api_client, user, django_assert_max_num_queries, django_assert_num_queries
):
    UploadFactory(owner=user)
    with django_assert_max_num_queries(BUDGET["list"]) as one:
        ok(api_client.get("/api/uploads/"))
    expected = len(one)
    UploadFactory.create_batch(49, owner=user)

    with django_assert_num_queries(expected):
        assert len(ok(api_client.get("/api/uploads/")).data["results"]) == 50


@pytest.mark.parametrize("reported", [False, True], ids=["parts-found-in-s3", "parts-reported"])
def test_the_detail_costs_the_same_queries_for_1_and_1000_parts(
    bucket, api_client, s3_side, count, reported
):
    """Unreported parts that S3 holds are recorded on the way (the reconciliation inserts)."""
    small, large = new_upload(api_client, 1), new_upload(api_client, MANY)
    for upload in (small, large):
        s3_side.put(upload, range(1, (upload.part_count or 0) + 1))
        if reported:
            ok(sign(api_client, upload, range(1, upload.part_count + 1)))
            ok(report(api_client, upload, range(1, upload.part_count + 1)))
    count(
        "detail",
        [
            lambda: api_client.get(f"/api/uploads/{small.pk}/"),
            lambda: api_client.get(f"/api/uploads/{large.pk}/"),
        ],
    )
    assert UploadPart.objects.filter(upload=large).exclude(etag="").count() == MANY


@pytest.mark.parametrize("checksum", [True, False], ids=["with-checksums", "without-checksums"])
def test_signing_costs_the_same_queries_for_batches_of_1_and_1000_parts(
    bucket, api_client, count, checksum
):
    small = new_upload(api_client, 1, checksum=checksum)
    large = new_upload(api_client, MANY, checksum=checksum)
    count(
        "sign",
        [
            lambda: sign(api_client, small, [1], checksum=checksum),
            lambda: sign(api_client, large, [MANY], checksum=checksum),
            lambda: sign(api_client, large, range(1, MANY + 1), checksum=checksum),
            # Again: every part now exists, so the upsert updates all 1,000 rows.
            lambda: sign(api_client, large, range(1, MANY + 1), checksum=checksum),
        ],
    )
    if checksum:
        assert UploadPart.objects.filter(upload=large, checksum=CHECKSUM).count() == MANY


def test_reporting_costs_the_same_queries_for_batches_of_1_and_1000_parts(
    bucket, api_client, count
):
    small, large = new_upload(api_client, 1), new_upload(api_client, MANY)
    ok(sign(api_client, small, [1]))
    ok(sign(api_client, large, range(1, MANY + 1)))
    count(
        "report",
        [
            lambda: report(api_client, small, [1]),
            lambda: report(api_client, large, [1]),
            lambda: report(api_client, large, range(1, MANY + 1)),
        ],
    )
    large.refresh_from_db()
    assert (large.parts_uploaded, large.bytes_uploaded) == (MANY, MANY * PART)


# --- sessions: start-or-resume with a first batch, sign and report with a session ----------------
SESSION_A, SESSION_B = "session-a-123", "session-b-456"


def resume_and_sign(api_client, upload: Upload, numbers, *, session: str = SESSION_B):
    body = {
        "filename": "f.bin",
        "size": upload.size,
        "fingerprint": upload.fingerprint,
        "resume": True,
        "session": session,
        "sign": {"parts": [{"number": n, "checksum": CHECKSUM} for n in numbers]},
    }
    return api_client.post("/api/uploads/", body, format="json")


def test_resuming_with_a_first_batch_costs_the_same_queries_for_1_and_1000_parts(
    bucket, api_client, s3_side, count
):
    """S3 holds all but the last part, unreported (recorded on the way); the rest is signed."""
    uploads = []
    for parts in (2, MANY):
        body = {"filename": "f.bin", "size": parts * PART, "part_size": PART}
        body |= {"checksum_algorithm": "SHA256", "fingerprint": f"fp-{parts}"}
        upload = Upload.objects.get(
            pk=ok(api_client.post("/api/uploads/", body, format="json")).data["id"]
        )
        s3_side.put(upload, range(1, parts))
        uploads.append(upload)
    small, large = uploads
    count(
        "create-resume-sign",
        [
            lambda: resume_and_sign(api_client, small, [1, 2]),
            lambda: resume_and_sign(api_client, large, range(1, MANY + 1)),
        ],
    )
    answer = ok(resume_and_sign(api_client, large, range(1, MANY + 1)))
    assert (answer.status_code, answer.data["resumed"]) == (200, True)
    assert [part["number"] for part in answer.data["signed"]] == [MANY]


def session_sign(api_client, upload: Upload, numbers, *, session: str):
    parts = [{"number": n, "checksum": CHECKSUM} for n in numbers]
    body = {"parts": parts, "session": session}
    return api_client.post(f"/api/uploads/{upload.pk}/sign/", body, format="json")


def test_signing_with_a_session_costs_the_same_queries_for_batches_of_1_and_1000_parts(
    bucket, api_client, count
):
    """Another session's leases are read with the parts: no query per part or per lease."""
    small, large = new_upload(api_client, 1), new_upload(api_client, MANY)
    ok(session_sign(api_client, large, range(1, MANY // 2 + 1), session=SESSION_A))
    count(
        "sign-session",
        [
            lambda: session_sign(api_client, small, [1], session=SESSION_B),
            lambda: session_sign(api_client, large, [MANY], session=SESSION_B),
            lambda: session_sign(api_client, large, range(1, MANY + 1), session=SESSION_B),
            lambda: session_sign(api_client, large, range(1, MANY + 1), session=SESSION_A),
        ],
    )
    answer = ok(session_sign(api_client, large, range(1, MANY + 1), session=SESSION_B)).data
    assert (len(answer["parts"]), len(answer["leased"])) == (MANY // 2, MANY // 2)


def test_reporting_with_a_session_costs_the_same_queries_for_batches_of_1_and_1000_parts(
    bucket, api_client, count
):
    small, large = new_upload(api_client, 1), new_upload(api_client, MANY)
    ok(session_sign(api_client, small, [1], session=SESSION_A))
    ok(session_sign(api_client, large, range(1, MANY + 1), session=SESSION_A))

    def session_report(upload: Upload, numbers):
        parts = [{"number": n, "etag": etag(n), "checksum": CHECKSUM} for n in numbers]
        body = {"parts": parts, "session": SESSION_A}
        return api_client.post(f"/api/uploads/{upload.pk}/parts/", body, format="json")

    count(
        "report-session",
        [
            lambda: session_report(small, [1]),
            lambda: session_report(large, [1]),
            lambda: session_report(large, range(1, MANY + 1)),
        ],
    )


@pytest.mark.parametrize("reported", [True, False], ids=["parts-reported", "parts-unreported"])
def test_completing_costs_the_same_queries_for_1_and_1000_parts(
    bucket, api_client, s3_side, count, reported
):
    uploads = []
    for parts in (1, MANY):
        upload = uploaded(api_client, s3_side, parts) if reported else new_upload(api_client, parts)
        if not reported:
            ok(sign(api_client, upload, range(1, parts + 1)))
            s3_side.put(upload, range(1, parts + 1))
        uploads.append(upload)
    small, large = uploads
    count(
        "complete",
        [
            lambda: api_client.post(f"/api/uploads/{small.pk}/complete/"),
            lambda: api_client.post(f"/api/uploads/{large.pk}/complete/"),
        ],
    )
    large.refresh_from_db()
    assert (large.status, large.size) == (Upload.Status.COMPLETED, MANY * PART)


def test_aborting_costs_the_same_queries_for_1_and_1000_parts(bucket, api_client, s3_side, count):
    small, large = uploaded(api_client, s3_side, 1), uploaded(api_client, s3_side, MANY)
    count(
        "abort",
        [
            lambda: api_client.delete(f"/api/uploads/{small.pk}/"),
            lambda: api_client.delete(f"/api/uploads/{large.pk}/"),
        ],
    )


# --- the Uppy/Companion-compatible endpoints ---------------------------------------------------
def uppy_upload(api_client) -> Upload:
    created = ok(
        api_client.post(
            "/s3/multipart",
            {"filename": "video.mp4", "type": "video/mp4", "metadata": {}},
            format="json",
        )
    )
    return Upload.objects.get(pk=created.data["uploadId"])


def uppy_complete(api_client, upload: Upload, parts: int):
    body = {"parts": [{"PartNumber": n, "ETag": f'"{etag(n)}"'} for n in range(1, parts + 1)]}
    return api_client.post(
        f"/s3/multipart/{upload.pk}/complete?key={upload.key}", body, format="json"
    )


@pytest.fixture
def uppy_pair(bucket, api_client, s3_side) -> Iterator[tuple[Upload, Upload]]:
    """Two Uppy uploads whose parts S3 holds: 1 part, and 1,000 parts."""
    small, large = uppy_upload(api_client), uppy_upload(api_client)
    s3_side.put(small, [1])
    s3_side.put(large, range(1, MANY + 1))
    return small, large


def test_uppy_creating_costs_a_constant_number_of_queries(bucket, api_client, count):
    body = {"filename": "video.mp4", "type": "video/mp4", "metadata": {}}
    call = lambda: api_client.post("/s3/multipart", body, format="json")  # noqa: E731
    count("uppy-create", [call, call])


def test_uppy_listing_parts_costs_the_same_queries_for_1_and_1000_parts(
    api_client, uppy_pair, count
):
    small, large = uppy_pair
    count(
        "uppy-parts",
        [
            lambda: api_client.get(f"/s3/multipart/{small.pk}?key={small.key}"),
            lambda: api_client.get(f"/s3/multipart/{large.pk}?key={large.key}"),
        ],
    )


def test_uppy_signing_costs_the_same_queries_for_1_part_and_a_batch_of_1000(
    api_client, uppy_pair, count
):
    small, large = uppy_pair
    numbers = ",".join(str(n) for n in range(1, MANY + 1))
    count(
        "uppy-sign",
        [
            lambda: api_client.get(f"/s3/multipart/{small.pk}/1?key={small.key}"),
            lambda: api_client.get(f"/s3/multipart/{large.pk}/{MANY}?key={large.key}"),
            lambda: api_client.get(
                f"/s3/multipart/{large.pk}/batch?key={large.key}&partNumbers={numbers}"
            ),
        ],
    )


def test_uppy_completing_costs_the_same_queries_for_1_and_1000_parts(api_client, uppy_pair, count):
    small, large = uppy_pair
    count(
        "uppy-complete",
        [
            lambda: uppy_complete(api_client, small, 1),
            lambda: uppy_complete(api_client, large, MANY),
        ],
    )
    large.refresh_from_db()
    assert (large.status, large.size) == (Upload.Status.COMPLETED, MANY * PART)


def test_uppy_aborting_costs_the_same_queries_for_1_and_1000_parts(api_client, uppy_pair, count):
    small, large = uppy_pair
    count(
        "uppy-abort",
        [
            lambda: api_client.delete(f"/s3/multipart/{small.pk}?key={small.key}"),
            lambda: api_client.delete(f"/s3/multipart/{large.pk}?key={large.key}"),
        ],
    )


# --- token lookup ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    ["", "short", "pw_" + "x" * 98, "pw_a b", "pw_ünïcode-key-of-some-length", "k" * 19],
    ids=["empty", "short", "too-long", "space", "non-ascii", "19-chars"],
)
def test_a_key_of_no_possible_shape_costs_no_query(db, key, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert ApiToken.find(key) is None


def test_a_key_of_a_possible_shape_is_one_query_with_its_user(user, django_assert_num_queries):
    token, key = ApiToken.issue(user, name="laptop")

    with django_assert_num_queries(1):
        found = ApiToken.find(key)
        assert (found, found.user) == (token, user)


# --- the operators: admin and batch services ----------------------------------------------
def test_the_changelist_query_count_does_not_grow_with_uploads_or_parts(
    admin_client, storage, django_assert_max_num_queries
):
    def add_uploads(count: int) -> None:
        for _ in range(count):
            upload = UploadFactory(owner=UserFactory())
            for number in (1, 2, 3):
                UploadPartFactory(upload=upload, number=number)

    add_uploads(1)
    with CaptureQueriesContext(connection) as one:
        assert admin_client.get(CHANGELIST).status_code == 200
    expected = len(one)
    add_uploads(49)

    with django_assert_max_num_queries(expected):
        response = admin_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 50


def test_extending_the_expiry_of_many_uploads_is_one_statement(db, django_assert_num_queries):
    uploads = [*UploadFactory.create_batch(3), UploadFactory(completed=True)]

    with django_assert_num_queries(1):
        result = services.extend_expiry(uploads, by=timedelta(days=7), abort_days=None)
    assert result.extended == 3


# --- the one-statement part upsert ----------------------------------------------------------
def test_one_statement_writes_a_thousand_parts(bucket, api_client):
    """The reason the counts hold on SQLite: no INSERT is split into 142-row batches."""
    upload = new_upload(api_client, MANY)
    with CaptureQueriesContext(connection) as captured:
        ok(sign(api_client, upload, range(1, MANY + 1)))
    inserts = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    assert UploadPart.objects.filter(upload=upload).count() == MANY


def test_an_upsert_inserts_defaults_and_updates_only_the_named_columns(bucket, api_client):
    upload = new_upload(api_client, 3)
    signed_at = timezone.now().replace(microsecond=123456)
    UploadPart.objects.upsert(
        upload,
        [{"number": 1, "checksum": CHECKSUM, "size": PART, "signed_at": signed_at}],
        update=["checksum"],
    )
    UploadPart.objects.upsert(
        upload,
        [
            {"number": 1, "etag": etag(1), "checksum": "other", "size": 1},
            {"number": 2, "etag": etag(2)},
        ],
        update=["etag"],
    )
    one, two = UploadPart.objects.filter(upload=upload).order_by("number")
    assert (one.etag, one.checksum, one.size, one.signed_at) == (etag(1), CHECKSUM, PART, signed_at)
    assert (two.etag, two.checksum, two.size, two.signed_at) == (etag(2), "", None, None)


def test_an_upsert_with_nothing_to_update_keeps_existing_parts(bucket, api_client):
    upload = new_upload(api_client, 2)
    UploadPart.objects.upsert(upload, [{"number": 1, "etag": etag(1)}], update=[])
    UploadPart.objects.upsert(upload, [{"number": 1, "etag": etag(9)}, {"number": 2}], update=[])
    assert list(
        UploadPart.objects.filter(upload=upload).order_by("number").values_list("etag", flat=True)
    ) == [etag(1), ""]


def test_an_upsert_refuses_an_unknown_column(bucket, api_client):
    upload = new_upload(api_client, 1)
    with pytest.raises(ValueError, match="unknown part columns"):
        UploadPart.objects.upsert(upload, [{"number": 1}], update=["owner"])


def test_other_databases_get_bulk_create(bucket, api_client, monkeypatch):
    upload = new_upload(api_client, 2)
    monkeypatch.setattr(models, "ONE_STATEMENT_VENDORS", ())
    UploadPart.objects.upsert(upload, [{"number": 1, "etag": etag(1)}], update=["etag"])
    UploadPart.objects.upsert(upload, [{"number": 1, "etag": etag(2)}, {"number": 2}], update=[])
    assert list(
        UploadPart.objects.filter(upload=upload).order_by("number").values_list("etag", flat=True)
    ) == [etag(1), ""]
