"""The `upload_completed` signal.

`upload_completed` is sent once per upload, after the transaction that completed it has
committed, with `sender=Upload` and `upload=<the Upload>`. Apps connect to it to learn that a
file is ready; a receiver that raises is logged and never undoes the completion. The app's own
receivers are in tasks.py: they queue the verification and, when UPLOADS_WEBHOOK_URL is set,
the webhook. Services send it and never import the tasks.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

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
