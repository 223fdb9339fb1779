"""What tests compute to check bytes: S3's checksums and ETags, and SHA-256 of files and objects."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def sha256_b64(data: bytes) -> str:
    """The base64 SHA-256 S3 signs and compares (x-amz-checksum-sha256)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def etag_of(data: bytes) -> str:
    """The ETag S3 gives a part: its MD5, in hex."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256_of_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of_object(client: Any, bucket: str, key: str) -> str:
    """The hex SHA-256 of an object as S3 serves it (a boto3 client), read in blocks."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for block in iter(lambda: body.read(MiB), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_of_stored(storage: Any, key: str) -> str:
    """`sha256_of_object` of an object in a MultipartStorage's bucket."""
    return sha256_of_object(storage.client, storage.bucket, key)
