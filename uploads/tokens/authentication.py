"""`Authorization: Token <key>` for named tokens and for DRF's own authtoken keys alike."""

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from .models import ApiToken


class NamedTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication that also accepts Partwise's named tokens (`pw_…` keys).

    The request's `auth` is the ApiToken (or DRF's Token), so a view can tell which token
    made the call.
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        token = ApiToken.find(key)
        if token is None:
            return super().authenticate_credentials(key)
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        token.mark_used()
        return token.user, token
