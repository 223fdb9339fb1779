"""Two sessions upload one file together into a real S3 server (SeaweedFS), as two devices do.

Each session starts-or-resumes with its first batch in one call; the second is handed only
the parts the first is not sending, both PUT to their presigned URLs (with SHA-256 bound) and
report, and the object S3 assembles is the file, byte for byte.
"""

import hashlib
import os

import pytest
from rest_framework.test import APIClient

from tests.support.presigned import put_signed
from uploads.integrity import part_digest

MiB = 1024 * 1024
PART = 5 * MiB


def start(client: APIClient, data: bytes, session: str, numbers: range) -> dict:
    body = {
        "filename": "film.mov",
        "size": len(data),
        "part_size": PART,
        "checksum_algorithm": DIGEST["algorithm"],
        "fingerprint": "fp-" + hashlib.sha256(data).hexdigest()[:16],
        "resume": True,
        "session": session,
        "sign": {"parts": [{"number": n, "checksum": checksum(data, n)} for n in numbers]},
    }
    response = client.post("/api/uploads/", body, format="json")
    assert response.status_code in (200, 201), response.json()
    return response.json()


def part_of(data: bytes, number: int) -> bytes:
    return data[(number - 1) * PART : number * PART]


# The digest the store verifies (SHA256 on SeaweedFS, MD5 on Ceph RGW), set by the test: the
# client asks for the one the server will choose, so the create call signs its first parts.
DIGEST = {"algorithm": "SHA256"}


def checksum(data: bytes, number: int) -> str:
    return part_digest(DIGEST["algorithm"], part_of(data, number))


def send(client: APIClient, upload: dict, signed: list[dict], data: bytes, session: str) -> dict:
    """PUT each signed part to its URL as a browser does, then report them in one call."""
    parts = [
        {
            "number": part["number"],
            "etag": put_signed(part, part_of(data, part["number"])),
            "checksum": checksum(data, part["number"]),
        }
        for part in signed
    ]
    response = client.post(
        f"/api/uploads/{upload['id']}/parts/", {"parts": parts, "session": session}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.mark.django_db
def test_two_sessions_upload_one_file_together_and_it_arrives_byte_for_byte(
    api_client, real_s3, digest, monkeypatch
):
    monkeypatch.setitem(DIGEST, "algorithm", digest)
    data = os.urandom(6 * PART - 123)  # six parts, the last one short

    # Device A starts and takes parts 1-3; device B picks the same file and asks for all.
    a = start(api_client, data, "device-a-0001", range(1, 4))
    b = start(api_client, data, "device-b-0002", range(1, 7))

    assert (a["resumed"], b["resumed"], b["id"]) == (False, True, a["id"])
    assert [part["number"] for part in b["signed"]] == [4, 5, 6]
    assert (b["leased"], b["other_sessions"]) == ([1, 2, 3], 1)

    # Both send their parts; each report sees the other session at work.
    assert send(api_client, a, a["signed"], data, "device-a-0001")["other_sessions"] == 1
    progress = send(api_client, b, b["signed"], data, "device-b-0002")
    assert (progress["parts_uploaded"], progress["bytes_uploaded"]) == (6, len(data))

    # Either completes it; the other's completion answers the same.
    done = api_client.post(f"/api/uploads/{a['id']}/complete/")
    assert done.status_code == 200, done.json()
    assert api_client.post(f"/api/uploads/{b['id']}/complete/").json() == done.json()
    stored = real_s3.client.get_object(Bucket=real_s3.bucket, Key=done.json()["key"])
    assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(data).digest()
