"""The Uppy/Companion-compatible endpoints: Companion's contract, and Partwise's rules on it."""

import hashlib

import pytest
from django.utils.crypto import get_random_string
from rest_framework.test import APIClient

from tests.support.presigned import put_signed
from uploads.models import Upload

MiB = 1024 * 1024


def start(client, filename="movie.bin", content_type="application/octet-stream"):
    response = client.post(
        "/s3/multipart",
        {"filename": filename, "type": content_type, "metadata": {"name": filename}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    return response.json()


def put_part(client, created, number, body):
    """Sign one part through Uppy's route and PUT it as Uppy does; the ETag S3 answered."""
    signed = client.get(
        f"/s3/multipart/{created['uploadId']}/{number}", {"key": created["key"]}
    ).json()
    return put_signed(signed, body)


@pytest.fixture
def session_client(user) -> APIClient:
    """A logged-in browser: session cookie, CSRF checks on, no token."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "quote", [lambda etag: etag, lambda etag: etag.strip('"')], ids=["uppy5-quoted", "uppy6-bare"]
)
def test_an_uppy_upload_completes_with_quoted_or_bare_etags(api_client, storage, user, quote):
    data = bytes(range(256)) * (5 * MiB // 256) + b"the tail"
    created = start(api_client)
    etags = [
        put_part(api_client, created, 1, data[: 5 * MiB]),
        put_part(api_client, created, 2, data[5 * MiB :]),
    ]
    done = api_client.post(
        f"/s3/multipart/{created['uploadId']}/complete?key={created['key']}",
        {"parts": [{"PartNumber": n, "ETag": quote(etag)} for n, etag in enumerate(etags, 1)]},
        format="json",
    )
    assert done.status_code == 200, done.json()
    assert done.json() == {
        "location": f"http://testserver/api/uploads/{created['uploadId']}/",
        "key": created["key"],
        "bucket": storage.bucket,
    }
    upload = Upload.objects.get(pk=created["uploadId"])
    assert (upload.status, upload.size, upload.owner) == ("completed", len(data), user)
    body = storage.client.get_object(Bucket=storage.bucket, Key=created["key"])["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    again = api_client.post(
        f"/s3/multipart/{created['uploadId']}/complete",
        {"parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, 1)]},
        format="json",
    )
    assert again.json() == done.json()


def test_create_answers_companions_shape_with_a_server_chosen_key(api_client, storage):
    created = start(api_client, filename="my movie.bin")
    upload = Upload.objects.get(pk=created["uploadId"])
    assert created == {"key": upload.key, "uploadId": str(upload.id), "bucket": storage.bucket}
    assert upload.key == f"uploads/{upload.id}/my_movie.bin"
    assert (upload.size, upload.part_count) == (None, None)


def test_a_name_with_nothing_usable_for_a_key_still_gets_a_key(api_client, storage):
    # Found by Schemathesis: Django's get_valid_filename raises on such names (a 400 HTML page).
    created = start(api_client, filename="\U0001146f")
    assert created["key"] == f"uploads/{created['uploadId']}/file"


def test_create_refuses_a_path_in_the_filename_with_a_message_for_uppy5(api_client, storage):
    response = api_client.post(
        "/s3/multipart", {"filename": "a/b.bin", "type": "text/plain"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_filename"
    assert response.json()["message"] == response.json()["detail"]


def test_a_part_url_is_signed_without_a_length_for_uppy(api_client, storage):
    created = start(api_client)
    signed = api_client.get(f"/s3/multipart/{created['uploadId']}/7", {"key": created["key"]})
    assert signed.status_code == 200
    body = signed.json()
    assert set(body) == {"url", "method", "headers", "expires"}
    assert (body["method"], body["headers"], body["expires"]) == ("PUT", {}, 900)
    assert "partNumber=7" in body["url"]
    assert "content-length" not in body["url"].lower()


def test_batch_signing_answers_one_url_per_part(api_client, storage):
    created = start(api_client)
    response = api_client.get(
        f"/s3/multipart/{created['uploadId']}/batch",
        {"key": created["key"], "partNumbers": "1,2,3"},
    )
    assert response.status_code == 200
    urls = response.json()["presignedUrls"]
    assert sorted(urls) == ["1", "2", "3"]
    assert all(f"partNumber={n}" in urls[n] for n in urls)


def test_listing_parts_answers_s3_part_objects(api_client, storage):
    created = start(api_client)
    etag = put_part(api_client, created, 1, b"x" * (5 * MiB))
    response = api_client.get(f"/s3/multipart/{created['uploadId']}", {"key": created["key"]})
    assert response.status_code == 200
    (part,) = response.json()
    assert (part["PartNumber"], part["Size"], part["ETag"]) == (1, 5 * MiB, etag)
    assert part["LastModified"]


def test_abort_answers_an_empty_object_and_aborts(api_client, storage):
    created = start(api_client)
    response = api_client.delete(f"/s3/multipart/{created['uploadId']}?key={created['key']}")
    assert (response.status_code, response.json()) == (200, {})
    assert Upload.objects.get(pk=created["uploadId"]).status == "aborted"
    assert storage.list_multipart_uploads("uploads/") == []


def test_complete_with_a_reported_part_missing_in_s3_answers_part_missing(api_client, storage):
    created = start(api_client)
    etag = put_part(api_client, created, 1, b"x" * (5 * MiB))
    response = api_client.post(
        f"/s3/multipart/{created['uploadId']}/complete",
        {"parts": [{"PartNumber": 1, "ETag": etag}, {"PartNumber": 2, "ETag": "a" * 32}]},
        format="json",
    )
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["missing_parts"]) == ("part_missing", [2])
    assert Upload.objects.get(pk=created["uploadId"]).status == "uploading"


def test_complete_refuses_an_etag_s3_does_not_hold(api_client, storage):
    created = start(api_client)
    put_part(api_client, created, 1, b"x" * 100)
    response = api_client.post(
        f"/s3/multipart/{created['uploadId']}/complete",
        {"parts": [{"PartNumber": 1, "ETag": '"' + "b" * 32 + '"'}]},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["code"] == "part_mismatch"


def test_complete_refuses_a_small_part_before_the_last(api_client, storage):
    created = start(api_client)
    parts = [
        {"PartNumber": n, "ETag": put_part(api_client, created, n, b"y" * MiB)} for n in (1, 2)
    ]
    response = api_client.post(
        f"/s3/multipart/{created['uploadId']}/complete", {"parts": parts}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "part_mismatch")


def test_simple_uploads_are_refused_with_a_clear_error(api_client, storage):
    response = api_client.get("/s3/params", {"filename": "a.txt", "type": "text/plain"})
    assert response.status_code == 400
    assert response.json()["code"] == "multipart_required"
    assert "shouldUseMultipart: true" in response.json()["message"]


# --- CSRF for session logins -----------------------------------------------------------------
@pytest.mark.parametrize(
    "origin", ["http://testserver", "https://trusted.example"], ids=["same-origin", "trusted"]
)
def test_a_session_post_from_our_origin_needs_no_csrf_token(
    session_client, storage, settings, origin
):
    settings.CSRF_TRUSTED_ORIGINS = ["https://trusted.example"]
    response = session_client.post(
        "/s3/multipart", {"filename": "a.bin", "type": ""}, format="json", HTTP_ORIGIN=origin
    )
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize(
    "origin",
    [None, "https://evil.example", "null", "http://testserver.evil.example"],
    ids=["no-origin", "other-site", "opaque", "lookalike"],
)
def test_a_session_post_from_elsewhere_without_a_csrf_token_is_refused(
    session_client, storage, origin
):
    extra = {"HTTP_ORIGIN": origin} if origin else {}
    response = session_client.post(
        "/s3/multipart", {"filename": "a.bin", "type": ""}, format="json", **extra
    )
    assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")
    assert not Upload.objects.exists()


def test_a_session_delete_from_another_site_is_refused(session_client, api_client, storage):
    created = start(api_client)
    response = session_client.delete(
        f"/s3/multipart/{created['uploadId']}", HTTP_ORIGIN="https://evil.example"
    )
    assert response.status_code == 403
    assert Upload.objects.get(pk=created["uploadId"]).status == "uploading"


def test_a_session_post_with_a_csrf_token_works_as_in_django(session_client, storage):
    token = get_random_string(32)  # a CSRF secret, as Django's cookie holds it
    session_client.cookies["csrftoken"] = token
    response = session_client.post(
        "/s3/multipart", {"filename": "a.bin", "type": ""}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200, response.json()


def test_a_form_encoded_post_is_refused_even_from_our_origin(session_client, storage):
    response = session_client.post(
        "/s3/multipart", {"filename": "a.bin", "type": ""}, HTTP_ORIGIN="http://testserver"
    )
    assert response.status_code == 415
    assert not Upload.objects.exists()
