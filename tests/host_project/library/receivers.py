"""The host reacts to a finished file through Partwise's `upload_completed` signal."""

from typing import Any

from django.dispatch import receiver

from uploads.models import Upload
from uploads.signals import upload_completed

from .models import Document


@receiver(upload_completed, dispatch_uid="library-document-for-upload")
def file_a_document(sender: type[Upload], upload: Upload, **kwargs: Any) -> None:
    Document.objects.get_or_create(upload=upload, defaults={"title": upload.filename})
