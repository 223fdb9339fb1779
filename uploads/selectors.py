"""Every read of uploads and parts that the API, the admin and the tasks need.

Reads only: nothing here changes a row or asks S3 to change anything (services do). A read
of S3 (the parts it holds, the bucket's lifecycle rule) goes through the storage seam.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from .conf import upload_settings
from .exceptions import StorageFailed, UploadGone
from .integrity import StoreProfile
from .models import StoreProfile as StoreProfileRow
from .models import Upload, UploadPart, UploadSession
from .parts import StoredPart
from .storage import MultipartStorage, abort_days, get_storage, lifecycle_abort_date

if TYPE_CHECKING:
    from .services.state import User

__all__ = [
    "ClientLimits",
    "LivePart",
    "OpenUsage",
    "active_sessions",
    "client_limits",
    "lifecycle_abort_date",
    "lifecycle_abort_days",
    "live_parts",
    "open_usage",
    "other_sessions",
    "recorded_parts",
    "resumable_upload",
    "stale",
    "stale_uploads",
    "status_counts",
    "stored_parts",
    "unverified",
    "uploads_of",
    "verification_overdue",
    "with_parts",
]

logger = logging.getLogger(__name__)
Status = Upload.Status


def uploads_of(
    owner: User, *, status: str | None = None, fingerprint: str | None = None
) -> QuerySet[Upload]:
    """The owner's uploads, newest first: the only queryset the API reads uploads from."""
    uploads = Upload.objects.filter(owner=owner)
    if status is not None:
        uploads = uploads.filter(status=status)
    if fingerprint is not None:
        uploads = uploads.filter(fingerprint=fingerprint)
    return uploads


def resumable_upload(owner: User, *, fingerprint: str, size: int, filename: str) -> Upload | None:
    """The owner's newest upload still uploading this file (same fingerprint, size and name)."""
    return (
        uploads_of(owner, status=Status.UPLOADING, fingerprint=fingerprint)
        .filter(size=size, filename=filename)
        .order_by("-created_at")
        .first()
    )


@dataclass(frozen=True)
class ClientLimits:
    """What a client must respect, told in every upload's JSON (`limits`)."""

    sign_batch_max: int
    report_batch_max: int
    url_expires_in: int
    session_idle: int


def client_limits() -> ClientLimits:
    """The limits of the current settings."""
    conf = upload_settings()
    return ClientLimits(
        sign_batch_max=conf.sign_batch_max,
        # services.validation.check_part_numbers holds sign and report batches to one limit.
        report_batch_max=conf.sign_batch_max,
        url_expires_in=conf.url_expiry,
        session_idle=conf.session_idle,
    )


def active_sessions(upload: Upload, *, now: datetime | None = None) -> set[str]:
    """The sessions that signed or reported on the upload within UPLOADS_SESSION_IDLE."""
    since = (now or timezone.now()) - timedelta(seconds=upload_settings().session_idle)
    return set(
        UploadSession.objects.filter(upload=upload, seen_at__gte=since).values_list(
            "session", flat=True
        )
    )


def other_sessions(upload: Upload, *, session: str = "", now: datetime | None = None) -> int:
    """How many sessions besides `session` are active on the upload (one query)."""
    since = (now or timezone.now()) - timedelta(seconds=upload_settings().session_idle)
    active = UploadSession.objects.filter(upload=upload, seen_at__gte=since)
    if session:
        active = active.exclude(session=session)
    return active.count()


@dataclass(frozen=True)
class OpenUsage:
    """What a user's open uploads hold: how many, and how many bytes they declare."""

    uploads: int
    bytes: int


def open_usage(owner: User) -> OpenUsage:
    """The owner's open (incomplete) uploads, counted against the quotas, in one query."""
    totals = Upload.objects.filter(owner=owner, status__in=Upload.INCOMPLETE).aggregate(
        uploads=Count("pk"), bytes=Coalesce(Sum("size"), 0)
    )
    return OpenUsage(uploads=totals["uploads"], bytes=totals["bytes"])


def with_parts(upload: Upload) -> Upload:
    """Attach the upload's parts as a fresh prefetch (one query), for serialisation."""
    # Django's own prefetch cache (what prefetch_related fills), which the stubs do not declare.
    upload._prefetched_objects_cache = {"parts": UploadPart.objects.filter(upload=upload)}  # type: ignore[attr-defined]
    return upload


def unverified() -> Q:
    """Uploads whose parts nothing checked (Upload.unverified): rows that recorded it, and
    older rows that carry no part digest."""
    return Q(integrity=Upload.Integrity.NONE) | Q(integrity="", checksum_algorithm="")


