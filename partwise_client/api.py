"""The Partwise REST API over HTTP: one `requests.Session`, JSON in and out, retries.

This module knows URLs and JSON shapes only; the part loop lives in transfer.py. Every call
the client makes is safe to repeat (create carries a client_token; sign, report, complete and
abort are idempotent on the server), so what retry.is_retryable names (network errors, 5xx,
408, 429) is retried on retry.Backoff's schedule; other 4xx answers raise at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from .errors import AuthError, NotFound, PartwiseError
from .retry import NETWORK_ERROR, Backoff, is_retryable

__all__ = ["AuthError", "Backoff", "NotFound", "PartwiseApi", "PartwiseError", "new_session"]

USER_AGENT = "partwise-client/0.2"
BEST_EFFORT_TIMEOUT = 5.0  # seconds a last call on the way out (Ctrl+C) may take
CONNECT_TIMEOUT = 5.0  # seconds to open a connection: a server that is down says so at once


def _reason(error: BaseException) -> str:
    """The innermost human reason for a failed connection ("connection refused")."""
    seen: set[int] = set()
    todo: list[object] = [error]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.strerror:
            return item.strerror.lower()
        # urllib3 keeps the cause in .reason and in args, requests in args.
        todo.extend([getattr(item, "reason", None), item.__cause__, item.__context__, *item.args])
    if isinstance(error, requests.Timeout):
        return "timed out"
    return type(error).__name__


def unreachable(server: str, error: BaseException) -> PartwiseError:
    """A one-line "cannot reach" error: the innermost OS reason, not urllib3's retry story."""
    return PartwiseError(f"cannot reach {server} ({_reason(error)})", code="unreachable")


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
    size_pool(session, pool_size)
    session.headers["User-Agent"] = USER_AGENT
    return session


def size_pool(session: requests.Session, pool_size: int) -> None:
    """Mount adapters keeping `pool_size` connections per host: one per part in flight, so no
    connection is discarded after its PUT and a new TLS handshake paid for the next."""
    adapter = _LargeBlockAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)


def error_from(response: requests.Response) -> PartwiseError:
    """The PartwiseError (AuthError, NotFound) a refusing answer of the server stands for."""
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


def _with_session(body: dict[str, Any], session: str | None) -> dict[str, Any]:
    return {**body, "session": session} if session else body


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
        connect_timeout: float = CONNECT_TIMEOUT,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.server = server.rstrip("/")
        self.session = session or new_session()
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.stop = stop or threading.Event()
        self.sleep = sleep
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Token {token}"

    # --- plumbing ------------------------------------------------------------------------
    def timeouts(self, read: float | None = None) -> tuple[float, float]:
        """(connect, read) seconds for one request: connecting fails fast, reading may take long."""
        read = self.timeout if read is None else read
        return min(self.connect_timeout, read), read

    def request(self, method: str, path: str, *, best_effort: bool = False, **kwargs: Any) -> Any:
        """One API call, retried while retry.is_retryable says so; the decoded JSON answer.

        best_effort: one short attempt even after a stop (Ctrl+C), for a last word on the way out.
        `headers` are sent besides the client's own; with `allow_redirects=False`, a redirect
        answers its `Location` (the download call's presigned URL).
        """
        url = f"{self.server}/api/{path.lstrip('/')}"
        headers = {**self.headers, **kwargs.pop("headers", {})}
        attempts = 1 if best_effort else self.backoff.attempts
        timeout = self.timeouts(min(self.timeout, BEST_EFFORT_TIMEOUT) if best_effort else None)
        attempt = 0
        while True:
            if self.stop.is_set() and not best_effort:
                raise KeyboardInterrupt
            try:
                response = self.session.request(
                    method, url, headers=headers, timeout=timeout, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                if not is_retryable(NETWORK_ERROR) or attempt + 1 >= attempts:
                    raise unreachable(self.server, error) from error
                self.sleep(self.backoff.delay(attempt))
                attempt += 1
                continue
            if is_retryable(response.status_code) and attempt + 1 < attempts:
                self.sleep(self.backoff.delay(attempt, response.headers.get("Retry-After")))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise error_from(response)
            if response.is_redirect:
                return response.headers["Location"]
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
        """Create an upload; with `resume=True` (and a fingerprint) the server may answer the
        user's unfinished upload of the same file instead ("resumed": true), and with
        `sign={"parts": [...]}` a first batch of signed URLs ("signed", "leased")."""
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

    def get_upload(self, upload_id: str, *, session: str | None = None) -> dict[str, Any]:
        """The upload with its parts, reconciled by the server with S3 (and `other_sessions`:
        how many other live sessions work on it, when `session` names ours)."""
        params = {"session": session} if session else None
        return self.request_object("GET", f"uploads/{upload_id}/", params=params)

    def sign(
        self, upload_id: str, parts: Iterable[dict[str, Any]], *, session: str | None = None
    ) -> dict[str, Any]:
        """The whole sign answer: "parts" (signed), "leased" (held by another live session,
        not signed) and "other_sessions"; an older server answers "parts" only."""
        body = _with_session({"parts": list(parts)}, session)
        return self.request_object("POST", f"uploads/{upload_id}/sign/", json=body)

    def sign_parts(self, upload_id: str, parts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Presigned URLs for `parts` (no session: nothing is leased)."""
        signed: list[dict[str, Any]] = self.sign(upload_id, parts)["parts"]
        return signed

    def report_parts(
        self,
        upload_id: str,
        parts: Iterable[dict[str, Any]],
        *,
        best_effort: bool = False,
        session: str | None = None,
    ) -> dict[str, Any]:
        """Record uploaded parts; the answer is the upload's progress."""
        return self.request_object(
            "POST",
            f"uploads/{upload_id}/parts/",
            json=_with_session({"parts": list(parts)}, session),
            best_effort=best_effort,
        )

    def complete_upload(self, upload_id: str) -> dict[str, Any]:
        """Complete the upload; repeating it answers the same completed upload.

        409 with status "completing" means another call is completing it right now (often our
        own earlier call whose answer was lost, or another session's): the server asks to try
        again shortly.
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
        """Abort an unfinished upload: S3 drops its parts."""
        return self.request_object("DELETE", f"uploads/{upload_id}/")

    def delete_file(self, upload_id: str, etag: str) -> dict[str, Any]:
        """Delete a completed upload's file: `If-Match` names its etag (as the upload's JSON
        shows it, unquoted), so only that file is deleted; the answer is the `deleted` upload."""
        quoted = etag if etag.startswith('"') else f'"{etag}"'
        return self.request_object("DELETE", f"uploads/{upload_id}/", headers={"If-Match": quoted})

    def download_location(self, upload_id: str, *, inline: bool = False) -> str:
        """The short-lived presigned URL a completed upload's file is fetched from (the 302 of
        the download call, not followed: the URL must be fetched without our token)."""
        path = f"uploads/{upload_id}/download/" + ("?inline=1" if inline else "")
        location = self.request("GET", path, allow_redirects=False)
        if not isinstance(location, str):
            raise PartwiseError(f"GET {path}: expected a redirect", code="bad_response")
        return location

    # --- tokens ----------------------------------------------------------------------------
    def login(self, username: str, password: str, *, name: str = "partwise-cli") -> str:
        """A new named token for this user; the key is returned once."""
        body = {"username": username, "password": password, "name": name}
        return str(self.request_object("POST", "auth/token/", json=body)["token"])
