"""The app's own settings, read from django.conf.settings at call time.

The app reads its UPLOADS_* knobs through `upload_settings()` only (checks.py also lists which
UPLOADS_* names exist, to warn of typos), at call time, so pytest-django's `settings` fixture
(and any override) takes effect without a restart. Each has a default (DEFAULTS), so a host
project sets only those it wants changed (README's "Add Partwise to your Django project");
project/settings.py sets them all from the environment.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings

KNOWN_SETTINGS = frozenset(
    {
        "UPLOADS_BUCKET",
        "UPLOADS_KEY_PREFIX",
        "UPLOADS_MAX_SIZE",
        "UPLOADS_PART_SIZE",
        "UPLOADS_ALLOWED_TYPES",
        "UPLOADS_URL_EXPIRY",
        "UPLOADS_DOWNLOAD_EXPIRY",
        "UPLOADS_STALE_AFTER",
        "UPLOADS_SIGN_BATCH_MAX",
        "UPLOADS_SESSION_IDLE",
        "UPLOADS_CORS_ORIGINS",
        "UPLOADS_ORPHAN_GRACE",
        "UPLOADS_PARTS_KEPT_FOR",
        "UPLOADS_VERIFY_OVERDUE_AFTER",
        "UPLOADS_WEBHOOK_URL",
        "UPLOADS_WEBHOOK_SECRET",
        "UPLOADS_USER_MAX_OPEN_UPLOADS",
        "UPLOADS_USER_MAX_OPEN_BYTES",
        "UPLOADS_API_THROTTLE_RATES",
        "UPLOADS_PART_INTEGRITY",
    }
)

# Lifetime of a presigned download (GET) URL, in seconds: short, because anyone holding the
# URL can fetch the file until it expires.
DEFAULT_DOWNLOAD_EXPIRY = 300


# What a project that does not set a knob gets; project/settings.py's defaults say the same.
DEFAULTS: dict[str, Any] = {
    "UPLOADS_BUCKET": "partwise",
    "UPLOADS_KEY_PREFIX": "uploads/",
    "UPLOADS_MAX_SIZE": 5 * 1024**4,  # 5 TiB, S3's object limit
    "UPLOADS_PART_SIZE": 8 * 1024**2,
    "UPLOADS_ALLOWED_TYPES": [],  # any type
    "UPLOADS_URL_EXPIRY": 900,
    "UPLOADS_STALE_AFTER": 7 * 24 * 3600,
    "UPLOADS_SIGN_BATCH_MAX": 1000,
    "UPLOADS_SESSION_IDLE": 30,
    # No browser origin: a host names the origins its pages are served from.
    "UPLOADS_CORS_ORIGINS": [],
    "UPLOADS_ORPHAN_GRACE": 24 * 3600,
    # How long a settled upload (completed and verified, aborted, expired) keeps all its part
    # rows; then `prune_settled_parts` deletes them, keeping a completed upload's first and
    # last part, which clients hash to prove a local file is the one uploaded.
    "UPLOADS_PARTS_KEPT_FOR": 7 * 24 * 3600,
    # A completed upload is verified seconds after completing; one still unverified this long
    # after lost its announcement (a process killed between commit and publish, a broker
    # restart), and the hourly `resend_lost_completions` announces it again.
    "UPLOADS_VERIFY_OVERDUE_AFTER": 3600,
    "UPLOADS_WEBHOOK_URL": "",
    "UPLOADS_WEBHOOK_SECRET": "",
    "UPLOADS_USER_MAX_OPEN_UPLOADS": 100,
    "UPLOADS_USER_MAX_OPEN_BYTES": 1024**4,  # 1 TiB
    # Which digest parts carry: "auto" follows the store's probed profile (uploads/integrity.py).
    "UPLOADS_PART_INTEGRITY": "auto",
    # The API's throttles (uploads/api/base.py), by scope; a host sets only the ones it changes.
    "UPLOADS_API_THROTTLE_RATES": {
        "anon": "60/min",  # per anonymous client address; failed authentication counts here
        "user": "6000/min",  # per signed-in user
        "token_login": "10/min",  # POST /api/auth/token/ attempts, per client address
    },
}


def _setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


@dataclass(frozen=True)
class UploadSettings:
    bucket: str
    key_prefix: str
    max_size: int
    part_size: int
    allowed_types: tuple[str, ...]
    url_expiry: int
    download_expiry: int
    stale_after: int
    sign_batch_max: int
    session_idle: int
    cors_origins: tuple[str, ...]
    orphan_grace: int
    parts_kept_for: int
    verify_overdue_after: int
    webhook_url: str
    webhook_secret: str
    user_max_open_uploads: int
    user_max_open_bytes: int
    api_throttle_rates: dict[str, str | None]
    part_integrity: str


def upload_settings() -> UploadSettings:
    """Return the current UPLOADS_* settings."""
    return UploadSettings(
        bucket=_setting("UPLOADS_BUCKET"),
        key_prefix=_setting("UPLOADS_KEY_PREFIX"),
        max_size=_setting("UPLOADS_MAX_SIZE"),
        part_size=_setting("UPLOADS_PART_SIZE"),
        allowed_types=tuple(_setting("UPLOADS_ALLOWED_TYPES")),
        url_expiry=_setting("UPLOADS_URL_EXPIRY"),
        # Read with a default: a host project that never heard of it still gets 5 minutes.
        download_expiry=getattr(settings, "UPLOADS_DOWNLOAD_EXPIRY", DEFAULT_DOWNLOAD_EXPIRY),
        stale_after=_setting("UPLOADS_STALE_AFTER"),
        sign_batch_max=_setting("UPLOADS_SIGN_BATCH_MAX"),
        session_idle=_setting("UPLOADS_SESSION_IDLE"),
        cors_origins=tuple(_setting("UPLOADS_CORS_ORIGINS")),
        orphan_grace=_setting("UPLOADS_ORPHAN_GRACE"),
        parts_kept_for=_setting("UPLOADS_PARTS_KEPT_FOR"),
        verify_overdue_after=_setting("UPLOADS_VERIFY_OVERDUE_AFTER"),
        webhook_url=_setting("UPLOADS_WEBHOOK_URL"),
        webhook_secret=_setting("UPLOADS_WEBHOOK_SECRET"),
        user_max_open_uploads=_setting("UPLOADS_USER_MAX_OPEN_UPLOADS"),
        user_max_open_bytes=_setting("UPLOADS_USER_MAX_OPEN_BYTES"),
        part_integrity=str(_setting("UPLOADS_PART_INTEGRITY")).lower(),
        api_throttle_rates={
            **DEFAULTS["UPLOADS_API_THROTTLE_RATES"],
            **getattr(settings, "UPLOADS_API_THROTTLE_RATES", {}),
        },
    )
