"""The one exception handler of the API: every error is `{"code", "detail", ...}` JSON.

UploadErrors from the services keep their status and code (and extra fields such as
`missing_parts`); DRF's own errors keep their status and take their code from DRF's
`default_code`; validation errors add the per-field messages under `errors`.
"""

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from ..exceptions import RequestTooLarge, UploadError


def _first_code(codes: object) -> str:
    if isinstance(codes, str):
        return codes
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    if isinstance(codes, dict) and codes:
        return _first_code(next(iter(codes.values())))
    return "invalid"


def _first_message(detail: object) -> str:
    """The first message of a list of errors (DRF's `non_field_errors` is one)."""
    return str(detail[0] if isinstance(detail, list) and detail else detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    if isinstance(exc, UploadError):
        set_rollback()
        return Response(
            {"code": exc.code, "detail": exc.detail, **exc.extra}, status=exc.status_code
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a genuine bug: let Django log it and answer 500

    headers: dict[str, str] = {}
    # Set by APIView.handle_exception on 401s, and by Throttled.
    auth_header: str | None = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait: float | None = getattr(exc, "wait", None)
    if wait:
        headers["Retry-After"] = str(int(wait))
    set_rollback()
    body: dict[str, Any]
    if isinstance(exc, exceptions.ValidationError):
        body = {
            "code": "invalid",
            "detail": "The request is not valid.",
            "errors": exc.detail,
        }
        if isinstance(exc.detail, dict) and "non_field_errors" in exc.detail:
            body["detail"] = _first_message(exc.detail["non_field_errors"])
        elif isinstance(exc.detail, list) and exc.detail:
            body["detail"] = str(exc.detail[0])
            body.pop("errors")
    else:
        body = {"code": _first_code(exc.get_codes()), "detail": str(exc.detail)}
    return Response(body, status=exc.status_code, headers=headers)


# Paths whose clients read JSON, also when the server itself fails.
JSON_PATHS = ("/api/", "/s3/")


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500 (a bug, not bad input): JSON under the API paths, never a traceback.

    With DEBUG=False Django answers an unhandled exception with this view; API clients get the
    usual `{"code", "detail"}` shape, and nothing of the exception (Django logs it). Other
    paths keep Django's plain HTML page.
    """
    if request.path.startswith(JSON_PATHS):
        return JsonResponse(
            {"code": "server_error", "detail": "The server failed. Try again later."}, status=500
        )
    return defaults.server_error(request)
