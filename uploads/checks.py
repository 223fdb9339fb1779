"""System checks for the uploads app (ids uploads.E00x / uploads.W00x)."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .conf import KNOWN_SETTINGS, upload_settings
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
    if conf.webhook_url and not conf.webhook_secret:
        problems.append(Warning(W002_WEBHOOK_UNSIGNED, id="uploads.W002"))
    # The one read of settings outside conf.py: which UPLOADS_* names exist at all.
    for name in dir(settings):
        if name.startswith("UPLOADS_") and name not in KNOWN_SETTINGS:
            problems.append(Warning(W001_UNKNOWN_SETTING.format(name=name), id="uploads.W001"))
    return problems
