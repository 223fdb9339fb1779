"""Verification: a completed object checked again, composite checksums, reconciliation.

`verify_upload` runs after every completion (the tasks queue it on `upload_completed`);
`reconcile_upload` brings one upload in line with S3 whatever its state (the admin's action).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone

from .. import selectors
from ..exceptions import PartMismatch, StorageFailed, UploadGone
from ..integrity import Digest
from ..models import Upload, UploadPart
from ..signals import send_upload_completed
from ..storage import MultipartStorage, StoredObject, get_storage
from .cleanup import BatchResult
from .completion import settle_from_object
from .state import COMPLETION_TAKEOVER_AFTER, EXPIRABLE, Status, transition
from .uploading import reconcile_parts

logger = logging.getLogger(__name__)


def verify_upload(upload: Upload, *, storage: MultipartStorage | None = None) -> Upload:
    """Check a completed upload's object again and record the result.

    HEAD the object: it must exist with the recorded size and ETag and, when known, the
    checksum (the recorded one, and the one the signed part checksums compose to). An
    unverified upload (nothing checked its parts' bytes) is also read back and each part
    re-hashed against the digest its client computed. A mismatch
    marks the upload failed with the reason, which the admin lists. Other statuses are left
    alone.
    """
    if upload.status != Status.COMPLETED:
        return upload
    storage = storage or get_storage()
    problem = _verification_problem(upload, storage.head_object(upload.key))
    if problem is None and upload.unverified:
        # Neither the store nor completion checked the parts' bytes: read them back once.
        problem = _rehash_problem(upload, storage)
    now = timezone.now()
    if problem is None:
        Upload.objects.filter(pk=upload.pk, status=Status.COMPLETED).update(
            verification=Upload.Verification.OK, verified_at=now
        )
        upload.verification, upload.verified_at = Upload.Verification.OK, now
    else:
        logger.warning("verification of %s failed: %s", upload.key, problem)
        transition(
            upload,
            [Status.COMPLETED],
            Status.FAILED,
            failure_reason=problem,
            verification=Upload.Verification.MISMATCH,
            verified_at=now,
        )
    return upload


def _verification_problem(upload: Upload, stored: StoredObject | None) -> str | None:
    if stored is None:
        return "The completed object is missing from storage."
    if upload.size is not None and stored.size != upload.size:
        return f"The object holds {stored.size} bytes, not {upload.size}."
    if upload.etag and stored.etag and stored.etag != upload.etag:
        return "The object's ETag changed after completion: it was overwritten."
    if stored.checksum:
        for expected in (upload.checksum, composite_checksum(upload)):
            if expected and _digest_of(expected) != _digest_of(stored.checksum):
                return "The object's SHA-256 checksum does not match its parts' checksums."
    return None


REHASH_CHUNK = 8 * 1024 * 1024  # bytes read from S3 at a time when re-hashing an object


def _rehash_problem(
    upload: Upload, storage: MultipartStorage, *, chunk_size: int = REHASH_CHUNK
) -> str | None:
    """Hash an unverified upload's object part by part, streamed, and compare each part with
    the digest its client computed; None when every part matches or nothing was recorded to
    compare with (no digest: the client asked for none, or UPLOADS_PART_INTEGRITY=none)."""
    algorithm = upload.checksum_algorithm
    parts = list(
        UploadPart.objects.filter(upload=upload)
        .order_by("number")
        .values_list("number", "size", "checksum")
    )
    if not algorithm or not parts or any(not sum_ or size is None for _, size, sum_ in parts):
        return None
    chunks = storage.read_object(upload.key, chunk_size=chunk_size)
    pending = b""
    for number, size, checksum in parts:
        digest, left = Digest(algorithm), size or 0
        while left:
            if not pending:
                pending = next(chunks, b"")
                if not pending:
                    return f"The object ends before part {number}: it is corrupt."
            piece, pending = pending[:left], pending[left:]
            digest.update(piece)
            left -= len(piece)
        if digest.base64() != checksum:
            return (
                f"Part {number}'s bytes in storage differ from the digest its client "
                "computed: the object is corrupt."
            )
    return None


def _digest_of(checksum: str) -> str:
    # S3 writes a multipart object's checksum as "<base64>-<part count>"; some servers omit it.
    return checksum.split("-", 1)[0]


def composite_checksum(upload: Upload) -> str:
    """The SHA-256 of the parts' SHA-256 digests, as S3 computes a multipart object's checksum,
    from the checksums Partwise signed; "" when any part has none.

    https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
    """
    if not upload.checksum_algorithm:
        return ""
    parts = UploadPart.objects.filter(upload=upload).order_by("number")
    checksums = list(parts.values_list("checksum", flat=True))
    if not checksums or not all(checksums) or len(checksums) != (upload.part_count or 0):
        return ""
    digests = b"".join(base64.b64decode(checksum) for checksum in checksums)
    return base64.b64encode(hashlib.sha256(digests).digest()).decode()


def reconcile_upload(upload: Upload, *, storage: MultipartStorage | None = None) -> bool:
    """Bring one upload in line with S3; True when its status or progress changed.

    uploading/failed: parts are reconciled with ListParts; an S3 upload that is gone (the
    bucket's lifecycle rule, or an abort that beat us) makes it expired. completing (a
    completion that died half-way): the object decides, else it goes back to uploading, or to
    failed when S3 has neither. completed: the object is verified again.
    """
    before = (upload.status, upload.parts_uploaded, upload.bytes_uploaded)
    storage = storage or get_storage()
    if upload.status == Status.COMPLETING:
        try:
            settled = settle_from_object(upload, storage=storage)
        except PartMismatch:
            settled = True  # the object has the wrong size: now failed, with the reason
        if not settled:
            try:
                storage.list_parts(upload.key, upload.s3_upload_id)
            except UploadGone:
                transition(
                    upload,
                    [Status.COMPLETING],
                    Status.FAILED,
                    failure_reason="S3 holds neither the multipart upload nor the object.",
                )
            else:
                transition(upload, [Status.COMPLETING], Status.UPLOADING)
    elif upload.status in EXPIRABLE and upload.completed_at is None:
        try:
            stored = storage.list_parts(upload.key, upload.s3_upload_id)
        except UploadGone:
            transition(
                upload,
                list(EXPIRABLE),
                Status.EXPIRED,
                failure_reason="S3 no longer has the multipart upload (lifecycle rule or abort).",
            )
        else:
            reconcile_parts(upload, stored)
    elif upload.status == Status.COMPLETED:
        verify_upload(upload, storage=storage)
    return (upload.status, upload.parts_uploaded, upload.bytes_uploaded) != before


def reconcile_uploads(
    uploads: Iterable[Upload], *, storage: MultipartStorage | None = None
) -> BatchResult:
    """reconcile_upload for each upload; one failing with S3 does not stop the others."""
    result = BatchResult()
    for upload in uploads:
        try:
            changed = reconcile_upload(upload, storage=storage)
        except StorageFailed as error:
            result.errors.append(f"{upload.filename} ({upload.pk}): {error.detail}")
            continue
        if changed:
            result.changed += 1
        else:
            result.unchanged += 1
    return result


def settle_dead_completions(
    *, now: datetime | None = None, storage: MultipartStorage | None = None
) -> BatchResult:
    """Settle `completing` uploads whose completion died (no change past the take-over time).

    Each is reconciled: completed when S3 has the object, back to `uploading` when S3 still
    has the parts (the expiry sweep then expires it once past its expiry), failed when S3 has
    neither. The expiry task runs this first, so no upload stays `completing` for ever.
    """
    cutoff = (now or timezone.now()) - COMPLETION_TAKEOVER_AFTER
    dead = Upload.objects.filter(status=Status.COMPLETING, updated_at__lt=cutoff)
    return reconcile_uploads(dead, storage=storage)


def resend_lost_completions(*, now: datetime | None = None) -> int:
    """Send `upload_completed` again for completed uploads whose verification never ran.

    The signal goes out after the completion commits; a process killed in between (or a broker
    that lost the messages) leaves a completed upload that is never verified and whose webhook
    never leaves. Verification runs seconds after completion, so one still missing after
    UPLOADS_VERIFY_OVERDUE_AFTER marks a lost announcement: announce it again. Verifying twice is
    harmless, and the webhook event keeps its id, so a receiver ignores a duplicate. Returns
    how many were announced.
    """
    overdue = list(selectors.verification_overdue(now))
    for upload in overdue:
        logger.warning("completion of %s was never verified: announcing it again", upload.key)
        send_upload_completed(upload)
    return len(overdue)
