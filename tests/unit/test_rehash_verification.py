"""The verify task re-hashes the object of an upload whose parts nothing checked.

On a store that verifies no part digest and whose ETags are not MD5s, an upload completes
`unverified`: the verify task then reads the object back, streamed, cuts it into the recorded
parts and compares each part's digest with the one its client computed.
"""

import os

import pytest

from partwise_client.digests import Digest, part_digest
from tests.factories import UploadFactory
from uploads import selectors, services
from uploads.models import Integrity, Upload, UploadPart
from uploads.parts import MiB

pytestmark = pytest.mark.django_db
Status = Upload.Status
SIZES = [5 * MiB, 5 * MiB, 1 * MiB + 17]


def unverified_upload(storage, algorithm: str, stored: bytes | None = None, **fields) -> Upload:
    """A completed unverified upload of three parts whose client hashed `data`; S3 holds
    `stored` (default: the same bytes)."""
    data = os.urandom(sum(SIZES))
    upload = UploadFactory(
        completed=True,
        size=len(data),
        etag="",
        checksum_algorithm=algorithm,
        integrity=fields.pop("integrity", Integrity.NONE),
        **fields,
    )
    start = 0
    for number, size in enumerate(SIZES, 1):
        checksum = part_digest(algorithm, data[start : start + size]) if algorithm else ""
        UploadPart.objects.create(
            upload=upload, number=number, size=size, checksum=checksum, etag=f"{number:032x}"
        )
        start += size
    storage.client.put_object(Bucket=storage.bucket, Key=upload.key, Body=stored or data)
    upload.stored_data = data  # type: ignore[attr-defined]
    return upload


def with_part_changed(data: bytes, number: int) -> bytes:
    offset = sum(SIZES[: number - 1]) + 1000
    return data[:offset] + bytes([data[offset] ^ 1]) + data[offset + 1 :]


@pytest.mark.parametrize("algorithm", ["SHA256", "MD5", "CRC32C"])
def test_an_incremental_digest_equals_the_digest_of_the_whole(algorithm):
    data = os.urandom(100_000)
    digest = Digest(algorithm)
    for start in range(0, len(data), 7_777):
        digest.update(data[start : start + 7_777])
    assert digest.base64() == part_digest(algorithm, data)


@pytest.mark.parametrize("algorithm", ["SHA256", "MD5", "CRC32C"])
def test_an_unverified_upload_whose_object_holds_its_parts_bytes_is_verified(storage, algorithm):
    upload = unverified_upload(storage, algorithm)

    assert services.verify_upload(upload).verification == "ok"
    upload.refresh_from_db()
    assert (upload.status, upload.verification) == (Status.COMPLETED, "ok")


@pytest.mark.parametrize("algorithm", ["SHA256", "MD5", "CRC32C"])
def test_an_unverified_upload_with_a_corrupted_part_fails_naming_the_part(storage, algorithm):
    upload = unverified_upload(storage, algorithm)
    storage.client.put_object(
        Bucket=storage.bucket,
        Key=upload.key,
        Body=with_part_changed(upload.stored_data, 2),  # type: ignore[attr-defined]
    )

    services.verify_upload(upload)

    upload.refresh_from_db()
    assert (upload.status, upload.verification) == (Status.FAILED, "mismatch")
    assert upload.failure_reason.startswith("Part 2's bytes in storage differ")


def test_the_object_is_read_in_chunks_never_whole(storage, monkeypatch):
    upload = unverified_upload(storage, "SHA256")
    chunk_sizes = []
    read_object = type(storage).read_object

    def spying(self, key, *, chunk_size):
        for chunk in read_object(self, key, chunk_size=MiB):
            chunk_sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(type(storage), "read_object", spying)

    assert services.verify_upload(upload, storage=storage).verification == "ok"
    assert len(chunk_sizes) > 10
    assert max(chunk_sizes) <= MiB


def test_an_upload_the_store_verified_is_not_read_back(storage, monkeypatch):
    upload = unverified_upload(storage, "SHA256", integrity=Integrity.STORE)
    monkeypatch.setattr(type(storage), "read_object", lambda *a, **k: pytest.fail("read an object"))

    assert services.verify_upload(upload, storage=storage).verification == "ok"


def test_an_unverified_upload_without_part_digests_is_only_checked_by_its_head(
    storage, monkeypatch
):
    upload = unverified_upload(storage, "")
    monkeypatch.setattr(type(storage), "read_object", lambda *a, **k: pytest.fail("read an object"))

    assert services.verify_upload(upload, storage=storage).verification == "ok"


def test_the_unverified_selector_finds_recorded_and_older_unverified_uploads(db):
    unverified = UploadFactory(integrity=Integrity.NONE, checksum_algorithm="SHA256")
    older = UploadFactory(integrity="", checksum_algorithm="")
    UploadFactory(integrity=Integrity.STORE, checksum_algorithm="SHA256")
    UploadFactory(integrity=Integrity.ETAG, checksum_algorithm="MD5")
    UploadFactory(integrity="", checksum_algorithm="SHA256")

    found = set(Upload.objects.filter(selectors.unverified()).values_list("pk", flat=True))

    assert found == {unverified.pk, older.pk}
    assert all(Upload.objects.get(pk=pk).unverified for pk in found)


def test_the_admin_lists_only_unverified_uploads_when_asked(admin_client, db):
    unverified = UploadFactory(integrity=Integrity.NONE, checksum_algorithm="SHA256")
    verified = UploadFactory(integrity=Integrity.STORE, checksum_algorithm="SHA256")

    page = admin_client.get("/admin/uploads/upload/?integrity=unverified&status=all")

    assert page.status_code == 200
    listed = page.context["cl"].result_list
    assert [upload.pk for upload in listed] == [unverified.pk]
    assert verified.pk not in [upload.pk for upload in listed]
    assert "part integrity" in page.content.decode().lower()
