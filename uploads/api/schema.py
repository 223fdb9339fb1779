"""OpenAPI extras: the session scheme for our CSRF-coded session classes, and the error codes.

drf-spectacular only knows DRF's own authentication classes; `CsrfSessionScheme` describes ours
(a cookie session). `document_error_codes` (a postprocessing hook named in
SPECTACULAR_SETTINGS) lists every `code` an error answer can carry as an enum on the shared
`Error` component, with the status each code comes with, so client generators get a closed set
to switch on. The list is computed from the exception classes, so a new one is documented by
being defined.
"""

from typing import Any

from drf_spectacular.authentication import SessionScheme
from rest_framework import exceptions

from ..exceptions import UploadError

# Codes the exception handler produces that no exception class declares as its default.
EXTRA_CODES = {
    "invalid": 400,  # every DRF ValidationError, whatever its field codes
    "csrf_failed": 403,  # uploads.api.authentication.CsrfSessionAuthentication
    "request_too_large": 413,  # Django's RequestDataTooBig, mapped in errors.py
    "server_error": 500,  # errors.server_error, Django's handler500 (a bug, never bad input)
}


class CsrfSessionScheme(SessionScheme):
    target_class = "rest_framework.authentication.SessionAuthentication"
    match_subclasses = True  # CsrfSessionAuthentication


class OriginSessionScheme(SessionScheme):
    """The Uppy layer's session: the same cookie, CSRF proven by the Origin header."""

    target_class = "uploads.companion.OriginSessionAuthentication"
    name = "sameOriginCookieAuth"
    priority = 1  # before CsrfSessionScheme, which matches it as a subclass


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def error_codes() -> dict[str, int]:
    """Every error code an answer can carry, with its HTTP status."""
    codes: dict[str, int] = dict(EXTRA_CODES)
    for cls in [exceptions.APIException, *_subclasses(exceptions.APIException)]:
        if cls is not exceptions.ValidationError:
            codes.setdefault(str(cls.default_code), int(cls.status_code))
    for cls in [UploadError, *_subclasses(UploadError)]:
        codes.setdefault(cls.code, cls.status_code)
    return dict(sorted(codes.items()))


def document_error_codes(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    error = result.get("components", {}).get("schemas", {}).get("Error")
    if error is None:
        return result
    codes = error_codes()
    code = error.setdefault("properties", {}).setdefault("code", {"type": "string"})
    code["enum"] = list(codes)
    code["description"] = "Stable machine-readable code; clients switch on it.\n\n" + "\n".join(
        f"* `{name}` ({status})" for name, status in codes.items()
    )
    error["description"] = (
        "Every error answer. Some codes add fields: `errors` (per-field messages, code "
        "`invalid`), `missing_parts` (`part_missing`), `parts`, `status`, `upload`, `s3_code`."
    )
    return result
