"""The one exception handler of the API: every error is `{"code", "detail", ...}` JSON.

UploadErrors from the services keep their status and code (and extra fields such as
`missing_parts`); DRF's own errors keep their status and take their code from DRF's
`default_code`; validation errors add the per-field messages under `errors`.
"""

from typing import Any

from django.core.exceptions import DisallowedHost, PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.views import csrf, defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from ..exceptions import BadHost, BadRequest, RequestTooLarge, UploadError
from .throttling import throttle_failed_authentication


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
        return Response(_body(exc), status=exc.status_code, headers=_headers(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a genuine bug: let Django log it and answer 500
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # A 401 comes before DRF's throttles run: count it against the anonymous rate here.
        exc = throttle_failed_authentication(exc, context)

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


def _body(exc: UploadError) -> dict[str, Any]:
    return {"code": exc.code, "detail": exc.detail, **exc.extra}


def _headers(exc: UploadError) -> dict[str, str]:
    retry_after: int | None = getattr(exc, "retry_after", None)  # LoginLocked
    return {"Retry-After": str(retry_after)} if retry_after else {}


def error_response(exc: UploadError) -> JsonResponse:
    """An UploadError as the API's JSON answer, for plain Django views (no DRF around them)."""
    return JsonResponse(_body(exc), status=exc.status_code, headers=_headers(exc))


def json_paths() -> tuple[str, ...]:
    """Paths whose clients read JSON, also when the server itself fails: where the API and the
    Uppy routes are mounted (`/api/` and `/s3/` on this site, under a host project's prefix
    elsewhere), read from the URLconf so that no prefix is hard-coded."""
    try:
        return (
            reverse("uploads:list").removesuffix("uploads/"),
            reverse("companion:create").removesuffix("multipart"),
        )
    except NoReverseMatch:  # a URLconf without the app's routes
        return ("/api/", "/s3/")


def _framework_error(code: str, detail: str, status: int) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's handler400 (a SuspiciousOperation, e.g. a Host not in ALLOWED_HOSTS)."""
    if request.path.startswith(json_paths()):
        error: UploadError
        if isinstance(exception, DisallowedHost):
            error = BadHost()
        elif isinstance(exception, RequestDataTooBig):
            error = RequestTooLarge()
        else:
            error = BadRequest()
        return error_response(error)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's handler403, for a PermissionDenied outside DRF's views."""
    if request.path.startswith(json_paths()):
        return _framework_error(
            "permission_denied", str(exceptions.PermissionDenied.default_detail), 403
        )
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's handler404: an /api/ or /s3/ path that no route matches."""
    if request.path.startswith(json_paths()):
        return _framework_error("not_found", str(exceptions.NotFound.default_detail), 404)
    return defaults.page_not_found(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: CsrfViewMiddleware refused a view that is not DRF's (DRF's own
    session check answers `csrf_failed` through exception_handler)."""
    if request.path.startswith(json_paths()):
        return _framework_error("csrf_failed", f"CSRF Failed: {reason}".rstrip(": "), 403)
    return csrf.csrf_failure(request, reason)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500 (a bug, not bad input): JSON under the API paths, never a traceback.

    With DEBUG=False Django answers an unhandled exception with this view; API clients get the
    usual `{"code", "detail"}` shape, and nothing of the exception (Django logs it). Other
    paths keep Django's plain HTML page.
    """
    if request.path.startswith(json_paths()):
        return JsonResponse(
            {"code": "server_error", "detail": "The server failed. Try again later."}, status=500
        )
    return defaults.server_error(request)
