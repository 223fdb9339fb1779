"""The `upload_completed` signal, and its built-in receiver: the optional webhook.

`upload_completed` is sent once per upload, after the transaction that completed it has
committed, with `sender=Upload` and `upload=<the Upload>`. Apps connect to it to learn that a
file is ready; a receiver that raises is logged and never undoes the completion. When
UPLOADS_WEBHOOK_URL is set, the receiver below hands a signed JSON event to Celery.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal, receiver

from . import webhooks
from .conf import upload_settings
from .models import Upload

logger = logging.getLogger(__name__)

upload_completed = Signal()


def send_upload_completed(upload: Upload) -> None:
    """Send `upload_completed` to every receiver; one failing does not stop the others."""
    for handler, result in upload_completed.send_robust(sender=Upload, upload=upload):
        if isinstance(result, Exception):
            logger.error(
                "upload_completed receiver %r failed for %s", handler, upload.pk, exc_info=result
            )


@receiver(upload_completed, dispatch_uid="uploads.signals.schedule_webhook")
def schedule_webhook(sender: Any, upload: Upload, **kwargs: Any) -> None:
    """Queue the webhook delivery, when one is configured (Celery retries it with backoff)."""
    conf = upload_settings()
    if not conf.webhook_url:
        return
    if not conf.webhook_secret:
        logger.error("UPLOADS_WEBHOOK_URL is set without UPLOADS_WEBHOOK_SECRET: not sent")
        return
    from .tasks import deliver_webhook  # tasks import services, which import this module

    deliver_webhook.delay(webhooks.completed_event(upload))
