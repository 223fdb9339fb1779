"""Cleanup: cancel uploads, expire stale ones, sweep orphans, prune settled uploads' part rows,
and the operators' batch actions.

The admin, the Celery tasks and `cleanup_uploads` call these. Cleanup only ever aborts
multipart uploads under UPLOADS_KEY_PREFIX, and AbortMultipartUpload never deletes a finished
object; a completed upload's row changes only when verification finds its object wrong.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from ..conf import upload_settings
from ..exceptions import InvalidInput, StorageFailed, UploadConflict, UploadGone
from ..models import Upload, UploadPart, UploadSession
from ..selectors import stale, stale_uploads
from ..storage import MultipartStorage, get_storage, lifecycle_abort_date
from .state import EXPIRABLE, OPERATOR, OWNING, Actor, Status, require_owner, transition

logger = logging.getLogger(__name__)

MAX_ABORT_ATTEMPTS = 5
_ORPHAN_LOOKUP_CHUNK = 500  # keys per IN (...) query: well under SQLite's variable limit


@dataclass(frozen=True)
class Orphan:
    """A multipart upload under the key prefix that no live upload row owns."""

    key: str
    s3_upload_id: str
    initiated: datetime
    age: timedelta
    # An aborted or expired row that still names it (its abort did not finish), if any.
    upload_pk: uuid.UUID | None = None
    upload_status: str = ""


@dataclass
class BatchResult:
    """What a batch operation did: uploads changed, left as they were, and failures."""

    changed: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def _key_prefix() -> str:
    prefix = upload_settings().key_prefix
    if not prefix:
        # uploads.E003 refuses this at start-up; an empty prefix would sweep the whole bucket.
        raise ImproperlyConfigured("UPLOADS_KEY_PREFIX is empty: cleanup refuses to run.")
    return prefix


def abort_upload(upload: Upload, *, by: Actor, storage: MultipartStorage | None = None) -> Upload:
    """Cancel the upload and abort it in S3. Repeating it is harmless; a completed upload is
    never touched (UploadConflict)."""
    require_owner(upload, by)
    finished = (Status.ABORTED, Status.EXPIRED)
    cancelled = upload.status in finished or transition(
        upload, [Status.UPLOADING, Status.FAILED], Status.ABORTED
    )
    if not cancelled and upload.status not in finished:
        raise UploadConflict(f"A {upload.status} upload cannot be aborted.", status=upload.status)
    # The row says aborted before S3 is asked, so a racing complete cannot start; if S3 fails
    # here, a repeated call (or the bucket's lifecycle rule) finishes the abort. A part in
    # flight can land after an abort: abort again until ListParts finds none.
    abort_until_gone(upload.key, upload.s3_upload_id, storage=storage or get_storage())
    return upload


def abort_until_gone(key: str, s3_upload_id: str, *, storage: MultipartStorage) -> bool:
    """Abort a multipart upload and repeat until ListParts finds no part; True once it is gone.

    A part still in flight when the abort arrives can land after it, so AWS advises checking
    ListParts and aborting again (API_AbortMultipartUpload, "Note"). S3 answering that it has no
    such upload (to either call) means it holds nothing for it any more, which counts as done.
    """
    for _ in range(MAX_ABORT_ATTEMPTS):
        if not storage.abort_multipart_upload(key, s3_upload_id):
            return True
        try:
            if not storage.list_parts(key, s3_upload_id):
                return True
        except UploadGone:
            return True
    logger.warning("parts of %s still listed after %d aborts", key, MAX_ABORT_ATTEMPTS)
    return False


def expire_stale_uploads(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    storage: MultipartStorage | None = None,
) -> list[Upload]:
    """Mark uploads inactive past their expiry `expired` and abort them in S3.

    The row changes first (compare-and-set, re-checking the expiry), so a client that was
    active a moment ago keeps its upload and no completion can start on an expired one. When S3
    fails to abort, the row stays expired and its S3 upload becomes an orphan, which
    `reconcile_orphans` aborts on its next run. Returns the uploads expired (or, with
    `dry_run`, those that would be).
    """
    now = now or timezone.now()
    candidates = list(stale_uploads(now))
    if dry_run:
        return candidates
    storage = storage or get_storage()
    expired = []
    for upload in candidates:
        won = Upload.objects.filter(stale(now), pk=upload.pk).update(
            status=Status.EXPIRED, updated_at=now
        )
        if not won:
            continue
        upload.status, upload.updated_at = Status.EXPIRED, now
        expired.append(upload)
        try:
            abort_until_gone(upload.key, upload.s3_upload_id, storage=storage)
        except StorageFailed:
            logger.warning("could not abort expired %s; the orphan sweep retries", upload.key)
    return expired


def find_orphans(
    *, now: datetime | None = None, storage: MultipartStorage | None = None
) -> list[Orphan]:
    """Multipart uploads in S3 under the key prefix that no live row owns, oldest first.

    A row that is aborted or expired does not own its S3 upload any more (its abort failed or
    was never confirmed); no row at all means it was lost, or is being written right now, which
    is why callers sweep only orphans older than a grace period.
    """
    prefix = _key_prefix()
    now = now or timezone.now()
    # Refuse anything outside the prefix even if a server ignored the Prefix parameter.
    listed = [
        item
        for item in (storage or get_storage()).list_multipart_uploads(prefix)
        if item.key.startswith(prefix)
    ]
    rows: dict[tuple[str, str], tuple[uuid.UUID, str]] = {}
    keys = sorted({item.key for item in listed})
    for start in range(0, len(keys), _ORPHAN_LOOKUP_CHUNK):
        # By key, which is unique and indexed; the S3 upload id must match too.
        chunk = keys[start : start + _ORPHAN_LOOKUP_CHUNK]
        for pk, key, s3_upload_id, status in Upload.objects.filter(key__in=chunk).values_list(
            "pk", "key", "s3_upload_id", "status"
        ):
            rows[(key, s3_upload_id)] = (pk, status)
    orphans = []
    for item in listed:
        row = rows.get((item.key, item.s3_upload_id))
        upload_pk, status = row if row is not None else (None, "")
        if status in OWNING:
            continue
        orphans.append(
            Orphan(
                key=item.key,
                s3_upload_id=item.s3_upload_id,
                initiated=item.initiated,
                age=now - item.initiated,
                upload_pk=upload_pk,
                upload_status=status,
            )
        )
    return sorted(orphans, key=lambda orphan: orphan.initiated)


def reconcile_orphans(
    *,
    older_than: int | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    storage: MultipartStorage | None = None,
) -> list[Orphan]:
    """Abort orphans older than `older_than` seconds (default UPLOADS_ORPHAN_GRACE).

    Returns the orphans aborted (or, with `dry_run`, those that would be). Younger ones are
    left alone: an upload whose S3 side exists but whose row is not committed yet looks the same.
    """
    grace = timedelta(seconds=upload_settings().orphan_grace if older_than is None else older_than)
    storage = storage or get_storage()
    old = [orphan for orphan in find_orphans(now=now, storage=storage) if orphan.age >= grace]
    return old if dry_run else _abort_orphans(old, storage=storage)


def abort_orphans(
    targets: Iterable[tuple[str, str]], *, storage: MultipartStorage | None = None
) -> list[Orphan]:
    """Abort the (key, S3 upload id) pairs an operator chose, each only if still an orphan."""
    storage = storage or get_storage()
    wanted = set(targets)
    orphans = find_orphans(storage=storage)
    return _abort_orphans(
        [o for o in orphans if (o.key, o.s3_upload_id) in wanted], storage=storage
    )


def _abort_orphans(orphans: Sequence[Orphan], *, storage: MultipartStorage) -> list[Orphan]:
    aborted = []
    for orphan in orphans:
        try:
            abort_until_gone(orphan.key, orphan.s3_upload_id, storage=storage)
        except StorageFailed:
            logger.warning("could not abort orphan %s", orphan.key, exc_info=True)
            continue
        aborted.append(orphan)
    return aborted


def abort_uploads(
    uploads: Iterable[Upload], *, storage: MultipartStorage | None = None
) -> BatchResult:
    """abort_upload for each upload on an operator's behalf; completed ones are refused."""
    result = BatchResult()
    for upload in uploads:
        was = upload.status
        try:
            abort_upload(upload, by=OPERATOR, storage=storage)
        except UploadConflict as error:
            result.errors.append(f"{upload.filename} ({upload.pk}): {error.detail}")
            continue
        except StorageFailed as error:
            # The row already says aborted; the orphan sweep finishes the S3 side.
            result.errors.append(f"{upload.filename} ({upload.pk}): {error.detail}")
        if upload.status != was:
            result.changed += 1
        else:
            result.unchanged += 1
    return result


