"""Session authentication whose CSRF failure carries a stable code; the request's user."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import authentication, exceptions
from rest_framework.request import Request

if TYPE_CHECKING:
    from ..services import User


def signed_in_user(request: Request) -> User:
    """The user the request authenticated as; 401 `not_authenticated` when anonymous.

    The API's views need a signed-in user (PartwiseApiView's IsAuthenticated); this holds
    even in a view that allows anonymous callers, so an anonymous request never reaches a
    service.
    """
    user = request.user
    if not user.is_authenticated:
        raise exceptions.NotAuthenticated
    return user


class CsrfSessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication (CSRF enforced on unsafe methods), with code `csrf_failed`."""

    def enforce_csrf(self, request: Request) -> None:
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as error:
            # str(): an ErrorDetail would keep its own code ("permission_denied").
            raise exceptions.PermissionDenied(
                detail=str(error.detail), code="csrf_failed"
            ) from error
