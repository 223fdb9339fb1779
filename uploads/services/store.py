"""The store's profile: probed through the presigned path and recorded per endpoint and bucket.

`probe_and_record_store` is what `setup_storage` and `probe_storage` run; the result decides
each new upload's part digest (uploads/integrity.py, `selectors.store_profile`).
"""

from __future__ import annotations

from django.utils import timezone

from ..conf import upload_settings
from ..models import StoreProfile as StoreProfileRow
from ..selectors import forget_store_profile
from ..storage import MultipartStorage, get_storage
from ..storage.probe import ProbeResult, Sender, probe_store


def probe_and_record_store(
    *, storage: MultipartStorage | None = None, send: Sender | None = None
) -> ProbeResult:
    """Probe what the configured store verifies, and record it for the uploads to come."""
    storage = storage or get_storage()
    result = probe_store(storage, key_prefix=upload_settings().key_prefix, send=send)
    record_store_profile(result, storage=storage)
    return result


def record_store_profile(result: ProbeResult, *, storage: MultipartStorage) -> StoreProfileRow:
    """Store a probe's result (replacing the previous one of this endpoint and bucket)."""
    profile = result.profile
    row, _ = StoreProfileRow.objects.update_or_create(
        endpoint=storage.endpoint,
        bucket=storage.bucket,
        defaults={
            "verifies": sorted(profile.verifies),
            "binds_length": profile.binds_length,
            "equal_part_sizes": profile.equal_part_sizes,
            "etag_is_md5": profile.etag_is_md5,
            "findings": [step.as_dict() for step in result.steps],
            "probed_at": timezone.now(),
        },
    )
    forget_store_profile(storage)
    return row
