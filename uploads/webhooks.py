"""The completion webhook: a JSON POST signed as the Standard Webhooks specification says.

https://www.standardwebhooks.com/ — so a receiver verifies a delivery with an off-the-shelf
library in any language (`standardwebhooks.Webhook(secret).verify(body, headers)` in Python).
Each delivery carries:

- `webhook-id: <event id>`, the same on every retry, so a receiver can ignore a duplicate;
- `webhook-timestamp: <unix seconds>` when this attempt was sent;
- `webhook-signature: v1,<base64>`, the HMAC-SHA256 of `"<id>.<timestamp>.<body>"`. Signing
  the timestamp lets a receiver refuse a replayed request (the libraries allow five minutes).

The key is UPLOADS_WEBHOOK_SECRET: a Standard Webhooks secret, `whsec_` and base64 (what
`signing_secret()` generates). A secret without that prefix is used as the key's raw bytes, so
a receiver passes `secret.encode()` to the library (the secrets of earlier releases keep
working).

Delivery raises WebhookFailed on a network error, a 5xx, 408 or 429, for Celery to retry with
backoff; any other answer is final. This module speaks HTTP only: no state changes here.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from .exceptions import WebhookFailed
from .models import Upload

logger = logging.getLogger(__name__)

EVENT_COMPLETED = "upload.completed"
# The headers of the Standard Webhooks specification.
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a secret)
TIMEOUT = 10  # seconds; a slow receiver is retried rather than holding a worker
RETRY_STATUSES = frozenset({408, 429})


# Event ids are derived from the upload: a completion announced again (its first announcement
# lost with a dying process, services.resend_lost_completions) is the same event, which a
# receiver that keeps the webhook-ids it handled ignores.
EVENT_NAMESPACE = uuid.UUID("6f1c2a52-8d1e-4c4b-9d62-0c8a3b7f5e21")


def completed_event(upload: Upload) -> dict[str, Any]:
    """The `upload.completed` event for an upload, as JSON-ready data."""
    return {
        "id": str(uuid.uuid5(EVENT_NAMESPACE, f"{EVENT_COMPLETED}:{upload.pk}")),
        "type": EVENT_COMPLETED,
        "created_at": timezone.now().isoformat(),
        "data": {
            "id": str(upload.pk),
            "owner": {"id": upload.owner_id, "username": upload.owner.get_username()},
            "filename": upload.filename,
            "size": upload.size,
            "content_type": upload.content_type,
            "key": upload.key,
            "etag": upload.etag,
            "checksum": upload.checksum,
            "completed_at": upload.completed_at.isoformat() if upload.completed_at else None,
        },
    }


def signing_secret() -> str:
    """A new random secret for UPLOADS_WEBHOOK_SECRET, in the specification's `whsec_` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _webhook(secret: str) -> Webhook:
    # A `whsec_…` secret is base64 as the specification says; any other is the raw key.
    return Webhook(secret if secret.startswith(SECRET_PREFIX) else secret.encode())


def signed_headers(secret: str, *, event_id: str, body: bytes, sent: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, sent at `sent` as event `event_id`."""
    signature = _webhook(secret).sign(msg_id=event_id, timestamp=sent, data=body.decode())
    return {
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(int(sent.timestamp())),
        SIGNATURE_HEADER: signature,
    }


def verify(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """What a receiver checks, with the library: the signature matches and the timestamp is
    within five minutes of now."""
    try:
        _webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


def deliver(event: dict[str, Any], *, url: str, secret: str, timeout: float = TIMEOUT) -> int:
    """POST the event once; returns the receiver's status, raises WebhookFailed to be retried."""
    body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Partwise-Webhook/1",
        **signed_headers(secret, event_id=event["id"], body=body, sent=datetime.now(UTC)),
    }
    try:
        # No redirects: the signature is for this URL, and a redirect could point anywhere.
        response = requests.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.RequestException as error:
        raise WebhookFailed(f"The webhook receiver could not be reached ({error}).") from error
    status = response.status_code
    if status >= 500 or status in RETRY_STATUSES:
        raise WebhookFailed(f"The webhook receiver answered {status}.", status=status)
    if not 200 <= status < 300:
        logger.error("webhook %s refused with %s; not retried", event["id"], status)
    return status
