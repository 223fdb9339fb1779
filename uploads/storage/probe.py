"""The store probe: what the configured S3 really verifies, found through the path clients use.

Stores that speak S3 differ in what they check (uploads/integrity.py), and none of them says
so: an ignored checksum header is answered 200 like a verified one. So the probe sends parts
exactly as a client would (presigned UploadPart URLs signed by `presign_upload_parts`, sent
with a plain HTTP client and the signed headers) and looks at what the store does:

- per digest (SHA-256, CRC32C, Content-MD5): a part whose signed digest is of other bytes
  must be refused, and one with the right digest accepted; only then is it *verified*;
- a body longer and one shorter than the signed Content-Length must be refused;
- ListParts answers each part's ETag: is it the hex MD5 of the part's bytes?
- a completion with unequal non-final parts (5 MiB, 5 MiB + 1 KiB, a tail): R2 refuses it.

Everything it creates lives under `<key prefix>.partwise-probe/` and is aborted or deleted
before it returns (the orphan sweep collects what a killed probe left). Written by hand: no
library probes an S3 store's verification, and boto3 would add its own checksums.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import requests

from ..exceptions import StorageFailed
from ..integrity import ALGORITHMS, MD5, StoreProfile, md5_hex, part_digest
from .s3 import MultipartStorage
from .types import PartToSign

# The size of the checksum probes' parts: small, since a part of any size may be uploaded (only
# completion needs 5 MiB), and large enough that a store reads it as a body, not a header.
PROBE_PART = 64 * 1024
MIN_PART = 5 * 1024 * 1024
PROBE_EXPIRY = 300
_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")

# (url, body, headers) -> (status, body); None as status when no answer came back.
Sender = Callable[[str, bytes, dict[str, str]], tuple[int | None, bytes]]


@dataclass(frozen=True)
class ProbeStep:
    """One thing the probe sent, what a store that checks would answer, and what it did."""

    name: str
    expected: str  # "refused" or "accepted"
    status: int | None  # the HTTP status (None: no answer, or an S3 call that failed)
    code: str  # S3's error code, when it gave one
    passed: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "expected": self.expected,
            "status": self.status,
            "code": self.code,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class ProbeResult:
    """The profile the steps prove, and the steps."""

    profile: StoreProfile
    steps: tuple[ProbeStep, ...]


def http_sender(timeout: float = 30) -> Sender:
    """Send parts with `requests`, as the CLI does (the browser's fetch sends the same)."""
    session = requests.Session()

    def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, bytes]:
        try:
            answer = session.put(url, data=body, headers=headers, timeout=timeout)
        except requests.RequestException:
            return None, b""
        return answer.status_code, answer.content

    return send


def probe_store(
    storage: MultipartStorage, *, key_prefix: str, send: Sender | None = None
) -> ProbeResult:
    """Probe what `storage`'s store verifies; see the module's docstring for the steps."""
    probe = _Probe(storage, f"{key_prefix}.partwise-probe/{uuid.uuid4()}", send or http_sender())
    verifies = frozenset(a for a in ALGORITHMS if probe.digest_is_verified(a))
    binds_length = probe.length_is_bound()
    equal_part_sizes = probe.unequal_parts_are_refused()
    return ProbeResult(
        profile=StoreProfile(
            verifies=verifies,
            binds_length=binds_length,
            equal_part_sizes=equal_part_sizes,
            etag_is_md5=bool(probe.etags) and all(probe.etags),
        ),
        steps=tuple(probe.steps),
    )


