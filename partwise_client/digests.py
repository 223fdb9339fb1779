"""A part's digest in the form its S3 store verifies, as the server names it per upload.

`checksum_algorithm` is "SHA256" or "CRC32C" (x-amz-checksum-sha256, x-amz-checksum-crc32c:
AWS, MinIO) or "MD5" (Content-MD5: Ceph RGW 16, GCS XML, R2); each is base64 of the raw digest.
The browser client computes the same (frontend/client/digests.js); tests/vectors/digests.json
holds the values both must give.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import google_crc32c  # hashlib has no CRC32C; this is Google's C implementation

ALGORITHMS = ("SHA256", "CRC32C", "MD5")


def part_digest(algorithm: str, data: bytes | bytearray | memoryview) -> str:
    """The digest `algorithm` of `data` as S3 wants it: base64 of the raw digest (SHA-256: 44
    characters; CRC32C: its 4 bytes big-endian, 8 characters; MD5: 24 characters, as
    Content-MD5). Raises ValueError for an algorithm not in ALGORITHMS."""
    if algorithm == "SHA256":
        raw = hashlib.sha256(data).digest()
    elif algorithm == "CRC32C":
        # google_crc32c takes bytes only (not a bytearray or memoryview): those are copied.
        crc = google_crc32c.value(data if isinstance(data, bytes) else bytes(data))
        raw = crc.to_bytes(4, "big")
    elif algorithm == "MD5":
        # Not for security: S3's integrity check (and allowed where FIPS forbids MD5 otherwise).
        raw = hashlib.md5(data, usedforsecurity=False).digest()
    else:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}: expected one of {ALGORITHMS}")
    return base64.b64encode(raw).decode()


class Digest:
    """`algorithm`'s digest of bytes fed piece by piece (a part too big to hold at once); its
    `base64()` equals part_digest(algorithm, all the pieces)."""

    def __init__(self, algorithm: str) -> None:
        self._hash: Any
        if algorithm == "SHA256":
            self._hash = hashlib.sha256()
        elif algorithm == "CRC32C":
            self._hash = google_crc32c.Checksum()
        elif algorithm == "MD5":
            self._hash = hashlib.md5(usedforsecurity=False)  # S3's integrity check, not security
        else:
            raise ValueError(
                f"unknown checksum algorithm {algorithm!r}: expected one of {ALGORITHMS}"
            )

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def base64(self) -> str:
        return base64.b64encode(self._hash.digest()).decode()
