"""ApiToken: one named credential for an app or a script. The key itself is never stored."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from ..services import User

KEY_PREFIX = "pw_"  # marks a key as Partwise's (to people and to secret scanners)
# What a key can look like: `pw_` + 40 URL-safe characters, or the 40 hex digits of a key that
# DRF's authtoken issued before tokens were migrated (migrations/0002). Anything else is refused
# without a query.
KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,100}")
SHOWN_PREFIX_LENGTH = 10  # what lists show, enough to recognise a key without revealing it
NAME_MAX_LENGTH = 64
MAX_TOKENS_PER_USER = 100
# Recording every use would add a write to every request; a coarse time is enough for people.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def digest_of(key: str) -> str:
    # Keys are 240 random bits, so a plain SHA-256 is enough (no salt or slow hash needed):
    # a leaked table then holds nothing that authenticates.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    prefix = models.CharField(max_length=SHOWN_PREFIX_LENGTH, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user: User, *, name: str) -> tuple[ApiToken, str]:
        """A new token for `user` and its key, which is shown this once and never again."""
        key = KEY_PREFIX + secrets.token_urlsafe(30)
        token = cls.objects.create(
            user=user, name=name, prefix=key[:SHOWN_PREFIX_LENGTH], digest=digest_of(key)
        )
        return token, key

    @classmethod
    def find(cls, key: str) -> ApiToken | None:
        """The token with this key (and its user, in the same query), or None."""
        if not KEY_SHAPE.fullmatch(key):
            return None
        return cls.objects.select_related("user").filter(digest=digest_of(key)).first()

    def mark_used(self) -> None:
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > LAST_USED_RESOLUTION:
            self.last_used_at = now
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
