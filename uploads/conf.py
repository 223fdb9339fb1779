"""The app's own settings, read from django.conf.settings at call time.

The app reads its UPLOADS_* knobs through `upload_settings()` only (checks.py also lists which
UPLOADS_* names exist, to warn of typos), at call time, so pytest-django's `settings` fixture
(and any override) takes effect without a restart.
"""

from dataclasses import dataclass

from django.conf import settings

KNOWN_SETTINGS = frozenset(
    {
        "UPLOADS_BUCKET",
        "UPLOADS_KEY_PREFIX",
        "UPLOADS_MAX_SIZE",
        "UPLOADS_PART_SIZE",
        "UPLOADS_ALLOWED_TYPES",
        "UPLOADS_URL_EXPIRY",
        "UPLOADS_STALE_AFTER",
        "UPLOADS_SIGN_BATCH_MAX",
        "UPLOADS_SESSION_IDLE",
        "UPLOADS_CORS_ORIGINS",
        "UPLOADS_ORPHAN_GRACE",
        "UPLOADS_WEBHOOK_URL",
        "UPLOADS_WEBHOOK_SECRET",
        "UPLOADS_USER_MAX_OPEN_UPLOADS",
        "UPLOADS_USER_MAX_OPEN_BYTES",
    }
)


@dataclass(frozen=True)
class UploadSettings:
    bucket: str
    key_prefix: str
    max_size: int
    part_size: int
    allowed_types: tuple[str, ...]
    url_expiry: int
    stale_after: int
    sign_batch_max: int
    session_idle: int
    cors_origins: tuple[str, ...]
    orphan_grace: int
    webhook_url: str
    webhook_secret: str
    user_max_open_uploads: int
    user_max_open_bytes: int


def upload_settings() -> UploadSettings:
    """Return the current UPLOADS_* settings."""
    return UploadSettings(
        bucket=settings.UPLOADS_BUCKET,
        key_prefix=settings.UPLOADS_KEY_PREFIX,
        max_size=settings.UPLOADS_MAX_SIZE,
        part_size=settings.UPLOADS_PART_SIZE,
        allowed_types=tuple(settings.UPLOADS_ALLOWED_TYPES),
        url_expiry=settings.UPLOADS_URL_EXPIRY,
        stale_after=settings.UPLOADS_STALE_AFTER,
        sign_batch_max=settings.UPLOADS_SIGN_BATCH_MAX,
        session_idle=settings.UPLOADS_SESSION_IDLE,
        cors_origins=tuple(settings.UPLOADS_CORS_ORIGINS),
        orphan_grace=settings.UPLOADS_ORPHAN_GRACE,
        webhook_url=settings.UPLOADS_WEBHOOK_URL,
        webhook_secret=settings.UPLOADS_WEBHOOK_SECRET,
        user_max_open_uploads=settings.UPLOADS_USER_MAX_OPEN_UPLOADS,
        user_max_open_bytes=settings.UPLOADS_USER_MAX_OPEN_BYTES,
    )
