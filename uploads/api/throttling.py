"""Failed authentication counts against the anonymous rate.

DRF checks a view's throttles in `APIView.initial` only after authentication and permissions,
so a request with no credentials or a bad token is refused with a 401 before any throttle has
counted it: guessing tokens, or hammering a protected route anonymously, was never slowed
down. The exception handler (uploads/api/errors.py) calls this on those 401s: the view's
anonymous throttles (AnonRateThrottle and its subclasses, the `anon` rate of
UPLOADS_API_THROTTLE_RATES) count the request, and once over the rate the answer is 429
`throttled` with Retry-After.
"""

from typing import Any

from rest_framework import exceptions
from rest_framework.throttling import AnonRateThrottle


def throttle_failed_authentication(
    exc: exceptions.APIException, context: dict[str, Any]
) -> exceptions.APIException:
    """`exc` (a 401), or Throttled once the address is over the view's anonymous rate."""
    view, request = context.get("view"), context.get("request")
    if view is None or request is None:
        return exc
    for throttle in view.get_throttles():
        if isinstance(throttle, AnonRateThrottle) and not throttle.allow_request(request, view):
            return exceptions.Throttled(wait=throttle.wait())
    return exc
