"""The base of every Partwise API view: how it authenticates, parses, renders, throttles and
answers errors is the view's own.

So a host project needs no REST_FRAMEWORK setting for Partwise, and the one it has for its own
API (other authentication, a browsable renderer, no throttles) changes nothing under Partwise's
routes: the error codes, the bounded JSON bodies, CSRF for sessions and the throttles hold
wherever the app is mounted. Throttle rates are UPLOADS_API_THROTTLE_RATES (uploads/conf.py).
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from ..conf import upload_settings
from ..tokens.authentication import NamedTokenAuthentication
from .authentication import CsrfSessionAuthentication
from .errors import exception_handler
from .parsers import BoundedJSONParser


class RatesFromUploadSettings:
    """A DRF rate throttle whose rate is its scope's UPLOADS_API_THROTTLE_RATES entry."""

    scope: str | None

    def get_rate(self) -> str | None:
        return upload_settings().api_throttle_rates.get(self.scope or "")


class AnonymousThrottle(RatesFromUploadSettings, AnonRateThrottle):
    """Per anonymous client address (`anon`); failed authentication counts here too."""


class SignedInThrottle(RatesFromUploadSettings, UserRateThrottle):
    """Per signed-in user (`user`)."""


# No docstring: drf-spectacular describes an operation with the first docstring in its view's
# classes up to APIView, so this one would describe every undocumented operation. It is the
# APIView of Partwise's API policy.
class PartwiseApiView(APIView):
    # Token first, so that a request without credentials answers 401, not 403.
    authentication_classes = [NamedTokenAuthentication, CsrfSessionAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [BoundedJSONParser]
    renderer_classes = [JSONRenderer]
    throttle_classes = [AnonymousThrottle, SignedInThrottle]
    schema = AutoSchema()

    def get_exception_handler(self) -> Any:
        return exception_handler
