"""Whole uploads through the REST API into a real S3 server (SeaweedFS), as clients do them.

The API is driven with DRF's APIClient and a token; part bytes go to the presigned URLs with
`requests`, exactly as a browser would: the URL and the headers the sign call returned, nothing
else. What lands in S3 is read back and compared byte for byte (by SHA-256).
"""

import base64
import hashlib
import os
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.integration.conftest import header_of
from tests.support.presigned import put_signed
from uploads.integrity import part_digest
from uploads.models import Upload

MiB = 1024 * 1024


# --- helpers -----------------------------------------------------------------------------------
def part_bytes(data: bytes, upload: dict, number: int) -> bytes:
    start = (number - 1) * upload["part_size"]
    return data[start : start + upload["part_size"]]


def create(client: APIClient, data: bytes, **fields) -> dict:
    response = client.post(
        "/api/uploads/", {"filename": "film.mov", "size": len(data), **fields}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def sign(client: APIClient, upload: dict, parts: list[dict]) -> dict[int, dict]:
    response = client.post(f"/api/uploads/{upload['id']}/sign/", {"parts": parts}, format="json")
    assert response.status_code == 200, response.json()
    return {part["number"]: part for part in response.json()["parts"]}


def report(client: APIClient, upload: dict, parts: list[dict]) -> dict:
    response = client.post(f"/api/uploads/{upload['id']}/parts/", {"parts": parts}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def stored_bytes(storage, key: str) -> bytes:
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


# --- the full cycle ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "checksum_algorithm", ["", "SHA256"], ids=["etags-only", "sha256-per-part"]
)
def test_a_20_mib_file_uploaded_through_the_api_arrives_in_s3_byte_for_byte(
    api_client, real_s3, checksum_algorithm
):
    data = os.urandom(20 * MiB)

    # 1. Create: the server plans the parts (8 MiB by default: 8 + 8 + 4 MiB).
    upload = create(api_client, data, checksum_algorithm=checksum_algorithm)
    assert (upload["part_size"], upload["part_count"]) == (8 * MiB, 3)
    numbers = range(1, upload["part_count"] + 1)
    # Asked for SHA256, the server answers the digest the store verifies (MD5 on Ceph RGW).
    algorithm = upload["checksum_algorithm"]
    checksums = {
        n: part_digest(algorithm or "SHA256", part_bytes(data, upload, n)) for n in numbers
    }

    # 2. Sign every part in one call; with a digest each URL binds the part's checksum.
    wanted = [
        {"number": n, **({"checksum": checksums[n]} if checksum_algorithm else {})} for n in numbers
    ]
    signed = sign(api_client, upload, wanted)
    for n in numbers:
        expected = {header_of(algorithm): checksums[n]} if algorithm else {}
        assert signed[n]["headers"] == expected
        assert signed[n]["size"] == len(part_bytes(data, upload, n))

    # 3. PUT the bytes straight to S3, 4. report the ETags.
    reported = [
        {"number": n, "etag": put_signed(signed[n], part_bytes(data, upload, n))} for n in numbers
    ]
    if checksum_algorithm:
        reported = [{**part, "checksum": checksums[part["number"]]} for part in reported]
    progress = report(api_client, upload, reported)
    assert (progress["bytes_uploaded"], progress["parts_uploaded"]) == (len(data), 3)

    # 5. Complete: checked against S3's parts, then the final object.
    done = api_client.post(f"/api/uploads/{upload['id']}/complete/")
    assert done.status_code == 200, done.json()
    body = done.json()
    assert body["status"] == "completed"
    assert body["size"] == len(data)
    assert body["etag"].endswith("-3")

    assert hashlib.sha256(stored_bytes(real_s3, upload["key"])).digest() == (
        hashlib.sha256(data).digest()
    )
    if algorithm == "SHA256":
        # S3's composite checksum: the SHA-256 of the parts' SHA-256 digests, and the count.
        composite = hashlib.sha256(
            b"".join(base64.b64decode(checksums[n]) for n in numbers)
        ).digest()
        assert body["checksum"] == f"{base64.b64encode(composite).decode()}-3"

    # Repeating complete answers the same result and leaves the object alone.
    again = api_client.post(f"/api/uploads/{upload['id']}/complete/")
    assert again.status_code == 200
    assert again.json() == body


# --- resuming from another client --------------------------------------------------------------
def test_a_second_client_resumes_by_fingerprint_and_uploads_only_the_missing_parts(
    api_client, user, real_s3
):
    data = os.urandom(16 * MiB + 12345)
    fingerprint = "film.mov:16789561:1700000000:ab12cd34"

    # The first client starts, PUTs parts 1 and 2, reports only part 1, and goes away.
    upload = create(api_client, data, part_size=5 * MiB, fingerprint=fingerprint)
    assert upload["part_count"] == 4
    first_signed = sign(api_client, upload, [{"number": n} for n in (1, 2, 3, 4)])
    etag_1 = put_signed(first_signed[1], part_bytes(data, upload, 1))
    etag_2 = put_signed(first_signed[2], part_bytes(data, upload, 2))  # PUT, never reported
    report(api_client, upload, [{"number": 1, "etag": etag_1}])

    # A second client on another device: a fresh token for the same user, nothing else.
    out = StringIO()
    call_command("create_token", user.username, "--name", "desktop", stdout=out, stderr=StringIO())
    key = out.getvalue().strip()
    assert key.startswith("pw_")
    second = token_client(key)

    listed = second.get("/api/uploads/", {"fingerprint": fingerprint, "status": "uploading"})
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["results"]] == [upload["id"]]

    # The detail shows exactly the parts S3 holds, including the one never reported.
    detail = second.get(f"/api/uploads/{upload['id']}/")
    assert detail.status_code == 200
    parts = {p["number"]: p for p in detail.json()["parts"] if p["etag"]}
    assert sorted(parts) == [1, 2]
    in_s3 = {p.number: p.etag for p in real_s3.list_parts(upload["key"], _s3_id(upload))}
    assert {n: p["etag"] for n, p in parts.items()} == in_s3
    assert in_s3 == {1: etag_1.strip('"'), 2: etag_2.strip('"')}
    assert detail.json()["bytes_uploaded"] == 10 * MiB

    # It uploads only the rest, and completes.
    rest = [n for n in range(1, upload["part_count"] + 1) if n not in parts]
    assert rest == [3, 4]
    signed = sign(second, upload, [{"number": n} for n in rest])
    report(
        second,
        upload,
        [{"number": n, "etag": put_signed(signed[n], part_bytes(data, upload, n))} for n in rest],
    )
    done = second.post(f"/api/uploads/{upload['id']}/complete/")
    assert done.status_code == 200, done.json()
    assert done.json()["status"] == "completed"
    assert stored_bytes(real_s3, upload["key"]) == data


