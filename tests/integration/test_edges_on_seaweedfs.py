"""Edges of the hardening issue where S3 itself decides the outcome, against a real SeaweedFS.

The unit tier proves each rule against moto; these prove what moto cannot: SeaweedFS refuses a
key whose name segment is over 255 bytes ("entry name too long"), really stores the bytes of an
Uppy upload over the cap, and really holds a stray part beside the listed ones.
"""

import hashlib
import os
from urllib.parse import unquote

import pytest
from rest_framework.test import APIClient

from tests.support.presigned import put_signed
from uploads.models import Upload


@pytest.fixture
def real_s3(seaweedfs_s3):
    """These edges are SeaweedFS's own (Ceph RGW, for one, refuses a completion that a stray
    higher part follows): the module runs on SeaweedFS only."""
    return seaweedfs_s3


MiB = 1024 * 1024
UPPY = "/s3/multipart"


def uppy_start(client: APIClient, filename: str = "clip.mov") -> dict:
    created = client.post(UPPY, {"filename": filename, "type": "video/quicktime"}, format="json")
    assert created.status_code == 200, created.json()
    return created.json()


def uppy_put(client: APIClient, started: dict, number: int, body: bytes) -> str:
    """Sign one part the way Uppy does, PUT the bytes to SeaweedFS; the ETag S3 answered."""
    signed = client.get(f"{UPPY}/{started['uploadId']}/{number}", {"key": started["key"]})
    assert signed.status_code == 200, signed.json()
    return put_signed(signed.json(), body)


def uppy_complete(client: APIClient, started: dict, etags: dict[int, str]):
    parts = [{"PartNumber": number, "ETag": etag} for number, etag in sorted(etags.items())]
    return client.post(
        f"{UPPY}/{started['uploadId']}/complete?key={started['key']}",
        {"parts": parts},
        format="json",
    )


def object_exists(storage, key: str) -> bool:
    return storage.head_object(key) is not None


# --- 1: the size cap holds on the Uppy routes, whose part URLs cannot bind a length ------------
def test_an_uppy_upload_over_the_cap_is_refused_aborted_and_leaves_nothing_in_s3(
    api_client, real_s3, settings
):
    settings.UPLOADS_MAX_SIZE = 6 * MiB
    started = uppy_start(api_client)
    etags = {1: uppy_put(api_client, started, 1, os.urandom(5 * MiB))}
    etags[2] = uppy_put(api_client, started, 2, os.urandom(2 * MiB))

    refused = uppy_complete(api_client, started, etags)

    assert refused.status_code == 413, refused.json()
    assert refused.json()["code"] == "upload_too_large"
    upload = Upload.objects.get(pk=started["uploadId"])
    assert upload.status == Upload.Status.ABORTED
    assert real_s3.list_multipart_uploads(started["key"]) == []
    assert not object_exists(real_s3, started["key"])


def test_an_uppy_upload_within_the_cap_completes(api_client, real_s3, settings):
    settings.UPLOADS_MAX_SIZE = 6 * MiB
    started = uppy_start(api_client)
    body = os.urandom(6 * MiB)

    done = uppy_complete(api_client, started, {1: uppy_put(api_client, started, 1, body)})

    assert done.status_code == 200, done.json()
    assert real_s3.head_object(started["key"]).size == len(body)


# --- 6: a long non-ASCII name completes, and keeps its name ----------------------------------
@pytest.mark.parametrize("route", ["rest", "uppy"])
def test_a_name_of_88_cjk_characters_completes_on_seaweedfs_and_keeps_its_name(
    api_client, real_s3, route
):
    name = "漢" * 84 + ".mov"  # 256 UTF-8 bytes: one over SeaweedFS's limit for a name
    assert len(name.encode()) == 256
    body = os.urandom(MiB)
    if route == "rest":
        created = api_client.post("/api/uploads/", {"filename": name, "size": len(body)}, "json")
        upload = created.json()
        upload_id = upload["id"]
        signed = api_client.post(
            f"/api/uploads/{upload_id}/sign/", {"parts": [{"number": 1}]}, format="json"
        ).json()["parts"][0]
        etag = put_signed(signed, body)
        api_client.post(
            f"/api/uploads/{upload_id}/parts/", {"parts": [{"number": 1, "etag": etag}]}, "json"
        )
        done = api_client.post(f"/api/uploads/{upload_id}/complete/")
    else:
        started = uppy_start(api_client, filename=name)
        upload_id = started["uploadId"]
        done = uppy_complete(api_client, started, {1: uppy_put(api_client, started, 1, body)})

    assert done.status_code == 200, done.json()
    upload = Upload.objects.get(pk=upload_id)
    assert upload.status == Upload.Status.COMPLETED
    assert upload.filename == name
    segment = upload.key.rsplit("/", 1)[1]
    assert len(segment.encode()) <= 255
    assert segment.endswith(".mov")
    stored = real_s3.client.get_object(Bucket=real_s3.bucket, Key=upload.key)
    assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(body).digest()
    # RFC 6266: a download is saved under the whole original name, not the cut key segment.
    disposition = stored["ContentDisposition"]
    assert disposition.startswith("attachment; filename*=utf-8''")
    assert unquote(disposition.split("''", 1)[1]) == name


# --- 16: Uppy's completion is exactly the parts it lists ------------------------------------
def test_an_uppy_completion_leaves_a_stray_part_that_seaweedfs_holds_out(api_client, real_s3):
    started = uppy_start(api_client)
    first, second, stray = os.urandom(5 * MiB), os.urandom(MiB), os.urandom(5 * MiB)
    etags = {
        1: uppy_put(api_client, started, 1, first),
        2: uppy_put(api_client, started, 2, second),
    }
    uppy_put(api_client, started, 3, stray)  # held by S3, never listed by the client

    done = uppy_complete(api_client, started, etags)

    assert done.status_code == 200, done.json()
    stored = real_s3.client.get_object(Bucket=real_s3.bucket, Key=started["key"])["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(first + second).digest()
    assert Upload.objects.get(pk=started["uploadId"]).size == len(first) + len(second)
