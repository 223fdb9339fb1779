"""The REST API's contract: every call, its errors, owner isolation, CSRF, throttling, queries.

Whole response bodies are compared; `Like` stands in for the values a test cannot know
(generated ids, presigned URLs, timestamps).
"""

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import requests
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from tests.factories import UploadFactory
from tests.support.s3_faults import s3_answers, s3_error
from uploads import services
from uploads.models import Upload, UploadPart
from uploads.parts import MiB
from uploads.services import ReportedPart
from uploads.storage import StoredPart

pytestmark = [pytest.mark.unit, pytest.mark.django_db]

SIZE = 11 * MiB  # three parts of 5, 5 and 1 MiB
DATA = bytes(range(256)) * (SIZE // 256)
LIST = "/api/uploads/"


class Like:
    """Equal to any value for which `test` holds; shows `name` in assertion diffs."""

    def __init__(self, name: str, test: Callable[[Any], bool]) -> None:
        self.name, self.test = name, test

    def __eq__(self, other: object) -> bool:
        return self.test(other)

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _is_uuid(value: object) -> bool:
    try:
        return str(uuid.UUID(str(value))) == value
    except ValueError:
        return False


def _is_datetime(value: object) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


ANY_ID = Like("uuid", _is_uuid)
ANY_DATETIME = Like("datetime", _is_datetime)


def key_of(filename: str) -> Like:
    return Like(
        f"uploads/<uuid>/{filename}",
        lambda v: v.startswith("uploads/") and v.endswith(f"/{filename}"),
    )


def part_url(number: int) -> Like:
    return Like(
        f"presigned url of part {number}",
        lambda v: (
            v.startswith("https://") and f"partNumber={number}&" in v and "X-Amz-Signature=" in v
        ),
    )


def upload_body(**fields: Any) -> dict[str, Any]:
    """The JSON of a fresh 11 MiB upload named movie.mp4, with `fields` changed."""
    return {
        "id": ANY_ID,
        "status": "uploading",
        "filename": "movie.mp4",
        "size": SIZE,
        "content_type": "video/mp4",
        "key": key_of("movie.mp4"),
        "part_size": 5 * MiB,
        "part_count": 3,
        "checksum_algorithm": "",
        "fingerprint": "",
        "bytes_uploaded": 0,
        "parts_uploaded": 0,
        "created_at": ANY_DATETIME,
        "updated_at": ANY_DATETIME,
        "expires_at": ANY_DATETIME,
        "completed_at": None,
        "etag": "",
        "checksum": "",
        "failure_reason": "",
        **fields,
    }


def create(client: APIClient, **fields: Any):
    body = {"filename": "movie.mp4", "size": SIZE, "part_size": 5 * MiB, **fields}
    return client.post(LIST, body, format="json")


def put_part(storage, upload: Upload, number: int, body: bytes | None = None) -> str:
    """PUT a part straight into S3, as the client does with a presigned URL."""
    if body is None:
        body = DATA[(number - 1) * 5 * MiB : number * 5 * MiB]
    response = storage.client.upload_part(
        Bucket=storage.bucket,
        Key=upload.key,
        UploadId=upload.s3_upload_id,
        PartNumber=number,
        Body=body,
    )
    return response["ETag"].strip('"')


@pytest.fixture
def upload(storage, user) -> Upload:
    return services.start_upload(owner=user, filename="movie.mp4", size=SIZE, part_size=5 * MiB)[0]


@pytest.fixture
def theirs(storage, other_user) -> Upload:
    return services.start_upload(owner=other_user, filename="theirs.bin", size=SIZE)[0]


# --- the full flow ------------------------------------------------------------------------------
def test_a_file_goes_to_s3_in_parts_through_the_api(api_client, storage):
    # 1. Start: the server plans three parts and creates the S3 multipart upload.
    created = create(api_client)
    assert created.status_code == 201, created.json()
    upload = created.json()
    assert upload == upload_body(parts=[])

    # 2. Sign all parts in one call.
    signed = api_client.post(
        f"{LIST}{upload['id']}/sign/", {"parts": [{"number": n} for n in (1, 2, 3)]}, format="json"
    )
    assert signed.status_code == 200
    assert signed.json() == {
        "parts": [
            {
                "number": n,
                "url": part_url(n),
                "method": "PUT",
                "headers": {},
                "size": size,
                "expires_at": ANY_DATETIME,
            }
            for n, size in ((1, 5 * MiB), (2, 5 * MiB), (3, 1 * MiB))
        ]
    }

    # 3. PUT each part's bytes to its URL, exactly as a browser does, keeping the ETags.
    reported = []
    for part in signed.json()["parts"]:
        start = (part["number"] - 1) * upload["part_size"]
        body = DATA[start : start + part["size"]]
        put = requests.put(part["url"], data=body, headers=part["headers"], timeout=30)
        assert put.status_code == 200, put.text
        reported.append({"number": part["number"], "etag": put.headers["ETag"]})

    # 4. Report the parts: the answer is the progress.
    progress = api_client.post(f"{LIST}{upload['id']}/parts/", {"parts": reported}, format="json")
    assert progress.status_code == 200
    assert progress.json() == upload_body(id=upload["id"], bytes_uploaded=SIZE, parts_uploaded=3)

    # 5. Complete: the server checks every part against S3 and assembles the object.
    done = api_client.post(f"{LIST}{upload['id']}/complete/")
    assert done.status_code == 200, done.json()
    etags = [part["etag"].strip('"') for part in reported]
    assert done.json() == upload_body(
        id=upload["id"],
        status="completed",
        bytes_uploaded=SIZE,
        parts_uploaded=3,
        completed_at=ANY_DATETIME,
        etag=Like("multipart etag", lambda v: v.endswith("-3")),
        parts=[
            {"number": 1, "size": 5 * MiB, "etag": etags[0], "checksum": ""},
            {"number": 2, "size": 5 * MiB, "etag": etags[1], "checksum": ""},
            {"number": 3, "size": 1 * MiB, "etag": etags[2], "checksum": ""},
        ],
    )
    body = storage.client.get_object(Bucket=storage.bucket, Key=upload["key"])["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(DATA).digest()

    # 6. Completing again answers the same.
    assert api_client.post(f"{LIST}{upload['id']}/complete/").json() == done.json()


# --- each call ----------------------------------------------------------------------------------
def test_create_answers_201_with_the_upload(api_client, storage):
    response = create(api_client, fingerprint="fp-1", checksum_algorithm="SHA256")

    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    assert response.json() == upload_body(fingerprint="fp-1", checksum_algorithm="SHA256", parts=[])


def test_create_with_the_same_client_token_answers_200_with_the_same_upload(api_client, storage):
    first = create(api_client, client_token="tok-1")

    again = create(api_client, client_token="tok-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Upload.objects.count() == 1


def test_create_with_a_used_client_token_for_another_file_answers_409(api_client, storage):
    first = create(api_client, client_token="tok-1")

    response = create(api_client, client_token="tok-1", size=SIZE + 1)

    assert response.status_code == 409
    assert response.json() == {
        "code": "idempotency_conflict",
        "detail": "This client_token was already used for a different upload.",
        "upload": first.json()["id"],
    }


def test_create_of_an_empty_file_plans_one_part(api_client, storage):
    response = api_client.post(LIST, {"filename": "empty.txt", "size": 0}, format="json")

    assert response.status_code == 201
    assert (response.json()["part_count"], response.json()["content_type"]) == (1, "text/plain")


def test_list_answers_the_callers_uploads_newest_first(api_client, storage, user, theirs):
    older = UploadFactory(owner=user, fingerprint="fp-a")
    newer = UploadFactory(owner=user, fingerprint="fp-b", completed=True)

    response = api_client.get(LIST)

    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [
            upload_body(
                id=str(newer.pk),
                filename=newer.filename,
                key=newer.key,
                content_type="application/octet-stream",
                fingerprint="fp-b",
                status="completed",
                bytes_uploaded=SIZE,
                parts_uploaded=3,
                completed_at=ANY_DATETIME,
                etag=newer.etag,
            ),
            upload_body(
                id=str(older.pk),
                filename=older.filename,
                key=older.key,
                content_type="application/octet-stream",
                fingerprint="fp-a",
            ),
        ],
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=completed", ["done"]),
        ("status=uploading", ["fresh"]),
        ("fingerprint=fp-a", ["fresh"]),
        ("fingerprint=fp-a&status=completed", []),
    ],
    ids=["status", "other status", "fingerprint", "both"],
)
def test_list_filters_by_status_and_fingerprint(api_client, user, query, expected):
    UploadFactory(owner=user, filename="fresh", fingerprint="fp-a")
    UploadFactory(owner=user, filename="done", fingerprint="fp-b", completed=True)

    response = api_client.get(f"{LIST}?{query}")

    assert [u["filename"] for u in response.json()["results"]] == expected


def test_list_pages_with_a_cursor(api_client, user):
    UploadFactory.create_batch(3, owner=user)

    first = api_client.get(f"{LIST}?page_size=2").json()
    second = api_client.get(first["next"]).json()

    assert len(first["results"]) == 2
    assert len(second["results"]) == 1
    assert second["next"] is None


def test_detail_answers_the_upload_with_its_parts_reconciled_with_s3(
    api_client, storage, upload, user
):
    etag = put_part(storage, upload, 2)  # uploaded but never reported

    response = api_client.get(f"{LIST}{upload.pk}/")

    assert response.status_code == 200
    assert response.json() == upload_body(
        id=str(upload.pk),
        key=upload.key,
        bytes_uploaded=5 * MiB,
        parts_uploaded=1,
        parts=[{"number": 2, "size": 5 * MiB, "etag": etag, "checksum": ""}],
    )


def test_sign_answers_the_headers_to_send_with_a_checksum(api_client, storage, upload):
    checksum = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="

    response = api_client.post(
        f"{LIST}{upload.pk}/sign/", {"parts": [{"number": 3, "checksum": checksum}]}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {
        "parts": [
            {
                "number": 3,
                "url": Like("url signing the checksum", lambda v: "x-amz-checksum-sha256" in v),
                "method": "PUT",
                "headers": {"x-amz-checksum-sha256": checksum},
                "size": 1 * MiB,
                "expires_at": ANY_DATETIME,
            }
        ]
    }


def test_report_parts_answers_the_progress(api_client, storage, upload):
    etag = put_part(storage, upload, 1)

    response = api_client.post(
        f"{LIST}{upload.pk}/parts/", {"parts": [{"number": 1, "etag": f'"{etag}"'}]}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == upload_body(
        id=str(upload.pk), key=upload.key, bytes_uploaded=5 * MiB, parts_uploaded=1
    )


def test_complete_with_a_part_missing_answers_409_naming_it(api_client, storage, upload):
    put_part(storage, upload, 1)
    put_part(storage, upload, 3, DATA[: 1 * MiB])

    response = api_client.post(f"{LIST}{upload.pk}/complete/")

    assert response.status_code == 409
    assert response.json() == {
        "code": "part_missing",
        "detail": "1 of 3 parts are not in storage.",
        "missing_parts": [2],
    }
    assert Upload.objects.get(pk=upload.pk).status == "uploading"


def test_complete_with_a_part_of_the_wrong_size_answers_409(api_client, storage, upload):
    for number in (1, 2):
        put_part(storage, upload, number)
    put_part(storage, upload, 3, b"short")

    response = api_client.post(f"{LIST}{upload.pk}/complete/")

    assert response.status_code == 409
    assert response.json() == {
        "code": "part_mismatch",
        "detail": "These parts do not have their planned size.",
        "parts": [3],
    }


def test_complete_refused_by_s3_answers_502_with_s3s_code(api_client, storage, upload, monkeypatch):
    for number in (1, 2, 3):
        put_part(storage, upload, number)

    monkeypatch.setattr(
        storage.client,
        "complete_multipart_upload",
        s3_answers(s3_error("InvalidPart", 400, "CompleteMultipartUpload")),
    )

    response = api_client.post(f"{LIST}{upload.pk}/complete/")

    assert response.status_code == 502
    assert response.json() == {
        "code": "storage_failed",
        "detail": "S3 refused CompleteMultipartUpload (InvalidPart).",
        "s3_code": "InvalidPart",
    }
    assert api_client.get(f"{LIST}{upload.pk}/").json()["status"] == "failed"


def test_delete_aborts_and_repeating_it_answers_the_same(api_client, storage, upload):
    first = api_client.delete(f"{LIST}{upload.pk}/")
    again = api_client.delete(f"{LIST}{upload.pk}/")

    assert first.status_code == again.status_code == 200
    assert first.json() == upload_body(id=str(upload.pk), key=upload.key, status="aborted")
    assert again.json()["status"] == "aborted"
    assert storage.list_multipart_uploads("uploads/") == []


def test_delete_of_a_completed_upload_answers_409(api_client, user, storage):
    done = UploadFactory(owner=user, completed=True)

    response = api_client.delete(f"{LIST}{done.pk}/")

    assert response.status_code == 409
    assert response.json() == {
        "code": "upload_conflict",
        "detail": "A completed upload cannot be aborted.",
        "status": "completed",
    }
    assert Upload.objects.get(pk=done.pk).status == "completed"


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("post", "sign/", {"parts": [{"number": 1}]}),
        ("post", "parts/", {"parts": [{"number": 1, "etag": "a" * 32}]}),
    ],
    ids=["sign", "report"],
)
def test_calls_on_an_aborted_upload_answer_409(api_client, user, method, suffix, body):
    aborted = UploadFactory(owner=user, aborted=True)

    response = getattr(api_client, method)(f"{LIST}{aborted.pk}/{suffix}", body, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "upload_conflict"


# --- the catalogue of bad inputs ----------------------------------------------------------------
class Raw:
    """A body sent as bytes with its own content type (not encoded by the test client)."""

    def __init__(self, data: bytes, content_type: str) -> None:
        self.data, self.content_type = data, content_type


def _parts(*numbers: Any) -> dict[str, Any]:
    return {"parts": [{"number": n} for n in numbers]}


def _report(**part: Any) -> dict[str, Any]:
    return {"parts": [{"number": 1, "etag": "a" * 32, **part}]}


def _new(**fields: Any) -> dict[str, Any]:
    return {"filename": "a.bin", "size": 10, **fields}


SIGN, PARTS, COMPLETE, DETAIL = "{mine}/sign/", "{mine}/parts/", "{mine}/complete/", "{mine}/"
BAD_INPUTS = [
    # create: sizes
    pytest.param("post", "", _new(size="10"), 400, "invalid", id="size as string"),
    pytest.param("post", "", _new(size=True), 400, "invalid", id="size as bool"),
    pytest.param("post", "", _new(size=10.5), 400, "invalid", id="size as float"),
    pytest.param("post", "", _new(size=-1), 400, "invalid", id="negative size"),
    pytest.param("post", "", _new(size=None), 400, "invalid", id="size null"),
    pytest.param("post", "", {"filename": "a.bin"}, 400, "invalid", id="size missing"),
    pytest.param(
        "post", "", _new(size=5 * 1024**4 + 1), 413, "upload_too_large", id="size over 5 TiB"
    ),
    pytest.param("post", "", _new(size=2**70), 413, "upload_too_large", id="huge size"),
    pytest.param("post", "", _new(part_size=1), 400, "invalid", id="part size 1 byte"),
    pytest.param("post", "", _new(part_size="5242880"), 400, "invalid", id="part size as string"),
    # create: names, types and other fields
    pytest.param(
        "post", "", _new(filename="../etc/passwd"), 400, "invalid_filename", id="filename ../"
    ),
    pytest.param("post", "", _new(filename="a\x00b"), 400, "invalid", id="filename NUL"),
    pytest.param(
        "post",
        "",
        _new(filename="a\x07b"),
        400,
        "invalid_filename",
        id="filename control character",
    ),
    pytest.param(
        "post", "", _new(filename="a\u202eb"), 400, "invalid_filename", id="filename bidi override"
    ),
    pytest.param(
        "post", "", _new(filename="x" * 2000), 400, "invalid", id="filename 2,000 characters"
    ),
    pytest.param(
        "post", "", _new(filename="x" * 300), 400, "invalid_filename", id="filename 300 characters"
    ),
    pytest.param("post", "", _new(filename=""), 400, "invalid", id="filename empty"),
    pytest.param("post", "", _new(filename=["a"]), 400, "invalid", id="filename as list"),
    pytest.param(
        "post", "", _new(content_type="text/plain"), 415, "type_not_allowed", id="disallowed type"
    ),
    pytest.param("post", "", _new(content_type="not a type"), 400, "invalid", id="malformed type"),
    pytest.param(
        "post", "", _new(checksum_algorithm="MD5"), 400, "invalid", id="unknown checksum algorithm"
    ),
    pytest.param(
        "post", "", _new(client_token="has spaces"), 400, "invalid", id="malformed client token"
    ),
    pytest.param(
        "post", "", _new(fingerprint="x" * 129), 400, "invalid", id="fingerprint too long"
    ),
    pytest.param("post", "", [], 400, "invalid", id="body a list"),
    # bodies
    pytest.param(
        "post", "", Raw(b"{not json", "application/json"), 400, "parse_error", id="non-JSON body"
    ),
    pytest.param(
        "post",
        "",
        Raw(b"filename=a&size=1", "application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
        id="form body",
    ),
    pytest.param(
        "post", "", Raw(b"hello", "text/plain"), 415, "unsupported_media_type", id="text body"
    ),
    pytest.param(
        "post",
        "",
        _new(fingerprint="x" * (1024 * 1024)),
        413,
        "request_too_large",
        id="oversized body",
    ),
    pytest.param(
        "post",
        SIGN,
        Raw(b"x" * (1024 * 1024 + 1), "application/json"),
        413,
        "request_too_large",
        id="oversized sign body",
    ),
    # sign: part numbers
    pytest.param("post", SIGN, _parts(0), 400, "invalid", id="part 0"),
    pytest.param("post", SIGN, _parts(10_001), 400, "invalid", id="part 10001"),
    pytest.param("post", SIGN, _parts(-1), 400, "invalid", id="part -1"),
    pytest.param("post", SIGN, _parts("1"), 400, "invalid", id="part as string"),
    pytest.param("post", SIGN, _parts(1.0), 400, "invalid", id="part as float"),
    pytest.param("post", SIGN, _parts(True), 400, "invalid", id="part as bool"),
    pytest.param("post", SIGN, _parts(None), 400, "invalid", id="part null"),
    pytest.param("post", SIGN, _parts(4), 400, "part_out_of_range", id="part past the last"),
    pytest.param("post", SIGN, _parts(1, 1), 400, "invalid", id="duplicate parts"),
    pytest.param("post", SIGN, {"parts": []}, 400, "invalid", id="empty part list"),
    pytest.param("post", SIGN, {}, 400, "invalid", id="parts missing"),
    pytest.param("post", SIGN, {"parts": {"number": 1}}, 400, "invalid", id="parts not a list"),
    pytest.param("post", SIGN, _parts(*range(1, 1002)), 400, "invalid", id="too many parts"),
    pytest.param(
        "post",
        SIGN,
        {"parts": [{"number": 1, "checksum": "abc"}]},
        400,
        "invalid",
        id="malformed checksum",
    ),
    # report
    pytest.param("post", PARTS, _report(etag="xyz"), 400, "invalid", id="malformed etag"),
    pytest.param("post", PARTS, _report(etag=None), 400, "invalid", id="etag null"),
    pytest.param("post", PARTS, {"parts": [{"number": 1}]}, 400, "invalid", id="etag missing"),
    pytest.param("post", PARTS, _report(number=0), 400, "invalid", id="reported part 0"),
    pytest.param(
        "post", PARTS, _report(checksum="!!"), 400, "invalid", id="reported checksum malformed"
    ),
    # ids: unknown, malformed, someone else's
    pytest.param("get", "{unknown}/", None, 404, "not_found", id="unknown id"),
    pytest.param("get", "not-a-uuid/", None, 404, "not_found", id="malformed id"),
    pytest.param("get", "{mine}x/", None, 404, "not_found", id="id with trailing junk"),
    pytest.param("post", "12345/complete/", None, 404, "not_found", id="numeric id"),
    pytest.param("get", "{theirs}/", None, 404, "not_found", id="their detail"),
    pytest.param("delete", "{theirs}/", None, 404, "not_found", id="their abort"),
    pytest.param("post", "{theirs}/sign/", _parts(1), 404, "not_found", id="their sign"),
    pytest.param("post", "{theirs}/parts/", _report(), 404, "not_found", id="their report"),
    pytest.param("post", "{theirs}/complete/", None, 404, "not_found", id="their complete"),
    pytest.param("delete", "{unknown}/", None, 404, "not_found", id="abort unknown"),
    # list and methods
    pytest.param("get", "?status=bogus", None, 400, "invalid", id="unknown status filter"),
    pytest.param("get", "?cursor=garbage", None, 404, "not_found", id="garbage cursor"),
    pytest.param("put", DETAIL, _new(), 405, "method_not_allowed", id="PUT detail"),
    pytest.param("get", COMPLETE, None, 405, "method_not_allowed", id="GET complete"),
]


def snapshot() -> tuple[list[dict], list[dict]]:
    return (
        list(Upload.objects.order_by("pk").values()),
        list(UploadPart.objects.order_by("pk").values()),
    )


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_INPUTS)
def test_bad_input_answers_a_json_code_and_changes_nothing(
    api_client, storage, user, upload, theirs, settings, method, path, body, status, code
):
    settings.UPLOADS_ALLOWED_TYPES = ["application/*", "video/*", "image/*"]
    services.record_parts(upload, parts=[ReportedPart(2, "b" * 32)], by=user)
    url = LIST + path.format(mine=upload.pk, theirs=theirs.pk, unknown=uuid.uuid4())
    before, in_s3 = snapshot(), storage.list_multipart_uploads("")

    if isinstance(body, Raw):
        response = getattr(api_client, method)(url, body.data, content_type=body.content_type)
    else:
        response = getattr(api_client, method)(url, body, format="json")

    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert answer["code"] == code
    assert isinstance(answer["detail"], str)
    assert answer["detail"]
    assert snapshot() == before
    assert storage.list_multipart_uploads("") == in_s3


def test_the_catalogue_covers_at_least_thirty_bad_inputs():
    assert len(BAD_INPUTS) >= 30


def test_a_validation_error_names_the_fields(api_client, storage):
    response = api_client.post(LIST, {"filename": "a", "size": "1"}, format="json")

    assert response.json() == {
        "code": "invalid",
        "detail": "The request is not valid.",
        "errors": {"size": ["A JSON integer is required."]},
    }


# --- owner isolation ----------------------------------------------------------------------------
CALLS = [
    pytest.param("get", "", None, id="detail"),
    pytest.param("delete", "", None, id="abort"),
    pytest.param("post", "sign/", _parts(1), id="sign"),
    pytest.param("post", "parts/", _report(), id="report"),
    pytest.param("post", "complete/", None, id="complete"),
]


@pytest.mark.parametrize(("method", "suffix", "body"), CALLS)
def test_another_users_upload_answers_exactly_like_a_missing_one(
    other_client, storage, upload, method, suffix, body
):
    before = snapshot()

    theirs = getattr(other_client, method)(f"{LIST}{upload.pk}/{suffix}", body, format="json")
    missing = getattr(other_client, method)(f"{LIST}{uuid.uuid4()}/{suffix}", body, format="json")

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {"code": "not_found", "detail": "Not found."}
    assert snapshot() == before


def test_the_list_holds_only_the_callers_uploads(other_client, upload, theirs):
    response = other_client.get(LIST)

    assert [u["id"] for u in response.json()["results"]] == [str(theirs.pk)]


def test_a_fingerprint_does_not_reveal_another_users_upload(other_client, user):
    UploadFactory(owner=user, fingerprint="shared")

    assert other_client.get(f"{LIST}?fingerprint=shared").json()["results"] == []


# --- authentication, CSRF, throttling -----------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("post", ""),
        ("get", "{id}/"),
        ("delete", "{id}/"),
        ("post", "{id}/sign/"),
        ("post", "{id}/parts/"),
        ("post", "{id}/complete/"),
    ],
    ids=["list", "create", "detail", "abort", "sign", "report", "complete"],
)
def test_every_call_without_credentials_answers_401(db, method, path):
    upload = UploadFactory()

    response = getattr(APIClient(), method)(LIST + path.format(id=upload.pk), {}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {
        "code": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
    }


def test_a_wrong_token_answers_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    response = client.get(LIST)

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


@pytest.fixture
def session_client(user) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_session_writes_need_the_csrf_token(session_client, storage):
    response = create(session_client)

    assert response.status_code == 403
    assert response.json() == {
        "code": "csrf_failed",
        "detail": "CSRF Failed: CSRF cookie not set.",
    }
    assert not Upload.objects.exists()


def test_session_writes_with_the_csrf_token_work(session_client, storage):
    token = "a" * 32
    session_client.cookies["csrftoken"] = token

    created = session_client.post(
        LIST,
        {"filename": "movie.mp4", "size": SIZE},
        format="json",
        HTTP_X_CSRFTOKEN=token,
    )
    aborted_without = session_client.delete(f"{LIST}{created.json()['id']}/")

    assert created.status_code == 201
    assert aborted_without.status_code == 403
    assert aborted_without.json()["code"] == "csrf_failed"


def test_session_reads_need_no_csrf_token(session_client, user):
    UploadFactory(owner=user)

    assert session_client.get(LIST).status_code == 200


def test_too_many_requests_answer_429_with_retry_after(api_client, monkeypatch):
    # Re-enable the user throttle (off by default in tests) at two requests a minute.
    monkeypatch.setattr(APIView, "throttle_classes", [UserRateThrottle])
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "2/min"})
    cache.clear()

    statuses = [api_client.get(LIST).status_code for _ in range(3)]
    response = api_client.get(LIST)

    assert statuses == [200, 200, 429]
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["code"] == "throttled"
    cache.clear()


