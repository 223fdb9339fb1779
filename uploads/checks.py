"""System checks for the uploads app (ids uploads.E00x / uploads.W00x)."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import DatabaseError

from .conf import KNOWN_SETTINGS, upload_settings
from .integrity import MD5, SETTING_CHOICES, forced_algorithm
from .parts import MAX_PART_SIZE, MIN_PART_SIZE

E001_BUCKET_MISSING = "UPLOADS_BUCKET is empty: set it to the bucket that holds uploads."
E002_PART_SIZE = f"UPLOADS_PART_SIZE must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes."
E003_PREFIX = "UPLOADS_KEY_PREFIX must be non-empty and end with '/'."
# The most parts the bundled clients (frontend/client.js, partwise_client) sign per call.
CLIENT_SIGN_BATCH = 100
W001_UNKNOWN_SETTING = "Unknown setting {name}: it has no effect (a typo?)."
W002_WEBHOOK_UNSIGNED = (
    "UPLOADS_WEBHOOK_URL is set but UPLOADS_WEBHOOK_SECRET is empty: no event is sent, since "
    "the receiver could not tell an unsigned event from a forged one."
)
W003_SIGN_BATCH_SMALL = (
    "UPLOADS_SIGN_BATCH_MAX is below 100: the browser and Python clients sign up to 100 parts "
    "per call by default, so their uploads would be refused; lower their signBatchSize / "
    "sign_batch too."
)

E004_PART_INTEGRITY = "UPLOADS_PART_INTEGRITY must be one of " + ", ".join(SETTING_CHOICES) + "."
E005_NOT_VERIFIED = (
    "UPLOADS_PART_INTEGRITY = {setting}, but the probe of {store} found that it does not verify "
    "{algorithm}: a corrupted part would complete. Use auto, or what the store verifies ({found})."
)
W004_VERIFIES_NOTHING = (
    "The probe of {store} found it verifies no part digest and its ETags are not the parts' "
    "MD5: nothing refuses a corrupted part, and uploads are marked unverified (re-hashed after "
    "completion). See README's store table."
)


@register()
def check_upload_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Refuse settings that would make uploads fail later, at a worse time."""
    problems: list[CheckMessage] = []
    conf = upload_settings()
    if not conf.bucket:
        problems.append(Error(E001_BUCKET_MISSING, id="uploads.E001"))
    if not MIN_PART_SIZE <= conf.part_size <= MAX_PART_SIZE:
        problems.append(Error(E002_PART_SIZE, id="uploads.E002"))
    if not conf.key_prefix or not conf.key_prefix.endswith("/"):
        # An empty prefix would let cleanup touch every multipart upload in the bucket.
        problems.append(Error(E003_PREFIX, id="uploads.E003"))
    if conf.sign_batch_max < CLIENT_SIGN_BATCH:
        problems.append(Warning(W003_SIGN_BATCH_SMALL, id="uploads.W003"))
    if conf.part_integrity not in SETTING_CHOICES:
        problems.append(Error(E004_PART_INTEGRITY, id="uploads.E004"))
    if conf.webhook_url and not conf.webhook_secret:
        problems.append(Warning(W002_WEBHOOK_UNSIGNED, id="uploads.W002"))
    # The one read of settings outside conf.py: which UPLOADS_* names exist at all.
    for name in dir(settings):
        if name.startswith("UPLOADS_") and name not in KNOWN_SETTINGS:
            problems.append(Warning(W001_UNKNOWN_SETTING.format(name=name), id="uploads.W001"))
    return problems


@register()
def check_store_profile(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """What the last probe of the store found (manage.py probe_storage), against the setting."""
    from .selectors import profile_of, store_profile_row  # imported once the app is ready

    try:
        row = store_profile_row()
    except (DatabaseError, RuntimeError):
        # Before migrate, or where the database may not be used (a test without it).
        return []
    if row is None:
        return []
    profile = profile_of(row)
    store = f"{row.bucket} at {row.endpoint}"
    found = ", ".join(sorted(profile.verifies)) or "nothing"
    forced = forced_algorithm(upload_settings().part_integrity)
    if forced:
        verified = forced in profile.verifies or (forced == MD5 and profile.etag_is_md5)
        if not verified:
            message = E005_NOT_VERIFIED.format(
                setting=forced.lower(), store=store, algorithm=forced, found=found
            )
            return [Error(message, id="uploads.E005")]
    if profile.verifies_nothing:
        return [Warning(W004_VERIFIES_NOTHING.format(store=store), id="uploads.W004")]
    return []
