"""The completion webhook: a JSON POST signed with HMAC-SHA256.

Each delivery carries:

- `X-Partwise-Event: upload.completed` and `X-Partwise-Delivery: <event id>` (the same on every
  retry, so a receiver can ignore a duplicate);
- `X-Partwise-Timestamp: <unix seconds>` when this attempt was sent;
- `X-Partwise-Signature: sha256=<hex>`, the HMAC-SHA256 with UPLOADS_WEBHOOK_SECRET of
  `"<timestamp>." + body`. Signing the timestamp lets a receiver refuse a replayed request
  (`verify_signature` allows five minutes).

Delivery raises WebhookFailed on a network error, a 5xx, 408 or 429, for Celery to retry with
backoff; any other answer is final. This module speaks HTTP only: no state changes here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

import requests
from django.utils import timezone

from .exceptions import WebhookFailed
from .models import Upload

logger = logging.getLogger(__name__)

EVENT_COMPLETED = "upload.completed"
SIGNATURE_HEADER = "X-Partwise-Signature"
TIMESTAMP_HEADER = "X-Partwise-Timestamp"
EVENT_HEADER = "X-Partwise-Event"
DELIVERY_HEADER = "X-Partwise-Delivery"
TOLERANCE = 300  # seconds a receiver should accept between the timestamp and its clock
TIMEOUT = 10  # seconds; a slow receiver is retried rather than holding a worker
RETRY_STATUSES = frozenset({408, 429})


def completed_event(upload: Upload) -> dict[str, Any]:
    """The `upload.completed` event for an upload, as JSON-ready data."""
    return {
        "id": str(uuid.uuid4()),
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


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str,
    *,
    body: bytes,
    timestamp: str,
    signature: str,
    now: float | None = None,
    tolerance: int = TOLERANCE,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature or "")


def deliver(event: dict[str, Any], *, url: str, secret: str, timeout: float = TIMEOUT) -> int:
    """POST the event once; returns the receiver's status, raises WebhookFailed to be retried."""
    body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Partwise-Webhook/1",
        EVENT_HEADER: event["type"],
        DELIVERY_HEADER: event["id"],
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
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