# --- query counts -------------------------------------------------------------------------------
@pytest.fixture
def big_upload(storage, user) -> Upload:
    """A 1,000-part upload that S3 knows of."""
    return services.start_upload(
        owner=user, filename="big.bin", size=1000 * 5 * MiB, part_size=5 * MiB
    )[0]


def _record(upload: Upload, numbers: range) -> list[StoredPart]:
    plan = upload.plan
    parts = [
        UploadPart(upload=upload, number=n, size=plan.size_of(n), etag=f"{n:032x}") for n in numbers
    ]
    UploadPart.objects.bulk_create(parts)
    return [StoredPart(number=p.number, size=p.size, etag=p.etag) for p in parts]


QUERY_BOUND = 10
CHECKSUM = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="


def test_signing_costs_the_same_queries_for_one_part_or_a_hundred(
    api_client, big_upload, django_assert_max_num_queries
):
    url = f"{LIST}{big_upload.pk}/sign/"
    costs = []
    for numbers in (range(1, 2), range(2, 102)):
        body = {"parts": [{"number": n, "checksum": CHECKSUM} for n in numbers]}
        with django_assert_max_num_queries(QUERY_BOUND) as queries:
            response = api_client.post(url, body, format="json")
        assert len(response.json()["parts"]) == len(numbers)
        costs.append(len(queries))

    assert costs[0] == costs[1]


