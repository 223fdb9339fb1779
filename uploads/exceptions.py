"""The one error vocabulary of the upload services.

Each class carries an HTTP `status_code` and a stable snake_case `code` that clients switch on;
uploads/api/errors.py is the single place that turns them into JSON responses. DRF is not
imported here: services stay free of HTTP.
"""

from typing import Any


class UploadError(Exception):
    status_code = 400
    code = "invalid"
    default_detail = "The request is not valid."

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)


class InvalidInput(UploadError):
    """A value is out of range or malformed in a way only the service can tell."""


class InvalidFilename(UploadError):
    code = "invalid_filename"
    default_detail = "The file name is not allowed."


class PartOutOfRange(UploadError):
    code = "part_out_of_range"
    default_detail = "A part number is outside this upload's parts."


class ChecksumRequired(UploadError):
    code = "checksum_required"
    default_detail = "This upload verifies every part: send each part's checksum."


class UploadTooLarge(UploadError):
    status_code = 413
    code = "upload_too_large"
    default_detail = "The file is larger than this server accepts."


class TypeNotAllowed(UploadError):
    status_code = 415
    code = "type_not_allowed"
    default_detail = "Files of this type are not accepted."


class UploadConflict(UploadError):
    """The upload is in a state that does not allow this call."""

    status_code = 409
    code = "upload_conflict"
    default_detail = "The upload is not in a state that allows this."


class IdempotencyConflict(UploadConflict):
    code = "idempotency_conflict"
    default_detail = "This client_token was already used for a different upload."


class PartConflict(UploadConflict):
    code = "part_conflict"
    default_detail = "The part does not agree with what was signed or stored."


class PartMissing(UploadConflict):
    code = "part_missing"
    default_detail = "Some parts are not in storage yet."


class PartMismatch(UploadConflict):
    """S3 holds a part, but not the one that was planned or reported."""

    code = "part_mismatch"
    default_detail = "A part in storage does not match the upload's plan or its reported ETag."


class StorageFailed(UploadError):
    status_code = 502
    code = "storage_failed"
    default_detail = "The storage service failed."

    def __init__(self, detail: str | None = None, *, s3_code: str = "", **extra: Any) -> None:
        super().__init__(detail, s3_code=s3_code, **extra)
        self.s3_code = s3_code


class CompletionUnknown(StorageFailed):
    """S3 did not say whether CompleteMultipartUpload took effect; a HEAD settles it."""


class WebhookFailed(UploadError):
    """The webhook receiver could not be reached or answered with an error worth retrying."""

    status_code = 502
    code = "webhook_failed"
    default_detail = "The webhook could not be delivered."
