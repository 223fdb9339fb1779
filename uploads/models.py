"""Upload and UploadPart: the data and its invariants. No S3, no flow: see services/."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections, models, router
from django.db.models import Q

from .parts import PartPlan

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


class UploadStatus(models.TextChoices):
    UPLOADING = "uploading"
    COMPLETING = "completing"
    COMPLETED = "completed"
    ABORTED = "aborted"
    EXPIRED = "expired"
    FAILED = "failed"
    # A completed upload whose object the owner deleted on purpose (If-Match: its etag); the
    # row is kept for audit, the object is gone from S3. Terminal.
    DELETED = "deleted"


class Verification(models.TextChoices):
    """What the check of a completed object found (blank: not checked yet)."""

    OK = "ok"
    MISMATCH = "mismatch"


class Integrity(models.TextChoices):
    """What catches a corrupted part of the upload (uploads/integrity.py; blank: before it was
    recorded, as `store`)."""

    STORE = "store", "the store verifies each part's digest"
    ETAG = "etag", "completion compares each part's ETag with its MD5"
    NONE = "none", "unverified: the object is re-hashed after completion"


class Upload(models.Model):
    """One file on its way into S3 through a multipart upload."""

    Status = UploadStatus
    Verification = Verification
    Integrity = Integrity
    INCOMPLETE = (Status.UPLOADING, Status.COMPLETING, Status.FAILED)
    # Statuses that expiry and "extend expiry" act on, while no object was ever completed.
    EXPIRABLE = (Status.UPLOADING, Status.FAILED)
    # Rows that still own their S3 multipart upload (or its object): never orphans.
    OWNING = (Status.UPLOADING, Status.COMPLETING, Status.FAILED, Status.COMPLETED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADING)
    filename = models.CharField(max_length=255)
    # Null only for uploads started through the Uppy-compatible endpoints, which never send a
    # size: they have no plan, and the size is recorded from S3 at completion.
    size = models.BigIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=255, blank=True)
    key = models.CharField(max_length=1024, unique=True, editable=False)
    s3_upload_id = models.CharField(max_length=1024, editable=False)
    part_size = models.BigIntegerField(null=True, blank=True)
    part_count = models.PositiveIntegerField(null=True, blank=True)
    checksum_algorithm = models.CharField(max_length=16, blank=True)
    integrity = models.CharField(max_length=8, choices=Integrity.choices, blank=True)
    fingerprint = models.CharField(max_length=128, blank=True)
    # NULL, not "": the unique (owner, client_token) constraint must ignore uploads without one.
    client_token = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # Denormalised progress, rewritten by the services whenever parts change, so that lists and
    # the admin show progress without touching the parts table.
    bytes_uploaded = models.BigIntegerField(default=0)
    parts_uploaded = models.PositiveIntegerField(default=0)
    etag = models.CharField(max_length=128, blank=True)
    checksum = models.CharField(max_length=128, blank=True)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    # Set by the verification task after completion: the object is HEADed again and its size
    # and checksum compared with what was recorded; a mismatch also marks the upload failed.
    verification = models.CharField(max_length=16, choices=Verification.choices, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # When `prune_settled_parts` deleted the part rows it does not keep (docs/scaling.md).
    parts_pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="upload_owner_recent"),
            # The pruning sweep's look-up: settled uploads not pruned yet, oldest first.
            models.Index(
                fields=["status", "updated_at"],
                condition=Q(parts_pruned_at__isnull=True),
                name="upload_parts_to_prune",
            ),
            # resend_lost_completions' look-up: completed, never verified.
            models.Index(
                fields=["completed_at"],
                condition=Q(status="completed", verification=""),
                name="upload_verification_due",
            ),
            models.Index(fields=["owner", "fingerprint"], name="upload_owner_fingerprint"),
            models.Index(fields=["status", "expires_at"], name="upload_status_expiry"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "client_token"],
                condition=Q(client_token__isnull=False),
                name="upload_unique_client_token",
            ),
            models.CheckConstraint(
                condition=Q(size__isnull=True) | Q(size__gte=0), name="upload_size_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(status__in=UploadStatus.values), name="upload_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"

    @property
    def part_integrity(self) -> str:
        """What catches a corrupted part (Integrity); rows from before it was recorded had
        what their client asked verified, as every store Partwise ran on then did."""
        if self.integrity:
            return self.integrity
        return Integrity.STORE if self.checksum_algorithm else Integrity.NONE

    @property
    def unverified(self) -> bool:
        """True when neither the store nor completion can catch a corrupted part."""
        return self.part_integrity == Integrity.NONE

    @property
    def plan(self) -> PartPlan | None:
        """The part plan, or None for an unplanned (Uppy-started) upload."""
        if self.size is None or self.part_size is None or self.part_count is None:
            return None
        return PartPlan(size=self.size, part_size=self.part_size, part_count=self.part_count)

    def refresh_status(self) -> None:
        self.refresh_from_db(
            fields=["status", "etag", "checksum", "completed_at", "failure_reason", "size"]
        )


# --- the part upsert -------------------------------------------------------------------------
# Write many UploadPart rows of one upload in ONE SQL statement, whatever their number.
#
# Django's `bulk_create(update_conflicts=True)` splits its INSERT into batches of
# max_query_params // fields rows: on SQLite (999 parameters) a sign or report call of 1,000
# parts took 8 statements. Here the rows travel as one JSON parameter and the database unpacks
# them (`json_each` on SQLite, `json_to_recordset` on PostgreSQL) inside a single
# `INSERT … SELECT … ON CONFLICT (upload_id, number) DO UPDATE`: one statement, two parameters.
# Other databases get `bulk_create`, which is correct but batched.
#
# Only the services call it (`UploadPart.objects.upsert`): they decide what to write; this
# only knows how.
# Every column a part row has besides its id, in insert order, with its value when not given.
COLUMNS = (
    "number",
    "size",
    "etag",
    "checksum",
    "checksum_replaced",
    "signed_at",
    "uploaded_at",
    "leased_to",
)
DEFAULTS: dict[str, Any] = {
    "size": None,
    "etag": "",
    "checksum": "",
    "checksum_replaced": False,
    "signed_at": None,
    "uploaded_at": None,
    "leased_to": "",
}
# Databases whose JSON functions unpack the rows; others get bulk_create's batches.
ONE_STATEMENT_VENDORS = ("sqlite", "postgresql")
# How PostgreSQL reads each JSON field (json_to_recordset needs the column types).
_PG_TYPES = {
    "number": "integer",
    "size": "bigint",
    "etag": "text",
    "checksum": "text",
    "checksum_replaced": "boolean",
    "signed_at": "timestamp with time zone",
    "uploaded_at": "timestamp with time zone",
    "leased_to": "text",
}


def _upsert(upload: Upload, rows: Iterable[Mapping[str, Any]], *, update: Sequence[str]) -> None:
    """Insert the parts `rows` (dicts with "number" and any of COLUMNS) of `upload`; a part
    that exists already gets only the `update` columns from its row, the rest is kept.

    Columns missing from a row get DEFAULTS on insert. Part numbers must be unique in `rows`.
    """
    rows = list(rows)
    if not rows:
        return
    unknown = set(update) - set(COLUMNS[1:])
    if unknown:
        raise ValueError(f"unknown part columns: {sorted(unknown)}")
    connection = connections[router.db_for_write(_part_model())]
    vendor = connection.vendor
    if vendor not in ONE_STATEMENT_VENDORS:
        _bulk_create(upload, rows, update)
        return
    prepared: dict[tuple[str, Any], Any] = {}  # a batch shares one timestamp: convert it once
    payload = json.dumps(
        [
            {
                name: _db_value(name, row.get(name, DEFAULTS.get(name)), connection, prepared)
                for name in COLUMNS
            }
            for row in rows
        ],
        separators=(",", ":"),
    )
    upload_pk = upload._meta.pk.get_db_prep_value(upload.pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(_statement(connection, tuple(update)), [upload_pk, payload])


def _db_value(
    name: str, value: Any, connection: BaseDatabaseWrapper, prepared: dict[tuple[str, Any], Any]
) -> Any:
    """The value as the database stores it, in JSON (datetimes as text the backend reads)."""
    if not isinstance(value, datetime):
        return value  # numbers and text go as they are; None is null
    key = (name, value)
    if key not in prepared:
        stored = _part_meta().get_field(name).get_db_prep_value(value, connection)
        prepared[key] = stored.isoformat() if isinstance(stored, datetime) else stored
    return prepared[key]


_statements: dict[tuple[str, tuple[str, ...]], str] = {}


def _statement(connection: BaseDatabaseWrapper, update: tuple[str, ...]) -> str:
    """The upsert's SQL. Only names from COLUMNS and the model go into it; values are parameters."""
    vendor = connection.vendor
    cached = _statements.get((vendor, update))
    if cached is not None:
        return cached
    quote = connection.ops.quote_name
    meta = _part_meta()
    table = quote(meta.db_table)
    upload_column = quote(meta.get_field("upload").column)
    columns = [quote(meta.get_field(name).column) for name in COLUMNS]
    if vendor == "sqlite":
        # `WHERE true`: without a WHERE, SQLite reads ON CONFLICT as a join constraint.
        selected = ", ".join(f"json_extract(value, '$.{name}')" for name in COLUMNS)
        source = f"SELECT %s, {selected} FROM json_each(%s) WHERE true"  # noqa: S608
    else:
        record = ", ".join(f"{name} {_PG_TYPES[name]}" for name in COLUMNS)
        selected = ", ".join(f"r.{name}" for name in COLUMNS)
        source = f"SELECT %s, {selected} FROM json_to_recordset(%s::json) AS r({record})"  # noqa: S608
    if update:
        assignments = ", ".join(
            f"{quote(meta.get_field(name).column)} = excluded.{quote(meta.get_field(name).column)}"
            for name in update
        )
        conflict = f"DO UPDATE SET {assignments}"
    else:
        conflict = "DO NOTHING"
    sql = (
        f"INSERT INTO {table} ({upload_column}, {', '.join(columns)}) {source} "
        f"ON CONFLICT ({upload_column}, {quote(meta.get_field('number').column)}) {conflict}"
    )
    _statements[(vendor, update)] = sql
    return sql