def test_reporting_costs_the_same_queries_for_one_part_or_a_hundred(
    api_client, big_upload, django_assert_max_num_queries
):
    url = f"{LIST}{big_upload.pk}/parts/"
    costs = []
    for numbers in (range(1, 2), range(2, 102)):
        body = {"parts": [{"number": n, "etag": f"{n:032x}"} for n in numbers]}
        with django_assert_max_num_queries(QUERY_BOUND) as queries:
            response = api_client.post(url, body, format="json")
        assert response.json()["parts_uploaded"] == numbers.stop - 1
        costs.append(len(queries))

    assert costs[0] == costs[1]


def test_detail_costs_the_same_queries_for_one_part_or_a_thousand(
    api_client, storage, big_upload, django_assert_max_num_queries, monkeypatch
):
    stored: list[StoredPart] = []
    # S3's answer for the recorded parts: ListParts is an HTTP call, not a query, and moto
    # would need 1,000 real parts.
    monkeypatch.setattr(storage, "list_parts", lambda key, upload_id: stored)
    costs = []
    for numbers in (range(1, 2), range(2, 1001)):
        stored.extend(_record(big_upload, numbers))
        with django_assert_max_num_queries(QUERY_BOUND) as queries:
            response = api_client.get(f"{LIST}{big_upload.pk}/")
        assert len(response.json()["parts"]) == numbers.stop - 1
        costs.append(len(queries))

    assert costs[0] == costs[1]


