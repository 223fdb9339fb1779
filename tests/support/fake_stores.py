"""In-memory S3 stores that behave, for the probe, as the stores README's table lists do.

A `FakeStore` is both the storage (the MultipartStorage methods the probe calls) and the HTTP
sender the probe PUTs presigned parts with; a `Behaviour` says what that store verifies and
refuses, from what each vendor documents and what was measured (issue 15):
AWS verifies SHA-256, CRC32C and Content-MD5; R2 answers 501 to any SHA-256 header and wants
equal part sizes; B2 answers 400 "Unsupported header" to x-amz-checksum-sha256; Ceph RGW 16
and GCS's XML API accept any x-amz-checksum-* but refuse a wrong Content-MD5.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, urlsplit

from uploads.exceptions import StorageRefused, UploadGone
from uploads.integrity import part_digest
from uploads.storage import PartToSign, SignedPart, StoredPart
from uploads.storage.bucket import CHECKSUM_HEADERS

HEADER_ALGORITHMS = {header.lower(): algorithm for algorithm, header in CHECKSUM_HEADERS.items()}


@dataclass(frozen=True)
class Behaviour:
    verifies: frozenset[str] = frozenset({"SHA256", "CRC32C", "MD5"})
    # Header algorithm -> (status, code) answered to any part carrying it, right or wrong.
    refuses_header: dict[str, tuple[int, str]] = field(default_factory=dict)
    binds_length: bool = True
    equal_part_sizes: bool = False
    etag_is_md5: bool = True


STORES = {
    "aws": Behaviour(),
    "r2": Behaviour(
        verifies=frozenset({"CRC32C", "MD5"}),
        refuses_header={"SHA256": (501, "NotImplemented")},
        equal_part_sizes=True,
    ),
    "b2": Behaviour(
        verifies=frozenset({"MD5"}),
        refuses_header={
            "SHA256": (400, "InvalidArgument"),
            "CRC32C": (400, "InvalidArgument"),
        },
    ),
    "ceph-rgw-16": Behaviour(verifies=frozenset({"MD5"})),
    "gcs-xml": Behaviour(verifies=frozenset({"MD5"})),
    # Verifies nothing, and its ETags are not MD5s (as with SSE-KMS on AWS).
    "verifies-nothing": Behaviour(verifies=frozenset(), etag_is_md5=False),
    "ignores-length": Behaviour(binds_length=False),
}


class FakeStore:
    """One bucket of multipart uploads in memory, answering as `behaviour` says."""

    def __init__(self, behaviour: Behaviour, *, bucket: str = "probe-bucket") -> None:
        self.behaviour = behaviour
        self.bucket = bucket
        self.endpoint = "https://fake.example"
        self.uploads: dict[str, dict[int, bytes]] = {}  # s3 upload id -> parts
        self.objects: dict[str, bytes] = {}
        self.aborted: set[str] = set()
        self._next = 0

    # --- the storage the probe calls ----------------------------------------------------------
    def create_multipart_upload(
        self, key: str, *, content_type: str, checksum_algorithm: str = ""
    ) -> str:
        self._next += 1
        s3_upload_id = f"{key}#{self._next}"
        self.uploads[s3_upload_id] = {}
        return s3_upload_id

    def presign_upload_parts(
        self,
        key,
        s3_upload_id,
        parts: list[PartToSign],
        *,
        expires_in: int,
        checksum_algorithm="SHA256",
    ) -> list[SignedPart]:
        header = CHECKSUM_HEADERS[checksum_algorithm]
        return [
            SignedPart(
                number=part.number,
                url=f"fake://store/?upload={quote(s3_upload_id)}&partNumber={part.number}"
                f"&size={part.size}",
                method="PUT",
                headers={header: part.checksum} if part.checksum else {},
                size=part.size,
                expires_at=None,  # type: ignore[arg-type]
            )
            for part in parts
        ]

    def list_parts(self, key: str, s3_upload_id: str) -> list[StoredPart]:
        if s3_upload_id not in self.uploads:
            raise UploadGone("no such upload", s3_code="NoSuchUpload")
        return [
            StoredPart(number=n, size=len(body), etag=self._etag(body))
            for n, body in sorted(self.uploads[s3_upload_id].items())
        ]

    def complete_multipart_upload(
        self, key, s3_upload_id, parts, *, checksum_algorithm="SHA256"
    ) -> str:
        held = self.uploads.pop(s3_upload_id)
        sizes = [len(held[p.number]) for p in parts]
        if self.behaviour.equal_part_sizes and len(set(sizes[:-1])) > 1:
            self.uploads[s3_upload_id] = held
            raise StorageRefused("parts differ in size", s3_code="InvalidPart")
        self.objects[key] = b"".join(held[p.number] for p in parts)
        return "etag-of-object"

    def abort_multipart_upload(self, key: str, s3_upload_id: str) -> bool:
        self.aborted.add(s3_upload_id)
        return self.uploads.pop(s3_upload_id, None) is not None

    def delete_object(self, key: str) -> None:
        self.objects.pop(key, None)

    # --- the HTTP side: a client's PUT of a presigned part -----------------------------------
    def send(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, bytes]:
        query = parse_qs(urlsplit(url).query)
        s3_upload_id = query["upload"][0]
        signed_size = query["size"][0]
        if signed_size != "None" and int(signed_size) != len(body) and self.behaviour.binds_length:
            return 403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>"
        for name, value in headers.items():
            algorithm = HEADER_ALGORITHMS.get(name.lower())
            if algorithm is None:
                continue
            if algorithm in self.behaviour.refuses_header:
                status, code = self.behaviour.refuses_header[algorithm]
                return status, f"<Error><Code>{code}</Code></Error>".encode()
            if algorithm in self.behaviour.verifies and part_digest(algorithm, body) != value:
                return 400, b"<Error><Code>BadDigest</Code></Error>"
        self.uploads[s3_upload_id][int(query["partNumber"][0])] = body
        return 200, b""

    def _etag(self, body: bytes) -> str:
        digest = hashlib.md5(body, usedforsecurity=False).hexdigest()
        return digest if self.behaviour.etag_is_md5 else hashlib.sha1(body).hexdigest()[:32]  # noqa: S324
