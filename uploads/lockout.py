"""Login lockout (django-axes): the client's address and the answer to a locked-out login.

Axes counts failed logins per username and address (AXES_LOCKOUT_PARAMETERS) on every login
that goes through `django.contrib.auth.authenticate` with the request: the upload page's
`/login/`, the admin's `/admin/login/` and the token login `POST /api/auth/token/`. After
AXES_FAILURE_LIMIT failures that pair is locked for AXES_COOLOFF_TIME, and AxesMiddleware
answers with `lockout_response` (AXES_LOCKOUT_CALLABLE): 429 with Retry-After, JSON
`login_locked` under the API's paths, a plain sentence elsewhere.
"""

from typing import Any

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import BaseThrottle

from .api.errors import error_response, json_paths
from .exceptions import LoginLocked


def client_address(request: HttpRequest) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the address DRF's throttles key on (REST_FRAMEWORK's
    NUM_PROXIES, from DJANGO_NUM_PROXIES), so a forged X-Forwarded-For escapes neither."""
    address: str | None = BaseThrottle().get_ident(request)  # type: ignore[arg-type]
    return address


def retry_after(request: HttpRequest | None = None) -> int | None:
    """The cool-off in seconds: a locked-out attempt starts it again, so it is exact."""
    cool_off = get_cool_off(request)
    return int(cool_off.total_seconds()) if cool_off else None


def locked_out(request: HttpRequest) -> LoginLocked:
    return LoginLocked(retry_after=retry_after(request))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After (JSON `login_locked` under /api/ and /s3/)."""
    error = locked_out(request)
    if request.path.startswith(json_paths()):
        return error_response(error)
    response = HttpResponse(
        f"{error.detail}\n", status=error.status_code, content_type="text/plain; charset=utf-8"
    )
    if error.retry_after:
        response["Retry-After"] = str(error.retry_after)
    return response
