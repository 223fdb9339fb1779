"""Every error the app raises: one hierarchy under UploadError.

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


class QuotaExceeded(UploadError):
    """The user's open uploads would exceed UPLOADS_USER_MAX_OPEN_UPLOADS or _BYTES."""

    status_code = 403
    code = "quota_exceeded"
    default_detail = "Your open uploads have reached their limit: complete or abort some first."


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


class PreconditionFailed(UploadError):
    """An `If-Match` that does not name the upload's current etag (RFC 9110, 13.1.1).

    Deleting a completed file must name the file it means: a stale or wrong etag is refused
    rather than taken as "delete whatever is there".
    """

    status_code = 412
    code = "precondition_failed"
    default_detail = "If-Match does not name this upload's etag."


class StorageFailed(UploadError):
    """S3 could not do what was asked; `s3_code` is S3's own error code ("" if unreachable).

    Only `uploads/storage/` raises the storage errors, and only it reads S3's codes: the rest
    of the app decides by class.
    """

    status_code = 502
    code = "storage_failed"
    default_detail = "The storage service failed."

    def __init__(self, detail: str | None = None, *, s3_code: str = "", **extra: Any) -> None:
        super().__init__(detail, s3_code=s3_code, **extra)
        self.s3_code = s3_code


class StorageUnreachable(StorageFailed):
    """S3 could not be reached (connection refused or dropped, a timeout): a retry may succeed."""


class StorageBusy(StorageFailed):
    """S3 answered "not now" (throttled, an internal error, unavailable): a retry may succeed."""


class StorageRefused(StorageFailed):
    """S3 looked at the request and said no (e.g. a part it does not accept): final."""


class PartRefused(StorageRefused):
    """CompleteMultipartUpload refused a listed part: its ETag or checksum is not what S3 holds."""


class UploadGone(StorageRefused):
    """S3 no longer has the multipart upload (aborted, expired by the lifecycle rule) or key."""


class CompletionUnknown(StorageFailed):
    """S3 did not say whether CompleteMultipartUpload took effect; a HEAD settles it."""


# --- the Uppy/Companion layer ----------------------------------------------------------------
class MultipartRequired(UploadError):
    code = "multipart_required"
    default_detail = (
        "Partwise accepts multipart uploads only: configure @uppy/aws-s3 with "
        "shouldUseMultipart: true."
    )


class KeyMismatch(UploadError):
    code = "key_mismatch"
    default_detail = "The key does not belong to this upload."


# --- request parsing -------------------------------------------------------------------------
class RequestTooLarge(UploadError):
    """A request body over DATA_UPLOAD_MAX_MEMORY_SIZE (also a chunked one)."""

    status_code = 413
    code = "request_too_large"
    default_detail = "The request body is too large."


class WebhookFailed(UploadError):
    """The webhook receiver could not be reached or answered with an error worth retrying."""

    status_code = 502
    code = "webhook_failed"
    default_detail = "The webhook could not be delivered."


# --- API tokens (uploads/tokens) ---------------------------------------------------------------
class InvalidCredentials(UploadError):
    """A token login with a wrong password, or for an unknown or inactive user: one answer for all.

    A 401: the login view (uploads/api/tokens.py) adds its `WWW-Authenticate` challenge.
    """

    status_code = 401
    code = "invalid_credentials"
    default_detail = "Unable to log in with the username and password given."


class TooManyTokens(UploadConflict):
    """The user holds MAX_TOKENS_PER_USER tokens (uploads/tokens/models.py) already."""

    code = "too_many_tokens"
    default_detail = "This user has too many tokens: revoke unused ones first."


# --- the one table of error codes -------------------------------------------------------------
# Codes that answers carry without an UploadError behind them: DRF's and Django's own errors,
# which uploads/api/errors.py passes through with these codes (DRF's `default_code`s).
FRAMEWORK_CODES = {
    "invalid": 400,  # every DRF ValidationError, whatever its field codes
    "parse_error": 400,  # a body that is not JSON
    "authentication_failed": 401,  # a wrong, revoked or malformed token
    "not_authenticated": 401,  # no credentials
    "csrf_failed": 403,  # uploads.api.authentication.CsrfSessionAuthentication
    "permission_denied": 403,
    "not_found": 404,  # not yours, or absent
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "unsupported_media_type": 415,  # a body that is not application/json
    "throttled": 429,  # with Retry-After
    "error": 500,  # DRF's APIException base (never raised by Partwise itself)
    "server_error": 500,  # uploads.api.errors.server_error, Django's handler500 (a bug)
}


def _subclasses(cls: type[UploadError]) -> list[type[UploadError]]:
    found: list[type[UploadError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def error_codes() -> dict[str, int]:
    """Every `code` an error answer can carry, with its HTTP status, sorted by code.

    The schema's Error enum and README's table are built from (or tested against) this.
    """
    codes: dict[str, int] = dict(FRAMEWORK_CODES)
    classes: list[type[UploadError]] = [UploadError, *_subclasses(UploadError)]
    for cls in classes:
        codes.setdefault(cls.code, cls.status_code)
    return dict(sorted(codes.items()))


# --- hardening: login lockout, request framing, hosts ------------------------------------------
class LoginLocked(UploadError):
    """Too many failed logins for one username from one address (django-axes, uploads/lockout.py).

    Answered 429 with `Retry-After` (the cool-off, AXES_COOLOFF_TIME) until it has passed or an
    operator deletes the access attempt in the admin.
    """

    status_code = 429
    code = "login_locked"
    default_detail = "Too many failed logins for this username from this address: try again later."

    def __init__(
        self, detail: str | None = None, *, retry_after: int | None = None, **extra: Any
    ) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class LengthRequired(UploadError):
    """A chunked request body where the server cannot read one (runserver's WSGI server)."""

    status_code = 411
    code = "length_required"
    default_detail = (
        "This server cannot read a chunked request body: send it with a Content-Length."
    )


class BadRequest(UploadError):
    """A request Django refused before any view ran (a SuspiciousOperation: handler400)."""

    code = "bad_request"
    default_detail = "The request is malformed."


class BadHost(BadRequest):
    """The Host header names a host that is not in ALLOWED_HOSTS."""

    code = "bad_host"
    default_detail = "The Host header names a host this server does not serve."
