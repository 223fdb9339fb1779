"""The part loop: find or start the upload, send the missing parts in parallel, complete.

All state lives on the server, so stopping at any moment (Ctrl+C, a crash, SIGKILL) loses at
most the parts in flight, and `resume` from any machine sends only what S3 does not have.
Memory is bounded by concurrency x part size: each worker reads, hashes and sends one part.
"""

from __future__ import annotations

import base64
import hashlib
import io
import mimetypes
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .api import Backoff, PartwiseApi, PartwiseError
from .fingerprint import fingerprint

ProgressCallback = Callable[[int, int], None]  # (bytes_done, bytes_total), like oss2's
RESUMABLE = "uploading"


class NothingToResume(PartwiseError):
    """No unfinished upload has this file's fingerprint."""


class FileMismatch(PartwiseError):
    """An unfinished upload has this fingerprint, but its uploaded bytes are not this file's."""


class PartRefused(PartwiseError):
    """S3 refused a part for a reason retrying cannot fix (wrong length, checksum, signature)."""


@dataclass
class Transfer:
    """What one run did: the final upload and how many parts it sent itself."""

    upload: dict[str, Any]
    resumed: bool
    parts_sent: list[int] = field(default_factory=list)
    parts_skipped: int = 0


def part_checksum(data: bytes) -> str:
    """A part's SHA-256 as S3's x-amz-checksum-sha256 (base64 of the raw digest)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def read_part(path: Path, upload: dict[str, Any], number: int) -> bytes:
    start = (number - 1) * upload["part_size"]
    length = min(upload["part_size"], upload["size"] - start)
    with path.open("rb") as file:
        file.seek(start)
        data = file.read(length)
    if len(data) != length:
        raise FileMismatch(f"{path} is shorter than the upload says.", code="file_changed")
    return data


class _Progress:
    """Thread-safe byte counter feeding the caller's callback; a failed attempt is taken back."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self.callback = callback
        self.lock = threading.Lock()

    def add(self, amount: int) -> None:
        with self.lock:
            self.done += amount
            if self.callback is not None:
                self.callback(self.done, self.total)


class _RateLimit:
    """At most `rate` bytes per second over all parts (`--limit-rate`); None means no limit."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.sent = 0

    def take(self, amount: int) -> None:
        if not self.rate:
            return
        with self.lock:
            self.sent += amount
            due = self.start + self.sent / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class _PartBody(io.BytesIO):
    """A part's bytes as a request body that reports progress and stops on request.

    requests sends a file-like body in blocks with the Content-Length it measures, which is
    what the presigned URL signed.
    """

    def __init__(
        self, data: bytes, progress: _Progress, limit: _RateLimit, stop: threading.Event
    ) -> None:
        super().__init__(data)
        self.progress, self.limit, self.stop = progress, limit, stop
        self.counted = 0

    def read(self, size: int | None = -1) -> bytes:
        if self.stop.is_set():
            raise KeyboardInterrupt
        chunk = super().read(size)
        if chunk:
            self.limit.take(len(chunk))
            self.counted += len(chunk)
            self.progress.add(len(chunk))
        return chunk

    def uncount(self) -> None:
        self.progress.add(-self.counted)
        self.counted = 0


def _expired(response: requests.Response) -> bool:
    """S3's answer to a presigned URL used too late: sign again and retry."""
    return response.status_code == 403 and "expired" in response.text.lower()