def _bulk_create(upload: Upload, rows: list[Mapping[str, Any]], update: Sequence[str]) -> None:
    objects = [_part_model()(upload=upload, **{**DEFAULTS, **row}) for row in rows]
    if update:
        _part_model().objects.bulk_create(
            objects, update_conflicts=True, unique_fields=["upload", "number"], update_fields=update
        )
    else:
        _part_model().objects.bulk_create(objects, ignore_conflicts=True)


def _part_model() -> type[UploadPart]:
    return UploadPart


def _part_meta() -> Any:
    # Any, not Options[UploadPart]: its get_field answers fields, relations and generic keys
    # alike, and every name looked up here is a concrete column of UploadPart.
    return UploadPart._meta


class UploadPartManager(models.Manager["UploadPart"]):
    def upsert(
        self, upload: Upload, rows: Iterable[Mapping[str, Any]], *, update: Sequence[str]
    ) -> None:
        """Insert the parts `rows` (dicts with "number" and any of COLUMNS) of `upload` in one
        statement; a part that exists already gets only the `update` columns from its row."""
        _upsert(upload, rows, update=update)


class UploadPart(models.Model):
    """What the server knows of one part: the checksum it signed and the ETag reported or seen."""

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField()
    size = models.BigIntegerField(null=True, blank=True)
    etag = models.CharField(max_length=128, blank=True)
    checksum = models.CharField(max_length=128, blank=True)
    # Signed again with another checksum before any report: S3 may hold the bytes of the
    # first signature, so completion names this part when S3 refuses a part's checksum.
    checksum_replaced = models.BooleanField(default=False)
    signed_at = models.DateTimeField(null=True, blank=True)
    uploaded_at = models.DateTimeField(null=True, blank=True)
    # The session that last signed the part with a session id ("" for none): while that
    # session is active on the upload (UploadSession.seen_at within UPLOADS_SESSION_IDLE), the
    # part is not handed to another session. A lease lapses with its session's silence, so it
    # needs no clean-up.
    leased_to = models.CharField(max_length=64, blank=True)

    objects = UploadPartManager()

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["upload", "number"], name="upload_part_unique_number"),
            models.CheckConstraint(
                condition=Q(number__gte=1) & Q(number__lte=10_000), name="upload_part_number_range"
            ),
        ]

    def __str__(self) -> str:
        return f"part {self.number} of {self.upload_id}"


