"""The Partwise REST API over HTTP: one `requests.Session`, JSON in and out, retries.

This module knows URLs and JSON shapes only; the part loop lives in transfer.py. Every call
the client makes is safe to repeat (create carries a client_token; sign, report, complete and
abort are idempotent on the server), so network errors, 5xx and 429 are retried with
exponential backoff and jitter; other 4xx answers raise at once.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "partwise-client/0.1"
BEST_EFFORT_TIMEOUT = 5.0  # seconds a last call on the way out (Ctrl+C) may take


class PartwiseError(Exception):
    """An answer (or the lack of one) that ends the operation. `code` is the server's code."""

    def __init__(
        self,
        detail: str,
        *,
        code: str = "error",
        http_status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.http_status = http_status
        self.extra = extra or {}  # the answer's other fields, e.g. missing_parts


class AuthError(PartwiseError):
    """401/403: no token, a revoked token, or not allowed."""


class NotFound(PartwiseError):
    """404: the upload does not exist or is not yours."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits up to base * 2**n, at most cap.

    The default rides out an outage of about a minute (up to 2 min, 1 on average, of waiting
    over 9 retries): a restart of S3 or of the server must not end a long upload.
    """

    attempts: int = 10
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), self.cap)
        return random.uniform(0, min(self.cap, self.base * 2**attempt))  # noqa: S311 (jitter)


SEND_BLOCK = 1024 * 1024  # bytes of a request body handed to the socket at a time


class _LargeBlockAdapter(HTTPAdapter):
    """urllib3 reads a file-like request body 16 KiB at a time, one Python call and one
    send() each: 65,536 of them per GiB of parts. Reading 1 MiB at a time (urllib3's own
    `blocksize` option, which requests does not expose) cuts that to 1,024."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", SEND_BLOCK)
        super().init_poolmanager(*args, **kwargs)


def new_session(pool_size: int = 16) -> requests.Session:
    """A session whose connection pool fits `pool_size` threads (requests defaults to 10)."""
    session = requests.Session()
    adapter = _LargeBlockAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def error_from(response: requests.Response) -> PartwiseError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or f"HTTP {response.status_code} from {response.url}")
    code = str(body.get("code") or "http_error")
    extra = {k: v for k, v in body.items() if k not in {"code", "detail"}}
    cls = PartwiseError
    if response.status_code in (401, 403):
        cls = AuthError
    elif response.status_code == 404:
        cls = NotFound
    return cls(detail, code=code, http_status=response.status_code, extra=extra)


class PartwiseApi:
    """The calls of the REST API (README.md, "REST API"), plus token login."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        session: requests.Session | None = None,
        backoff: Backoff | None = None,
        timeout: float = 60.0,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.server = server.rstrip("/")
        self.session = session or new_session()
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.stop = stop or threading.Event()
        self.sleep = sleep
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Token {token}"

    # --- plumbing ------------------------------------------------------------------------
    def request(self, method: str, path: str, *, best_effort: bool = False, **kwargs: Any) -> Any:
        """One API call, retried on network errors, 5xx and 429; the decoded JSON answer.

        best_effort: one short attempt even after a stop (Ctrl+C), for a last word on the way out.
        """
        url = f"{self.server}/api/{path.lstrip('/')}"
        attempts = 1 if best_effort else self.backoff.attempts
        timeout = min(self.timeout, BEST_EFFORT_TIMEOUT) if best_effort else self.timeout
        attempt = 0
        while True:
            if self.stop.is_set() and not best_effort:
                raise KeyboardInterrupt
            try:
                response = self.session.request(
                    method, url, headers=self.headers, timeout=timeout, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                if attempt + 1 >= attempts:
                    raise PartwiseError(
                        f"Could not reach {self.server}: {error}", code="unreachable"
                    ) from error
                self.sleep(self.backoff.delay(attempt))
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and attempt + 1 < attempts:
                self.sleep(self.backoff.delay(attempt, response.headers.get("Retry-After")))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise error_from(response)
            if response.status_code == 204 or not response.content:
                return None
            return response.json()

    def request_object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """`request` for the calls that answer a JSON object (all but a 204)."""
        body = self.request(method, path, **kwargs)
        if not isinstance(body, dict):
            raise PartwiseError(
                f"{method} {path}: expected a JSON object, got {type(body).__name__}",
                code="bad_response",
            )
        return body

    # --- uploads ---------------------------------------------------------------------------
    def create_upload(self, **fields: Any) -> dict[str, Any]:
        return self.request_object("POST", "uploads/", json=fields)

    def list_uploads(self, *, status: str = "", fingerprint: str = "") -> list[dict[str, Any]]:
        """The caller's uploads, newest first (every page)."""
        params = {k: v for k, v in {"status": status, "fingerprint": fingerprint}.items() if v}
        found: list[dict[str, Any]] = []
        page = self.request_object("GET", "uploads/", params=params)
        while True:
            found.extend(page["results"])
            if not page.get("next"):
                return found
            # The cursor link is absolute; keep our own base and take its query only.
            query = page["next"].split("?", 1)[1]
            page = self.request_object("GET", f"uploads/?{query}")

    def get_upload(self, upload_id: str) -> dict[str, Any]:
        """The upload with its parts, reconciled by the server with S3."""
        return self.request_object("GET", f"uploads/{upload_id}/")

    def sign_parts(self, upload_id: str, parts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        body = self.request_object(
            "POST", f"uploads/{upload_id}/sign/", json={"parts": list(parts)}
        )
        signed: list[dict[str, Any]] = body["parts"]
        return signed

    def report_parts(
        self, upload_id: str, parts: Iterable[dict[str, Any]], *, best_effort: bool = False
    ) -> dict[str, Any]:
        return self.request_object(
            "POST",
            f"uploads/{upload_id}/parts/",
            json={"parts": list(parts)},
            best_effort=best_effort,
        )

    def complete_upload(self, upload_id: str) -> dict[str, Any]:
        """Complete the upload; repeating it answers the same completed upload.

        409 with status "completing" means another call is completing it right now (often our
        own earlier call whose answer was lost): the server asks to try again shortly.
        """
        attempt = 0
        while True:
            try:
                return self.request_object("POST", f"uploads/{upload_id}/complete/")
            except PartwiseError as error:
                completing = error.http_status == 409 and error.extra.get("status") == "completing"
                if not completing or attempt + 1 >= self.backoff.attempts:
                    raise
            self.sleep(self.backoff.delay(attempt))
            attempt += 1

    def abort_upload(self, upload_id: str) -> dict[str, Any]:
        return self.request_object("DELETE", f"uploads/{upload_id}/")

    # --- tokens ----------------------------------------------------------------------------
    def login(self, username: str, password: str, *, name: str = "partwise-cli") -> str:
        """A new named token for this user; the key is returned once."""
        body = {"username": username, "password": password, "name": name}
        return str(self.request_object("POST", "auth/token/", json=body)["token"])
