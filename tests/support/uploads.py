"""The sample upload of the moto tests, and putting its parts straight into S3.

An 11 MiB file (`DATA`) in three planned parts of 5, 5 and 1 MiB. `put_part` writes a part
through the storage's own boto3 client: what a client holding a presigned URL achieves,
without signing one (tests/support/presigned.py PUTs to the URLs as a browser does).
"""

from __future__ import annotations

from typing import Any

from uploads import services
from uploads.models import Upload
from uploads.parts import MiB, normalize_etag

SIZE = 11 * MiB
DATA = bytes(range(256)) * (SIZE // 256)


def start(owner: Any, *, size: int | None = SIZE, **options: Any) -> Upload:
    """A new upload of movie.mp4 in 5 MiB parts, started in S3."""
    options.setdefault("part_size", 5 * MiB)
    upload, created = services.start_upload(owner=owner, filename="movie.mp4", size=size, **options)
    assert created
    return upload


def part_of(upload: Upload, number: int, data: bytes = DATA) -> bytes:
    """Part `number` of `data`, as the upload's plan cuts it."""
    start_at = (number - 1) * upload.part_size
    return data[start_at : start_at + upload.part_size]


def upload_part(
    storage: Any, key: str, s3_upload_id: str, number: int, body: bytes, **extra: Any
) -> str:
    """UploadPart on the storage's client; the ETag, unquoted."""
    response = storage.client.upload_part(
        Bucket=storage.bucket,
        Key=key,
        UploadId=s3_upload_id,
        PartNumber=number,
        Body=body,
        **extra,
    )
    return normalize_etag(response["ETag"])


def put_part(
    storage: Any, upload: Upload, number: int, body: bytes | None = None, **extra: Any
) -> str:
    """PUT part `number` of an upload into S3 (by default its bytes of DATA); the ETag."""
    body = part_of(upload, number) if body is None else body
    return upload_part(storage, upload.key, upload.s3_upload_id, number, body, **extra)


def put_all(storage: Any, upload: Upload) -> dict[int, str]:
    """Every planned part of DATA into S3; the ETags by number."""
    return {n: put_part(storage, upload, n) for n in range(1, upload.part_count + 1)}
