"""`Authorization: Token <key>`: Partwise's named tokens, the only API tokens there are."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from .models import ApiToken

if TYPE_CHECKING:
    from ..services import User


class NamedTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication header parsing (keyword `Token`) over named tokens.

    Keys are looked up by their digest (ApiToken.find); DRF's own authtoken model is never
    used. The request's `auth` is the ApiToken, so a view can tell which token made the call.
    """

    def authenticate_credentials(self, key: str) -> tuple[User, ApiToken]:
        token = ApiToken.find(key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.mark_used()
        return token.user, token
