"""Chunked request bodies (`Transfer-Encoding: chunked`, no Content-Length), read or refused.

Django's WSGIRequest reads at most CONTENT_LENGTH bytes of `wsgi.input` (none when it is
absent), and DRF treats a request without a length as one without a body: a valid chunked
JSON body answered "field required", and one over the limit a 400 instead of a 413.

A WSGI server that decodes chunked bodies says so with `wsgi.input_terminated` (gunicorn does:
its `wsgi.input` ends where the body ends). Then the body is read here, at most
DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413 `request_too_large` beyond), and handed on as if it
had come with its length. A server that does not (runserver's) leaves the chunks undecoded on
the socket: the request is refused with 411 `length_required`.
"""

import io
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .api.errors import error_response, json_paths
from .exceptions import LengthRequired, RequestTooLarge, UploadError

READ_SIZE = 64 * 1024


def _is_chunked(request: HttpRequest) -> bool:
    encoding = request.META.get("HTTP_TRANSFER_ENCODING", "")
    return "chunked" in encoding.lower() and not request.META.get("CONTENT_LENGTH")


def _read_terminated(stream: io.RawIOBase, limit: int | None) -> bytes | None:
    """The whole body, or None once it is over `limit` bytes."""
    body = bytearray()
    while chunk := stream.read(READ_SIZE):
        body += chunk
        if limit is not None and len(body) > limit:
            return None
    return bytes(body)


class ChunkedBodyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _is_chunked(request):
            refused = self._read_body(request)
            if refused is not None:
                return self._refusal(request, refused)
        return self.get_response(request)

    def _read_body(self, request: HttpRequest) -> UploadError | None:
        if not request.META.get("wsgi.input_terminated"):
            return LengthRequired()
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = _read_terminated(request.META["wsgi.input"], limit)
        if body is None:
            return RequestTooLarge(f"The request body exceeds {limit} bytes.")
        # As if it had come with its length: Django's request.body, its form parsing and DRF's
        # parsers (which skip a request whose CONTENT_LENGTH is 0) all read it.
        request.META["CONTENT_LENGTH"] = str(len(body))
        request._stream = io.BytesIO(body)
        return None

    @staticmethod
    def _refusal(request: HttpRequest, error: UploadError) -> HttpResponse:
        response: HttpResponse
        if request.path.startswith(json_paths()):
            response = error_response(error)
        else:
            response = HttpResponse(
                f"{error.detail}\n", status=error.status_code, content_type="text/plain"
            )
        # No `Connection: close` (a WSGI application may not send hop-by-hop headers): the
        # servers close a connection whose request body was not read to its end.
        return response
