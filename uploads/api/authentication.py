"""Session authentication whose CSRF failure carries a stable code."""

from django.http import HttpRequest
from rest_framework import authentication, exceptions


class CsrfSessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication (CSRF enforced on unsafe methods), with code `csrf_failed`."""

    def enforce_csrf(self, request: HttpRequest) -> None:
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as error:
            # str(): an ErrorDetail would keep its own code ("permission_denied").
            raise exceptions.PermissionDenied(
                detail=str(error.detail), code="csrf_failed"
            ) from error