class Uploader:
    """Uploads one file through a PartwiseApi; see `upload_file` for the options."""

    def __init__(
        self,
        api: PartwiseApi,
        *,
        concurrency: int = 4,
        part_size: int | None = None,
        progress: ProgressCallback | None = None,
        limit_rate: float | None = None,
        backoff: Backoff | None = None,
        proof_parts: int = 1,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.api = api
        self.concurrency = max(1, concurrency)
        self.part_size = part_size
        self.progress_callback = progress
        self.limit = _RateLimit(limit_rate)
        self.backoff = backoff or api.backoff
        self.proof_parts = proof_parts
        self.on_event = on_event or (lambda message: None)
        self.stop = api.stop

    # --- finding an upload to resume -------------------------------------------------------
    def find_resumable(self, path: Path) -> dict[str, Any] | None:
        """The unfinished upload of this file, proven by its bytes; None when there is none.

        Raises FileMismatch when uploads with this fingerprint exist but none holds this
        file's bytes (a different file with the same name, size, date and edges).
        """
        size = path.stat().st_size
        candidates = [
            upload
            for upload in self.api.list_uploads(status=RESUMABLE, fingerprint=fingerprint(path))
            if upload["size"] == size
            and upload["filename"] == path.name
            and upload["part_size"]
            and upload["checksum_algorithm"] == "SHA256"
        ]
        refused = []
        for candidate in candidates:
            upload = self.api.get_upload(candidate["id"])
            if self.holds_same_bytes(path, upload):
                return upload
            refused.append(candidate["id"])
        if refused:
            raise FileMismatch(
                f"{path} is not the file of the unfinished upload {', '.join(refused)}: "
                "an uploaded part's SHA-256 differs.",
                code="file_mismatch",
            )
        return None

    def find_finished(self, path: Path) -> dict[str, Any] | None:
        """The upload of this file whose completion started (completing or completed), proven
        by its bytes; None when there is none."""
        size = path.stat().st_size
        for candidate in self.api.list_uploads(fingerprint=fingerprint(path)):
            if (
                candidate["status"] in ("completing", "completed")
                and candidate["size"] == size
                and candidate["filename"] == path.name
                and candidate["part_size"]
            ):
                upload = self.api.get_upload(candidate["id"])
                if self.holds_same_bytes(path, upload):
                    return upload
        return None

    def holds_same_bytes(self, path: Path, upload: dict[str, Any]) -> bool:
        """Hash uploaded parts of the local file and compare with the server's checksums."""
        uploaded = [part for part in upload["parts"] if part["etag"] and part["checksum"]]
        for part in random.sample(uploaded, min(self.proof_parts, len(uploaded))):
            try:
                data = read_part(path, upload, part["number"])
            except FileMismatch:
                return False
            if part_checksum(data) != part["checksum"]:
                return False
        return True

    # --- the run ---------------------------------------------------------------------------
    def upload(self, path: str | os.PathLike[str], *, resume: str = "auto") -> Transfer:
        """Upload `path`. resume: "auto" (resume when found), "never", or "required"."""
        path = Path(path)
        size = path.stat().st_size
        upload = None
        if resume != "never":
            try:
                upload = self.find_resumable(path)
            except FileMismatch as mismatch:
                if resume == "required":
                    raise
                # Another file looks like this one: leave its upload alone, start afresh.
                self.on_event(f"{mismatch.detail} Starting a new upload.")
        if upload is None and resume == "required":
            finished = self.find_finished(path)
            if finished is None:
                raise NothingToResume(
                    f"No unfinished upload of {path} was found.", code="nothing_to_resume"
                )
            # A run stopped while completing (killed, or its answer lost): finish or report it.
            self.on_event(f"Upload {finished['id']} of {path.name} is {finished['status']}.")
            return Transfer(
                upload=self.api.complete_upload(finished["id"]),
                resumed=True,
                parts_skipped=finished["part_count"],
            )
        resumed = upload is not None
        if upload is None:
            fields: dict[str, Any] = {
                "filename": path.name,
                "size": size,
                "content_type": mimetypes.guess_type(path.name)[0] or "",
                "checksum_algorithm": "SHA256",
                "fingerprint": fingerprint(path),
                "client_token": uuid.uuid4().hex,
            }
            if self.part_size:
                fields["part_size"] = self.part_size
            upload = self.api.create_upload(**fields)
        done = {part["number"] for part in upload["parts"] if part["etag"]}
        todo = [n for n in range(1, upload["part_count"] + 1) if n not in done]
        already = sum(part["size"] or 0 for part in upload["parts"] if part["etag"])
        if resumed:
            self.on_event(
                f"Resuming upload {upload['id']}: {len(done)} of {upload['part_count']} parts "
                f"already uploaded, sending {len(todo)}."
            )
        else:
            self.on_event(f"Started upload {upload['id']} ({upload['part_count']} parts).")
        progress = _Progress(size, self.progress_callback)
        progress.add(already)
        transfer = Transfer(upload=upload, resumed=resumed, parts_skipped=len(done))
        self._send_parts(path, upload, todo, progress, transfer)
        transfer.upload = self.api.complete_upload(upload["id"])
        return transfer

    def _send_parts(
        self,
        path: Path,
        upload: dict[str, Any],
        numbers: list[int],
        progress: _Progress,
        transfer: Transfer,
    ) -> None:
        if not numbers:
            return
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="partwise-part")
        futures: list[Future[int]] = []
        try:
            futures = [pool.submit(self._send_part, path, upload, n, progress) for n in numbers]
            pending: set[Future[int]] = set(futures)
            while pending:
                # A short timeout keeps the main thread responsive to Ctrl+C.
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                for future in finished:
                    transfer.parts_sent.append(future.result())  # re-raises a part's error
        except BaseException:
            self.stop.set()  # workers stop at their next block; nothing half-done is recorded
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _send_part(
        self, path: Path, upload: dict[str, Any], number: int, progress: _Progress
    ) -> int:
        if self.stop.is_set():
            raise KeyboardInterrupt
        data = read_part(path, upload, number)
        checksum = part_checksum(data)
        attempt = 0
        while True:
            (signed,) = self.api.sign_parts(
                upload["id"], [{"number": number, "checksum": checksum}]
            )
            body = _PartBody(data, progress, self.limit, self.stop)
            try:
                response = self.api.session.request(
                    signed["method"],
                    signed["url"],
                    # An empty stream would go out chunked, without the signed Content-Length 0.
                    data=body if data else b"",
                    headers=signed["headers"],
                    timeout=self.api.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                body.uncount()
                if attempt + 1 >= self.backoff.attempts:
                    raise PartwiseError(
                        f"Part {number} could not be sent: {error}", code="unreachable"
                    ) from error
            else:
                if response.ok:
                    etag = response.headers.get("ETag", "")
                    self.api.report_parts(
                        upload["id"], [{"number": number, "etag": etag, "checksum": checksum}]
                    )
                    return number
                body.uncount()
                retryable = response.status_code >= 500 or response.status_code == 429
                if not (retryable or _expired(response)) or attempt + 1 >= self.backoff.attempts:
                    raise PartRefused(
                        f"S3 refused part {number} with HTTP {response.status_code}: "
                        f"{response.text[:300]}",
                        code="part_refused",
                        http_status=response.status_code,
                    )
            time.sleep(self.backoff.delay(attempt))
            attempt += 1


def upload_file(
    path: str | os.PathLike[str],
    *,
    server: str,
    token: str,
    concurrency: int = 4,
    part_size: int | None = None,
    progress: ProgressCallback | None = None,
    resume: str = "auto",
    limit_rate: float | None = None,
) -> dict[str, Any]:
    """Upload a file to Partwise and return the completed upload (the API's JSON object).

    `progress(bytes_done, bytes_total)` is called from worker threads as bytes leave. With
    resume="auto" an unfinished upload of the same file (same fingerprint, and an uploaded
    part's SHA-256 matching) is continued; "required" raises NothingToResume when there is
    none; "never" always starts a new upload.
    """
    api = PartwiseApi(server, token)
    uploader = Uploader(
        api, concurrency=concurrency, part_size=part_size, progress=progress, limit_rate=limit_rate
    )
    return uploader.upload(path, resume=resume).upload
