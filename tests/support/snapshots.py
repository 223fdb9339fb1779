"""What a refused request must leave as it was: every row an answer could change, and S3.

`snapshot(storage)` before and after a call, compared with ==, proves the call changed
nothing: uploads, parts, tokens (their `last_used_at` aside: authenticating marks it), users,
the multipart uploads S3 holds in flight and the objects in the bucket.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from uploads.models import Upload, UploadPart
from uploads.tokens.models import ApiToken


def snapshot(storage: Any) -> dict[str, list[Any]]:
    listed = storage.client.list_objects_v2(Bucket=storage.bucket)
    return {
        "uploads": list(Upload.objects.order_by("pk").values()),
        "parts": list(UploadPart.objects.order_by("pk").values()),
        "tokens": list(ApiToken.objects.order_by("pk").values("pk", "user", "name", "digest")),
        "users": list(
            get_user_model().objects.order_by("pk").values("pk", "username", "is_active")
        ),
        "in flight": [(u.key, u.s3_upload_id) for u in storage.list_multipart_uploads("")],
        "objects": [(o["Key"], o["ETag"]) for o in listed.get("Contents", [])],
    }