class _Probe:
    def __init__(self, storage: MultipartStorage, prefix: str, send: Sender) -> None:
        self.storage, self.prefix, self.send = storage, prefix, send
        self.steps: list[ProbeStep] = []
        self.etags: list[bool] = []  # per accepted part: its ETag was its MD5

    def _step(self, name: str, expected: str, status: int | None, code: str = "") -> bool:
        accepted = status is not None and 200 <= status < 300
        passed = accepted if expected == "accepted" else not accepted
        self.steps.append(ProbeStep(name, expected, status, code, passed))
        return passed

    @contextmanager
    def _multipart(
        self, name: str, checksum_algorithm: str = ""
    ) -> Iterator[tuple[str, str] | None]:
        key = f"{self.prefix}/{name}"
        try:
            s3_upload_id = self.storage.create_multipart_upload(
                key, content_type="", checksum_algorithm=checksum_algorithm
            )
        except StorageFailed as error:
            self._step(f"{name}: CreateMultipartUpload", "accepted", None, error.s3_code)
            yield None
            return
        try:
            yield key, s3_upload_id
        finally:
            # What cannot be removed now, the orphan sweep aborts later.
            with suppress(StorageFailed):
                self.storage.abort_multipart_upload(key, s3_upload_id)
            with suppress(StorageFailed):
                self.storage.delete_object(key)

    def _put(
        self,
        upload: tuple[str, str],
        number: int,
        body: bytes,
        *,
        size: int | None = None,
        checksum: str = "",
        checksum_algorithm: str = "SHA256",
    ) -> tuple[int | None, str]:
        key, s3_upload_id = upload
        [signed] = self.storage.presign_upload_parts(
            key,
            s3_upload_id,
            [PartToSign(number, size=len(body) if size is None else size, checksum=checksum)],
            expires_in=PROBE_EXPIRY,
            checksum_algorithm=checksum_algorithm,
        )
        status, answer = self.send(signed.url, body, dict(signed.headers))
        found = _CODE.search(answer or b"")
        return status, found.group(1).decode("ascii", "replace") if found else ""

    def digest_is_verified(self, algorithm: str) -> bool:
        """A part signed with another body's digest is refused, one with its own accepted."""
        body = os.urandom(PROBE_PART)
        other = bytes([body[0] ^ 0xFF]) + body[1:]  # same length, one byte differs
        with self._multipart(algorithm.lower(), algorithm) as upload:
            if upload is None:
                return False
            wrong = self._put(
                upload,
                1,
                body,
                checksum=part_digest(algorithm, other),
                checksum_algorithm=algorithm,
            )
            refused = self._step(f"{algorithm}: a part with a wrong digest", "refused", *wrong)
            right = self._put(
                upload, 2, body, checksum=part_digest(algorithm, body), checksum_algorithm=algorithm
            )
            accepted = self._step(f"{algorithm}: a part with its digest", "accepted", *right)
            if accepted:
                self._record_etags(upload, {2: body})
            return refused and accepted

    def _record_etags(self, upload: tuple[str, str], bodies: dict[int, bytes]) -> None:
        try:
            stored = self.storage.list_parts(*upload)
        except StorageFailed as error:
            self._step("ListParts", "accepted", None, error.s3_code)
            return
        for part in stored:
            if part.number in bodies:
                self.etags.append(part.etag == md5_hex(part_digest(MD5, bodies[part.number])))

    def length_is_bound(self) -> bool:
        """A body longer or shorter than the signed Content-Length is refused."""
        body = os.urandom(PROBE_PART)
        with self._multipart("length") as upload:
            if upload is None:
                return False
            longer = self._put(upload, 1, body + b"x", size=len(body))
            shorter = self._put(upload, 2, body[:-1], size=len(body))
            return all(
                [
                    self._step("a body longer than its signed length", "refused", *longer),
                    self._step("a body shorter than its signed length", "refused", *shorter),
                ]
            )

    def unequal_parts_are_refused(self) -> bool:
        """Whether completing with unequal non-final parts is refused (R2's rule)."""
        bodies = {
            1: os.urandom(MIN_PART),
            2: os.urandom(MIN_PART + 1024),
            3: os.urandom(1024),
        }
        with self._multipart("sizes") as upload:
            if upload is None:
                return False
            for number, body in bodies.items():
                if not self._step(
                    f"part {number} of unequal sizes", "accepted", *self._put(upload, number, body)
                ):
                    return False
            self._record_etags(upload, bodies)
            try:
                stored = self.storage.list_parts(*upload)
                self.storage.complete_multipart_upload(*upload, stored, checksum_algorithm="")
            except StorageFailed as error:
                self._step(
                    "completing with unequal non-final parts", "accepted", None, error.s3_code
                )
                return True
            self._step("completing with unequal non-final parts", "accepted", 200)
            return False
