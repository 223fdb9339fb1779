"""A JSON parser that refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE with a JSON 413.

DRF reads the request stream itself, bypassing Django's own size check on `request.body`, so
the limit is enforced here, also for chunked bodies without a Content-Length.
"""

import io
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import exceptions, parsers

from ..exceptions import RequestTooLarge


class BoundedJSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:  # the decoded JSON: any JSON value (DRF's stubs say a dict)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and str(declared).isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"The request body exceeds {limit} bytes.")
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(f"The request body exceeds {limit} bytes.")
        try:
            return super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            # json.loads gives up on deeply nested input (`[[[[…`) with a RecursionError, which
            # DRF does not catch (it expects ValueError): without this it is a 500.
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
