"""The REST API's contract: every call, its errors, owner isolation, CSRF, throttling.

Whole response bodies are compared; `Like` stands in for the values a test cannot know
(generated ids, presigned URLs, timestamps). The catalogue of bad requests is
tests/unit/test_bad_input.py, the query counts are tests/unit/test_query_counts.py.
"""

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import UploadFactory
from tests.support.presigned import put_signed
from tests.support.s3_faults import s3_answers, s3_error
from tests.support.uploads import DATA, SIZE, put_part, start
from uploads import services
from uploads.models import Upload
from uploads.parts import MiB

pytestmark = pytest.mark.django_db

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
# The limits of the default settings, in every upload's JSON.
LIMITS = {
    "sign_batch_max": 1000,
    "report_batch_max": 1000,
    "url_expires_in": 900,
    "session_idle": 30,
}
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
        # No digest asked for: nothing catches a corrupted part before completion.
        "integrity": "none",
        "unverified": True,
        "limits": LIMITS,
        **fields,
    }


def create(client: APIClient, **fields: Any):
    body = {"filename": "movie.mp4", "size": SIZE, "part_size": 5 * MiB, **fields}
    return client.post(LIST, body, format="json")


@pytest.fixture
def upload(storage, user) -> Upload:
    return start(user)


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
        ],
        "leased": [],
        "other_sessions": 0,
    }

    # 3. PUT each part's bytes to its URL, exactly as a browser does, keeping the ETags.
    reported = []
    for part in signed.json()["parts"]:
        start = (part["number"] - 1) * upload["part_size"]
        etag = put_signed(part, DATA[start : start + part["size"]])
        reported.append({"number": part["number"], "etag": etag})

    # 4. Report the parts: the answer is the progress.
    progress = api_client.post(f"{LIST}{upload['id']}/parts/", {"parts": reported}, format="json")
    assert progress.status_code == 200
    assert progress.json() == upload_body(
        id=upload["id"], bytes_uploaded=SIZE, parts_uploaded=3, other_sessions=0
    )

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
    assert response.json() == upload_body(
        fingerprint="fp-1",
        checksum_algorithm="SHA256",
        integrity="store",  # a store never probed: taken to verify what was asked
        unverified=False,
        parts=[],
    )


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
        other_sessions=0,
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
        ],
        "leased": [],
        "other_sessions": 0,
    }


def test_report_parts_answers_the_progress(api_client, storage, upload):
    etag = put_part(storage, upload, 1)

    response = api_client.post(
        f"{LIST}{upload.pk}/parts/", {"parts": [{"number": 1, "etag": f'"{etag}"'}]}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == upload_body(
        id=str(upload.pk),
        key=upload.key,
        bytes_uploaded=5 * MiB,
        parts_uploaded=1,
        other_sessions=0,
    )


@pytest.mark.parametrize(
    ("bodies", "answer"),
    [
        (
            {1: None, 3: DATA[: 1 * MiB]},
            {
                "code": "part_missing",
                "detail": "1 of 3 parts are not in storage.",
                "missing_parts": [2],
            },
        ),
        (
            {1: None, 2: None, 3: b"short"},
            {
                "code": "part_mismatch",
                "detail": "These parts do not have their planned size.",
                "parts": [3],
            },
        ),
    ],
    ids=["a part missing", "a part of the wrong size"],
)
def test_complete_with_parts_not_as_planned_answers_409_naming_them(
    api_client, storage, upload, bodies, answer
):
    for number, body in bodies.items():
        put_part(storage, upload, number, body)

    response = api_client.post(f"{LIST}{upload.pk}/complete/")

    assert response.status_code == 409
    assert response.json() == answer
    assert Upload.objects.get(pk=upload.pk).status == "uploading"


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


# --- errors ---------------------------------------------------------------------------------
def test_a_validation_error_names_the_fields(api_client, storage):
    response = api_client.post(LIST, {"filename": "a", "size": "1"}, format="json")

    assert response.json() == {
        "code": "invalid",
        "detail": "The request is not valid.",
        "errors": {"size": ["A JSON integer is required."]},
    }


# --- owner isolation ----------------------------------------------------------------------------
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


def test_too_many_requests_answer_429_with_retry_after(api_client, shipped_throttles, settings):
    # The shipped throttles (off by default in tests), the user's at two requests a minute.
    settings.UPLOADS_API_THROTTLE_RATES = {"user": "2/min"}

    statuses = [api_client.get(LIST).status_code for _ in range(3)]
    response = api_client.get(LIST)

    assert statuses == [200, 200, 429]
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["code"] == "throttled"
    cache.clear()


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
