"""Celery tasks: each fetches what it needs and calls one service (or the webhook sender).

Retries and logging live here; every rule lives in the services, which tests call directly.
`expire_stale_uploads`, `reconcile_orphans`, `prune_settled_parts` and
`resend_lost_completions` run from beat (CELERY_BEAT_SCHEDULE in settings).
`verify_upload` and `deliver_webhook` are queued by the `upload_completed` receivers below:
services send the signal once a completion commits and never import this module.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.dispatch import receiver

from . import services, webhooks
from .conf import upload_settings
from .exceptions import StorageBusy, StorageUnreachable, WebhookFailed
from .models import Upload
from .signals import upload_completed

logger = logging.getLogger(__name__)


# Retried only while S3 may answer later: a refusal (AccessDenied…) would fail every time.
@shared_task(
    autoretry_for=(StorageBusy, StorageUnreachable),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def verify_upload(upload_id: str) -> str:
    """HEAD the completed object again; returns the verification recorded ("" if none)."""
    upload = Upload.objects.filter(pk=upload_id).first()
    if upload is None:
        logger.info("verify_upload: upload %s no longer exists", upload_id)
        return ""
    return services.verify_upload(upload).verification


@shared_task
def expire_stale_uploads() -> int:
    """Settle dead completions, then expire and abort uploads inactive past their expiry;
    returns how many expired."""
    services.settle_dead_completions()
    return len(services.expire_stale_uploads())


@shared_task
def reconcile_orphans() -> int:
    """Abort orphaned S3 uploads older than UPLOADS_ORPHAN_GRACE; returns how many."""
    return len(services.reconcile_orphans())


@shared_task
def resend_lost_completions() -> int:
    """Announce again the completions whose verification never ran; returns how many."""
    return services.resend_lost_completions()


@shared_task
def prune_settled_parts() -> int:
    """Delete the part rows of uploads settled past UPLOADS_PARTS_KEPT_FOR; returns how many."""
    return services.prune_settled_parts().parts


@shared_task(
    autoretry_for=(WebhookFailed,),
    retry_backoff=True,  # up to 1 s, 2 s, 4 s … (randomised by the jitter), capped below
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=30,  # some hours of attempts: a receiver that is down for a deploy gets it
)
def deliver_webhook(event: dict[str, Any]) -> int:
    """POST a signed event to UPLOADS_WEBHOOK_URL; returns the receiver's status."""
    conf = upload_settings()
    return webhooks.deliver(event, url=conf.webhook_url, secret=conf.webhook_secret)


# --- subscribers to `upload_completed` (sent after the completion commits) --------------------
@receiver(upload_completed, dispatch_uid="uploads.tasks.schedule_verification")
def schedule_verification(sender: type[Upload], upload: Upload, **kwargs: Any) -> None:
    """Queue the second look at the completed object."""
    verify_upload.delay(str(upload.pk))


@receiver(upload_completed, dispatch_uid="uploads.tasks.schedule_webhook")
def schedule_webhook(sender: type[Upload], upload: Upload, **kwargs: Any) -> None:
    """Queue the webhook delivery, when one is configured (Celery retries it with backoff)."""
    conf = upload_settings()
    if not conf.webhook_url:
        return
    if not conf.webhook_secret:
        logger.error("UPLOADS_WEBHOOK_URL is set without UPLOADS_WEBHOOK_SECRET: not sent")
        return
    deliver_webhook.delay(webhooks.completed_event(upload))
