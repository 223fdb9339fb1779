"""PUTting a part to a presigned URL exactly as a browser does: the URL and its headers only."""

from __future__ import annotations

from typing import Any

import requests

from uploads.parts import SignedPart


def put_to_url(
    signed: SignedPart | dict[str, Any],
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> requests.Response:
    """PUT `body` to a signed part (the API's JSON or a SignedPart) with the headers it names,
    or with `headers` instead."""
    if isinstance(signed, SignedPart):
        url, named = signed.url, signed.headers
    else:
        url, named = signed["url"], signed["headers"]
    sent = named if headers is None else headers
    return requests.put(url, data=body, headers=sent, timeout=timeout)


def put_signed(signed: SignedPart | dict[str, Any], body: bytes, **options: Any) -> str:
    """`put_to_url`, which S3 must accept; the ETag S3 answered (quoted, as clients see it)."""
    response = put_to_url(signed, body, **options)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]