@dataclass(frozen=True)
class ExpiryExtension:
    """What extending the expiry did: how many moved, how far S3 let them move."""

    extended: int = 0
    # Of those extended, how many stopped short at the date S3's lifecycle rule aborts them.
    capped: int = 0
    # Unfinished uploads left as they were: S3 aborts them at or before their current expiry.
    at_lifecycle_limit: int = 0


def extend_expiry(
    uploads: Iterable[Upload], *, by: timedelta, abort_days: int | None
) -> ExpiryExtension:
    """Push the expiry of unfinished uploads `by` further (counted from now if already past),
    but never past the date the bucket's lifecycle rule aborts their parts in S3.

    `abort_days` is that rule (selectors.lifecycle_abort_days(); None when the bucket has
    none). Without a rule it is one UPDATE; with one, each row's limit depends on when it was
    started, so the rows are read, locked and written back in one bulk UPDATE. The last
    activity (`updated_at`) is left as it was either way.
    """
    if by <= timedelta(0):
        raise InvalidInput("The extension must be positive.", field="by")
    now = timezone.now()
    unfinished = Upload.objects.filter(
        pk__in=[upload.pk for upload in uploads],
        status__in=EXPIRABLE,
        completed_at__isnull=True,
    )
    if abort_days is None:
        count = unfinished.update(expires_at=Greatest(F("expires_at"), Value(now)) + by)
        return ExpiryExtension(extended=count)
    extended: list[Upload] = []
    capped = at_limit = 0
    with transaction.atomic():
        for upload in unfinished.select_for_update().only("pk", "created_at", "expires_at"):
            start = max(upload.expires_at, now)
            # Past this S3 drops the parts whatever the row says: promising more would lie.
            limit = lifecycle_abort_date(upload.created_at, abort_days)
            if limit <= start:
                at_limit += 1
                continue
            if start + by > limit:
                capped += 1
            upload.expires_at = min(start + by, limit)
            extended.append(upload)
        Upload.objects.bulk_update(extended, ["expires_at"])
    return ExpiryExtension(extended=len(extended), capped=capped, at_lifecycle_limit=at_limit)


