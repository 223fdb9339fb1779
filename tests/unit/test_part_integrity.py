"""Each upload carries the digest its store verifies, and completion catches what it cannot.

The profiles are recorded as `probe_storage` records them (tests/unit/test_store_probe.py
proves the probe finds them); S3 is moto.
"""

import pytest

from tests.support.fake_stores import STORES, FakeStore
from tests.support.uploads import part_of, put_part, start
from uploads import services
from uploads.exceptions import PartMismatch
from uploads.integrity import part_digest
from uploads.models import StoreProfile as StoreProfileRow
from uploads.models import Upload, UploadPart
from uploads.parts import ReportedPart
from uploads.selectors import forget_store_profile
from uploads.storage.probe import probe_store

Integrity = Upload.Integrity


@pytest.fixture
def store_like(storage):
    """Record the profile of one of the fake stores as the configured store's."""

    def record(name: str) -> None:
        fake = FakeStore(STORES[name])
        result = probe_store(fake, key_prefix="uploads/", send=fake.send)
        services.record_store_profile(result, storage=storage)

    return record


def sign_and_report(storage, upload: Upload, number: int, body: bytes) -> None:
    """Sign part `number` with the digest of `body`'s intended bytes, PUT `body`, report it."""
    checksum = part_digest(upload.checksum_algorithm, part_of(upload, number))
    services.sign_parts(
        upload, parts=[services.PartToSign(number, checksum=checksum)], by=upload.owner
    )
    etag = put_part(storage, upload, number, body)
    services.record_parts(upload, parts=[ReportedPart(number, etag, checksum)], by=upload.owner)


def test_on_a_store_that_verifies_only_content_md5_an_upload_asking_sha256_carries_md5(
    user, storage, store_like
):
    store_like("ceph-rgw-16")
    upload = start(user, checksum_algorithm="SHA256")
    assert (upload.checksum_algorithm, upload.integrity) == ("MD5", Integrity.STORE)
    assert not upload.unverified
    checksum = part_digest("MD5", part_of(upload, 1))
    [signed] = services.sign_parts(
        upload, parts=[services.PartToSign(1, checksum=checksum)], by=user
    )
    assert signed.headers == {"Content-MD5": checksum}


def test_a_create_whose_first_parts_were_hashed_with_another_digest_signs_none_of_them(
    user, storage, store_like
):
    store_like("r2")
    started = services.start_or_resume_upload(
        owner=user,
        filename="movie.mp4",
        size=11 * 1024 * 1024,
        part_size=5 * 1024 * 1024,
        checksum_algorithm="SHA256",
        sign=[services.PartToSign(1, checksum=part_digest("SHA256", b"x"))],
    )
    assert started.upload.checksum_algorithm == "CRC32C"
    assert started.signed is None  # the client hashes again with CRC32C, then signs


def test_on_a_store_that_verifies_nothing_but_answers_md5_etags_completion_refuses_a_corrupted_part(
    user, storage, store_like
):
    store_like("verifies-nothing")
    # (That fake's ETags are not MD5s; here S3 is moto, whose are: record such a store.)
    StoreProfileRow.objects.update(etag_is_md5=True)
    forget_store_profile(storage)  # the row was edited: drop the cached copy
    upload = start(user, checksum_algorithm="SHA256")
    assert (upload.checksum_algorithm, upload.integrity) == ("MD5", Integrity.ETAG)
    for number in (1, 3):
        sign_and_report(storage, upload, number, part_of(upload, number))
    corrupted = bytearray(part_of(upload, 2))
    corrupted[100] ^= 0xFF  # same length, one byte changed on the way
    sign_and_report(storage, upload, 2, bytes(corrupted))

    with pytest.raises(PartMismatch) as refused:
        services.complete_upload(upload, by=user)

    assert refused.value.extra["parts"] == [2]
    upload.refresh_from_db()
    assert upload.status == Upload.Status.UPLOADING
    assert not UploadPart.objects.get(upload=upload, number=2).etag  # to be sent again
    sign_and_report(storage, upload, 2, part_of(upload, 2))
    assert services.complete_upload(upload, by=user).status == Upload.Status.COMPLETED


def test_on_a_store_that_catches_nothing_an_upload_is_marked_unverified(user, storage, store_like):
    store_like("verifies-nothing")
    upload = start(user, checksum_algorithm="SHA256")
    assert (upload.checksum_algorithm, upload.integrity) == ("SHA256", Integrity.NONE)
    assert upload.unverified


def test_an_upload_without_a_digest_is_unverified_and_a_forced_setting_gives_it_one(
    user, storage, settings
):
    assert start(user).unverified
    settings.UPLOADS_PART_INTEGRITY = "crc32c"
    upload = start(user)
    assert (upload.checksum_algorithm, upload.unverified) == ("CRC32C", False)


def test_the_upload_json_says_the_digest_and_whether_it_is_verified(
    api_client, user, storage, store_like
):
    store_like("ceph-rgw-16")
    body = {"filename": "a.bin", "size": 10, "checksum_algorithm": "SHA256"}
    answer = api_client.post("/api/uploads/", body, format="json").json()
    assert answer["checksum_algorithm"] == "MD5"
    assert (answer["integrity"], answer["unverified"]) == ("store", False)
