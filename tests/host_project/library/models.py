"""The host's own models: its user model, and a document that refers to a finished upload."""

from django.contrib.auth.models import AbstractUser
from django.db import models

from uploads.models import Upload


class Member(AbstractUser):
    """The host's AUTH_USER_MODEL: Partwise's uploads and tokens belong to it."""

    display_name = models.CharField(max_length=100, blank=True)


class Document(models.Model):
    """A host record made of a finished file: only a completed upload can be chosen."""

    title = models.CharField(max_length=200)
    upload = models.ForeignKey(
        Upload,
        on_delete=models.PROTECT,
        limit_choices_to={"status": Upload.Status.COMPLETED},
        related_name="documents",
    )

    def __str__(self) -> str:
        return self.title