def test_listing_costs_the_same_queries_for_one_upload_or_fifty(
    api_client, user, django_assert_max_num_queries
):
    costs = []
    for count in (1, 49):
        UploadFactory.create_batch(count, owner=user)
        with django_assert_max_num_queries(QUERY_BOUND) as queries:
            response = api_client.get(LIST)
        assert response.status_code == 200
        costs.append(len(queries))

    assert len(response.json()["results"]) == 50
    assert costs[0] == costs[1]


def test_creating_costs_a_bounded_number_of_queries(
    api_client, storage, django_assert_max_num_queries
):
    with django_assert_max_num_queries(QUERY_BOUND):
        assert create(api_client).status_code == 201


def test_completing_costs_the_same_queries_whatever_the_part_count(
    api_client, storage, upload, django_assert_max_num_queries
):
    for number in (1, 2):
        put_part(storage, upload, number)
    put_part(storage, upload, 3, DATA[: 1 * MiB])

    with django_assert_max_num_queries(QUERY_BOUND + 5):
        assert api_client.post(f"{LIST}{upload.pk}/complete/").status_code == 200


# --- schema, docs, unknown paths ----------------------------------------------------------------
def test_the_openapi_schema_renders(api_client):
    response = api_client.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/uploads/",
        "/api/uploads/{id}/",
        "/api/uploads/{id}/sign/",
        "/api/uploads/{id}/parts/",
        "/api/uploads/{id}/complete/",
    } <= set(schema["paths"])


def test_the_api_docs_render(api_client):
    response = api_client.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


@pytest.mark.parametrize("method", ["get", "post", "delete"])
@pytest.mark.parametrize(
    "path", ["/api/nope/", "/api/uploads/a/b/c/", "/api/"], ids=["unknown", "too deep", "root"]
)
def test_unknown_api_paths_answer_a_json_404(client, method, path):
    response = getattr(client, method)(path)

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}
