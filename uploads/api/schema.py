"""OpenAPI extras: the session scheme for our CSRF-coded session classes, and the error codes.

drf-spectacular only knows DRF's own authentication classes; `CsrfSessionScheme` describes ours
(a cookie session). `document_error_codes` (a postprocessing hook named in
SPECTACULAR_SETTINGS) lists every `code` an error answer can carry as an enum on the shared
`Error` component, with the status each code comes with, so client generators get a closed set
to switch on. The list is `uploads.exceptions.error_codes()`: a new exception class is
documented by being defined.
"""

from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.generators import SchemaGenerator

from ..exceptions import error_codes

__all__ = ["CsrfSessionScheme", "OriginSessionScheme", "document_error_codes", "error_codes"]


class CsrfSessionScheme(SessionScheme):
    target_class = "rest_framework.authentication.SessionAuthentication"
    match_subclasses = True  # CsrfSessionAuthentication


class OriginSessionScheme(SessionScheme):
    """The Uppy layer's session: the same cookie, CSRF proven by the Origin header."""

    target_class = "uploads.companion.OriginSessionAuthentication"
    name = "sameOriginCookieAuth"
    priority = 1  # before CsrfSessionScheme, which matches it as a subclass


def document_error_codes(
    result: dict[str, Any], generator: SchemaGenerator, **kwargs: Any
) -> dict[str, Any]:
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
