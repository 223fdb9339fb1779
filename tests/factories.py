"""factory_boy factories: users, and uploads in any status of the state machine.

Uploads made here exist only in the database (their S3 upload id is made up); tests that need
S3 to know an upload start it through `services.start_upload` against moto.
"""

import hashlib
import uuid
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from uploads.models import Upload, UploadPart
from uploads.parts import MiB

PASSWORD = "correct horse battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)


class UploadFactory(factory.django.DjangoModelFactory):
    """An upload of 11 MiB in three planned 5 MiB parts, `uploading` unless a trait says else."""

    class Meta:
        model = Upload
        skip_postgeneration_save = True

    class Params:
        completing = factory.Trait(status=Upload.Status.COMPLETING)
        completed = factory.Trait(
            status=Upload.Status.COMPLETED,
            bytes_uploaded=factory.SelfAttribute("size"),
            parts_uploaded=factory.SelfAttribute("part_count"),
            etag=factory.LazyFunction(lambda: f"{uuid.uuid4().hex}-3"),
            completed_at=factory.LazyFunction(timezone.now),
        )
        aborted = factory.Trait(status=Upload.Status.ABORTED)
        expired = factory.Trait(
            status=Upload.Status.EXPIRED,
            expires_at=factory.LazyFunction(lambda: timezone.now() - timedelta(days=1)),
        )
        failed = factory.Trait(
            status=Upload.Status.FAILED, failure_reason="S3 refused CompleteMultipartUpload."
        )

    id = factory.LazyFunction(uuid.uuid4)
    owner = factory.SubFactory(UserFactory)
    status = Upload.Status.UPLOADING
    filename = factory.Sequence(lambda n: f"file-{n}.bin")
    size = 11 * MiB
    content_type = "application/octet-stream"
    key = factory.LazyAttribute(lambda o: f"uploads/{o.id}/{o.filename}")
    s3_upload_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    part_size = 5 * MiB
    part_count = factory.LazyAttribute(lambda o: -(-o.size // o.part_size) if o.size else 1)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))


def _fake_etag(seed: str) -> str:
    # Part ETags are the MD5 of the part's bytes; any 32 hex digits do for a recorded part.
    return hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()


class UploadPartFactory(factory.django.DjangoModelFactory):
    """A recorded (uploaded) part; `size` follows the upload's plan."""

    class Meta:
        model = UploadPart

    upload = factory.SubFactory(UploadFactory)
    number = factory.Sequence(lambda n: n % 10_000 + 1)
    size = factory.LazyAttribute(lambda o: o.upload.plan.size_of(o.number))
    etag = factory.LazyAttribute(lambda o: _fake_etag(f"{o.upload.id}:{o.number}"))
    uploaded_at = factory.LazyFunction(timezone.now)


def start_in_s3(
    owner, *, filename: str, data: bytes, put: bool = True, checksum: bool = False
) -> Upload:
    """An upload started through the service (S3 knows it), its one part `data` PUT to S3 but
    not reported: what a client leaves behind between its PUT and its report. With
    `checksum`, the upload declares SHA-256 and the part is signed and sent with its own."""
    from tests.support.checksums import sha256_b64
    from tests.support.uploads import put_part
    from uploads import services
    from uploads.storage import get_storage

    upload, _ = services.start_upload(
        owner=owner,
        filename=filename,
        size=len(data),
        checksum_algorithm="SHA256" if checksum else "",
    )
    if put:
        extra = {}
        if checksum:
            digest = sha256_b64(data)
            services.sign_parts(upload, parts=[services.PartToSign(1, checksum=digest)], by=owner)
            extra = {"ChecksumSHA256": digest}
        put_part(get_storage(), upload, 1, data, **extra)
    return upload