def verification_overdue(now: datetime | None = None, *, limit: int = 1000) -> QuerySet[Upload]:
    """Completed uploads still unverified UPLOADS_VERIFY_OVERDUE_AFTER after completing, oldest
    first (at most `limit`): their announcement was lost (services.resend_lost_completions)."""
    after = timedelta(seconds=upload_settings().verify_overdue_after)
    cutoff = (now or timezone.now()) - after
    overdue = Upload.objects.filter(
        status=Status.COMPLETED, verification="", completed_at__lt=cutoff
    ).select_related("owner")
    return overdue.order_by("completed_at")[:limit]


def stale(now: datetime | None = None) -> Q:
    """Uploads past their expiry and still expirable: the next expiry sweep aborts them."""
    return Q(
        status__in=Upload.EXPIRABLE,
        completed_at__isnull=True,
        expires_at__lt=now or timezone.now(),
    )


def stale_uploads(now: datetime | None = None) -> QuerySet[Upload]:
    """The stale uploads, longest expired first, with their owners."""
    return Upload.objects.filter(stale(now)).select_related("owner").order_by("expires_at")


def status_counts() -> dict[str, int]:
    """How many uploads are in each status (every status listed), from one query."""
    counts = dict(Upload.objects.order_by().values_list("status").annotate(count=Count("pk")))
    return {value: counts.get(value, 0) for value in Status.values}


def recorded_parts(upload: Upload, *, limit: int) -> tuple[list[UploadPart], int]:
    """The first `limit` recorded parts in order, and how many there are in all."""
    parts = UploadPart.objects.filter(upload=upload).order_by("number")
    return list(parts[:limit]), parts.count()


def stored_parts(upload: Upload, *, storage: MultipartStorage | None = None) -> list[StoredPart]:
    """The parts S3 holds for the upload right now (none once S3 has let the upload go)."""
    if upload.status not in (Status.UPLOADING, Status.COMPLETING, Status.FAILED):
        return []
    try:
        return (storage or get_storage()).list_parts(upload.key, upload.s3_upload_id)
    except UploadGone:
        return []


@dataclass(frozen=True)
class LivePart:
    """A part S3 holds, and whether it is the one the server recorded (same ETag)."""

    part: StoredPart
    matches_record: bool


def live_parts(
    upload: Upload, recorded: list[UploadPart], *, storage: MultipartStorage | None = None
) -> list[LivePart]:
    """S3's parts of the upload against the recorded ones (the admin's live view)."""
    by_number = {part.number: part for part in recorded}
    return [
        LivePart(part, part.number in by_number and by_number[part.number].etag == part.etag)
        for part in stored_parts(upload, storage=storage)
    ]


def lifecycle_abort_days(*, storage: MultipartStorage | None = None) -> int | None:
    """Days after initiation when the bucket's lifecycle rule aborts Partwise's uploads.

    None when no enabled AbortIncompleteMultipartUpload rule covers the whole key prefix, or
    when S3 cannot say (the admin then shows no date rather than failing).
    """
    try:
        rules = (storage or get_storage()).get_bucket_lifecycle_configuration()
    except StorageFailed:
        logger.info("could not read the bucket's lifecycle rules", exc_info=True)
        return None
    return abort_days(rules, upload_settings().key_prefix)


# The store's profile is read when an upload starts; the cache (shared by every process when
# it is Redis) saves that query, and `record_store_profile` refreshes it. An hour bounds how
# long a profile edited in the database alone goes unseen.
PROFILE_CACHE_SECONDS = 3600
_NO_PROFILE = "never probed"


def _profile_cache_key(storage: MultipartStorage) -> str:
    return f"partwise:store-profile:{storage.endpoint}:{storage.bucket}"


def store_profile_row(storage: MultipartStorage | None = None) -> StoreProfileRow | None:
    """The stored probe result of the configured store, or None when it was never probed."""
    storage = storage or get_storage()
    return StoreProfileRow.objects.filter(endpoint=storage.endpoint, bucket=storage.bucket).first()


def store_profile(storage: MultipartStorage | None = None) -> StoreProfile | None:
    """What the configured store verifies (uploads/integrity.py), None when never probed."""
    storage = storage or get_storage()
    key = _profile_cache_key(storage)
    cached = cache.get(key)
    if cached is None:
        row = store_profile_row(storage)
        cached = _NO_PROFILE if row is None else profile_of(row)
        cache.set(key, cached, PROFILE_CACHE_SECONDS)
    return None if cached == _NO_PROFILE else cached


def forget_store_profile(storage: MultipartStorage) -> None:
    """Drop the cached profile, so the next upload reads the one just recorded."""
    cache.delete(_profile_cache_key(storage))


def profile_of(row: StoreProfileRow) -> StoreProfile:
    """The domain's view of a stored probe result."""
    return StoreProfile(
        verifies=frozenset(row.verifies),
        binds_length=row.binds_length,
        equal_part_sizes=row.equal_part_sizes,
        etag_is_md5=row.etag_is_md5,
    )