# Uploads per pruning statement: each DELETE stays short, whatever the backlog.
_PRUNE_BATCH = 500


@dataclass(frozen=True)
class PruneResult:
    uploads: int
    parts: int


def prune_settled_parts(*, now: datetime | None = None, batch: int = _PRUNE_BATCH) -> PruneResult:
    """Delete the part and session rows of uploads settled longer than UPLOADS_PARTS_KEPT_FOR.

    Part rows are the largest table (one per part, ~420 B each: docs/scaling.md) and serve an
    upload while it is open. Once it is settled they matter no more, except a completed
    upload's first and last part, kept: clients hash one of its parts to prove that a local
    file is the one uploaded (a lookalike with the same fingerprint is refused), and the API
    and admin still show them. Settled means completed *and* verified ok (a failed or pending
    verification keeps everything for the re-hash and for operators), or aborted, expired or
    deleted. Each upload is pruned once (`parts_pruned_at`); `parts_uploaded` and
    `bytes_uploaded` keep the totals. Runs in batches of `batch` uploads until none is left.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=upload_settings().parts_kept_for)
    settled = Upload.objects.filter(parts_pruned_at__isnull=True).filter(
        Q(status=Status.COMPLETED, verification=Upload.Verification.OK, completed_at__lt=cutoff)
        | Q(status__in=[Status.ABORTED, Status.EXPIRED, Status.DELETED], updated_at__lt=cutoff)
    )
    uploads = parts = 0
    while True:
        chunk = list(settled.order_by("updated_at").values_list("pk", "status")[:batch])
        if not chunk:
            return PruneResult(uploads, parts)
        ids = [pk for pk, _ in chunk]
        completed = [pk for pk, status in chunk if status == Status.COMPLETED]
        with transaction.atomic():
            proofs = Q(upload_id__in=completed) & (
                Q(number=1)
                | Q(number=F("upload__part_count"))
                | Q(number=F("upload__parts_uploaded"))
            )
            deleted, _ = UploadPart.objects.filter(upload_id__in=ids).exclude(proofs).delete()
            UploadSession.objects.filter(upload_id__in=ids).delete()
            Upload.objects.filter(pk__in=ids).update(parts_pruned_at=now)
        uploads, parts = uploads + len(ids), parts + deleted
