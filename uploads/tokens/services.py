"""Issuing and revoking named tokens: the only writers of ApiToken rows besides the admin.

The API's token login (uploads/api/tokens.py), `manage.py create_token` and `manage.py rundev`
all issue through `issue_token`, so the per-user limit holds for every way in.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction

from ..exceptions import TooManyTokens
from .models import MAX_TOKENS_PER_USER, ApiToken

if TYPE_CHECKING:
    from ..services import User


def issue_token(user: User, *, name: str) -> tuple[ApiToken, str]:
    """A new named token for `user` and its key (shown this once), within the per-user limit.

    Race-free: the count and the insert happen while the user's row is locked, so concurrent
    logins of one user are serialised (SELECT … FOR UPDATE on PostgreSQL; on SQLite the
    IMMEDIATE transactions of project/settings.py already serialise all writers).
    Raises TooManyTokens when the user holds MAX_TOKENS_PER_USER tokens already.
    """
    with transaction.atomic():
        locked = get_user_model().objects.select_for_update().filter(pk=user.pk)
        list(locked.values_list("pk", flat=True))
        if ApiToken.objects.filter(user=user).count() >= MAX_TOKENS_PER_USER:
            raise TooManyTokens(
                f"At most {MAX_TOKENS_PER_USER} tokens per user: revoke unused ones first."
            )
        return ApiToken.issue(user, name=name)


def revoke_token(user: User, token_id: uuid.UUID | str) -> bool:
    """Delete one of `user`'s tokens (it stops working at once). False if `user` has no such token.

    Another user's token id is treated exactly like an unknown one.
    """
    try:
        token_id = uuid.UUID(str(token_id))
    except ValueError:
        return False
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    return bool(deleted)