def _s3_id(upload: dict) -> str:
    return Upload.objects.get(pk=upload["id"]).s3_upload_id


# --- completing too early ------------------------------------------------------------------------
def test_completing_with_a_part_missing_answers_409_naming_it_and_stays_resumable(
    api_client, real_s3
):
    data = os.urandom(12 * MiB)
    upload = create(api_client, data, part_size=5 * MiB)
    signed = sign(api_client, upload, [{"number": n} for n in (1, 2, 3)])
    report(
        api_client,
        upload,
        [{"number": n, "etag": put_signed(signed[n], part_bytes(data, upload, n))} for n in (1, 3)],
    )

    early = api_client.post(f"/api/uploads/{upload['id']}/complete/")

    assert early.status_code == 409
    assert early.json() == {
        "code": "part_missing",
        "detail": "1 of 3 parts are not in storage.",
        "missing_parts": [2],
    }
    assert real_s3.head_object(upload["key"]) is None
    detail = api_client.get(f"/api/uploads/{upload['id']}/").json()
    assert detail["status"] == "uploading"
    assert [p["number"] for p in detail["parts"] if p["etag"]] == [1, 3]

    # Still resumable: the same signed URL takes part 2, and completion now succeeds.
    report(
        api_client,
        upload,
        [{"number": 2, "etag": put_signed(signed[2], part_bytes(data, upload, 2))}],
    )
    done = api_client.post(f"/api/uploads/{upload['id']}/complete/")
    assert done.status_code == 200, done.json()
    assert stored_bytes(real_s3, upload["key"]) == data


# --- a part re-signed with another checksum (hardening, defect 15) ----------------------------
def test_a_part_whose_bytes_differ_from_its_recorded_checksum_is_named_and_can_be_resent(
    api_client, real_s3
):
    data = os.urandom(6 * MiB)
    upload = create(api_client, data, part_size=5 * MiB, checksum_algorithm="SHA256")
    first, second = part_bytes(data, upload, 1), part_bytes(data, upload, 2)
    algorithm = upload["checksum_algorithm"]  # SHA256, or MD5 on Ceph RGW

    def digest_of(body: bytes) -> str:
        return part_digest(algorithm, body)

    other = os.urandom(len(first))
    # Part 1 signed with the checksum of `other` and sent so; then re-signed (still unreported)
    # with the checksum of the real bytes, and reported with it: S3 holds `other`.
    stale = sign(api_client, upload, [{"number": 1, "checksum": digest_of(other)}])
    etag_other = put_signed(stale[1], other)
    signed = sign(
        api_client,
        upload,
        [{"number": n, "checksum": digest_of(body)} for n, body in ((1, first), (2, second))],
    )
    etag_2 = put_signed(signed[2], second)
    report(
        api_client,
        upload,
        [
            {"number": 1, "etag": etag_other, "checksum": digest_of(first)},
            {"number": 2, "etag": etag_2, "checksum": digest_of(second)},
        ],
    )

    refused = api_client.post(f"/api/uploads/{upload['id']}/complete/")

    assert refused.status_code == 409, refused.json()
    assert refused.json()["code"] == "part_mismatch"
    assert refused.json()["parts"] == [1]
    detail = api_client.get(f"/api/uploads/{upload['id']}/").json()
    assert detail["status"] == "uploading"

    # Sending part 1 again with its own bytes mends it.
    again = sign(api_client, upload, [{"number": 1, "checksum": digest_of(first)}])
    etag_1 = put_signed(again[1], first)
    report(api_client, upload, [{"number": 1, "etag": etag_1, "checksum": digest_of(first)}])
    done = api_client.post(f"/api/uploads/{upload['id']}/complete/")
    assert done.status_code == 200, done.json()
    assert stored_bytes(real_s3, upload["key"]) == data