class UploadSession(models.Model):
    """One client session (an upload attempt of a tab, a device or a CLI run) on one upload.

    `seen_at` is the last time it signed or reported: the session is active while that is
    within UPLOADS_SESSION_IDLE, and its leased parts (UploadPart.leased_to) are its own.
    """

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="sessions")
    session = models.CharField(max_length=64)
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["upload", "session"], name="upload_session_unique"),
        ]
        indexes = [models.Index(fields=["upload", "seen_at"], name="upload_session_seen")]

    def __str__(self) -> str:
        return f"session {self.session} on {self.upload_id}"


class StoreProfile(models.Model):
    """What `probe_storage` found a store to verify, per endpoint and bucket.

    Written by the probe (uploads/storage/probe.py, through presigned URLs as clients send
    parts), read by `selectors.store_profile` when an upload starts: the server chooses each
    upload's part digest from it (uploads/integrity.py). `findings` keeps every probe step.
    """

    endpoint = models.CharField(max_length=512)
    bucket = models.CharField(max_length=255)
    verifies = models.JSONField(default=list)  # digests a wrong value of is refused: SHA256…
    binds_length = models.BooleanField(default=True)
    equal_part_sizes = models.BooleanField(default=False)
    etag_is_md5 = models.BooleanField(default=False)
    findings = models.JSONField(default=list)
    probed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "bucket"], name="store_profile_unique")
        ]

    def __str__(self) -> str:
        return f"{self.bucket} at {self.endpoint}"
