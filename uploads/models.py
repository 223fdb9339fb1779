"""Upload and UploadPart: the data and its invariants. No S3, no flow: see services.py."""

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from .parts import PartPlan


class UploadStatus(models.TextChoices):
    UPLOADING = "uploading"
    COMPLETING = "completing"
    COMPLETED = "completed"
    ABORTED = "aborted"
    EXPIRED = "expired"
    FAILED = "failed"


class Verification(models.TextChoices):
    """What the check of a completed object found (blank: not checked yet)."""

    OK = "ok"
    MISMATCH = "mismatch"


class Upload(models.Model):
    """One file on its way into S3 through a multipart upload."""

    Status = UploadStatus
    Verification = Verification
    INCOMPLETE = (Status.UPLOADING, Status.COMPLETING, Status.FAILED)

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

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="upload_owner_recent"),
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
    def plan(self) -> PartPlan | None:
        """The part plan, or None for an unplanned (Uppy-started) upload."""
        if self.size is None or self.part_size is None or self.part_count is None:
            return None
        return PartPlan(size=self.size, part_size=self.part_size, part_count=self.part_count)

    @property
    def is_planned(self) -> bool:
        return self.plan is not None

    def refresh_status(self) -> None:
        self.refresh_from_db(
            fields=["status", "etag", "checksum", "completed_at", "failure_reason", "size"]
        )


class UploadPart(models.Model):
    """What the server knows of one part: the checksum it signed and the ETag reported or seen."""

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField()
    size = models.BigIntegerField(null=True, blank=True)
    etag = models.CharField(max_length=128, blank=True)
    checksum = models.CharField(max_length=128, blank=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    uploaded_at = models.DateTimeField(null=True, blank=True)

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

    @property
    def is_uploaded(self) -> bool:
        return bool(self.etag)

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "size": self.size,
            "etag": self.etag,
            "checksum": self.checksum,
        }
