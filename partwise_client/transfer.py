"""The part loop: find or start the upload, send the missing parts in parallel, complete.

All state lives on the server, so stopping at any moment (Ctrl+C, a crash, SIGKILL) loses at
most the parts in flight, and `resume` from any machine sends only what S3 does not have.
Memory is bounded by concurrency x part size: each worker reads, hashes and sends one part.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import mimetypes
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from .api import Backoff, PartwiseApi, PartwiseError
from .fingerprint import fingerprint

ProgressCallback = Callable[[int, int], None]  # (bytes_done, bytes_total), like oss2's
RESUMABLE = "uploading"
READ_BLOCK = 1024 * 1024  # bytes read from the file at a time, to hash or to send
# Parts signed per call at most: the hasher runs far ahead of the network, so a GiB (128 parts
# of 8 MiB) takes two sign calls. 100 stays within any server's UPLOADS_SIGN_BATCH_MAX (its
# system check warns below 100). URLs that would expire before their turn are signed again,
# in one call for all of them.
SIGN_BATCH = 100
MAX_SIGN_BATCH = 1000  # the API's limit per sign call
SIGN_WAIT = 0.2  # seconds a sign call waits for the hasher to fill its batch
EXPIRY_MARGIN = 60.0  # seconds before expires_at a URL is no longer handed out
REPORT_BATCH = 32  # finished parts reported per call
MAX_REPORT_BATCH = 1000
REPORT_INTERVAL = 2.0  # seconds a finished part waits at most before it is reported


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


class _PartBody:
    """A part read from the file block by block as a request body; reports progress, stops on
    request.

    requests sends a file-like body in blocks with the Content-Length it measures (len()),
    which is what the presigned URL signed; only one block of the part is in memory at a time.
    """

    def __init__(
        self,
        path: Path,
        start: int,
        length: int,
        progress: _Progress,
        limit: _RateLimit,
        stop: threading.Event,
    ) -> None:
        self.file = path.open("rb")
        self.file.seek(start)
        self.length = length
        self.position = 0
        self.progress, self.limit, self.stop = progress, limit, stop
        self.counted = 0

    def __len__(self) -> int:
        return self.length - self.position

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.read(READ_BLOCK), b"")

    def tell(self) -> int:
        return self.position

    def read(self, size: int | None = -1) -> bytes:
        if self.stop.is_set():
            raise KeyboardInterrupt
        left = self.length - self.position
        wanted = left if size is None or size < 0 else min(size, left)
        chunk = self.file.read(wanted)
        if len(chunk) != wanted:
            raise FileMismatch(
                f"{self.file.name} is shorter than the upload says.", code="file_changed"
            )
        if chunk:
            self.position += len(chunk)
            self.limit.take(len(chunk))
            self.counted += len(chunk)
            self.progress.add(len(chunk))
        return chunk

    def close(self) -> None:
        self.file.close()

    def uncount(self) -> None:
        self.progress.add(-self.counted)
        self.counted = 0


def _part_range(upload: dict[str, Any], number: int) -> tuple[int, int]:
    start = (number - 1) * upload["part_size"]
    return start, max(0, min(upload["part_size"], upload["size"] - start))


def _hash_part(path: Path, upload: dict[str, Any], number: int, stop: threading.Event) -> str:
    """A part's checksum, read in blocks: hashing ahead holds no part in memory."""
    start, length = _part_range(upload, number)
    digest = hashlib.sha256()
    with path.open("rb") as file:
        file.seek(start)
        while length:
            if stop.is_set():
                raise KeyboardInterrupt
            block = file.read(min(READ_BLOCK, length))
            if not block:
                raise FileMismatch(f"{path} is shorter than the upload says.", code="file_changed")
            digest.update(block)
            length -= len(block)
    return base64.b64encode(digest.digest()).decode()


class _Checksums:
    """Hashes the parts to send, in order, in a thread of its own, ahead of the workers.

    Only checksums are kept (44 bytes a part), so running far ahead costs no memory; it lets
    one sign call cover many parts.
    """

    def __init__(
        self, path: Path, upload: dict[str, Any], numbers: list[int], stop: threading.Event
    ) -> None:
        self.path, self.upload, self.numbers = path, upload, numbers
        self.stop = stop
        self.done: dict[int, str] = {}
        self.error: BaseException | None = None
        self.finished = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="partwise-hash", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            for number in self.numbers:
                checksum = _hash_part(self.path, self.upload, number, self.stop)
                with self.changed:
                    self.done[number] = checksum
                    self.changed.notify_all()
        except BaseException as error:  # handed to the worker waiting for this part
            with self.changed:
                self.error = error
        finally:
            with self.changed:
                self.finished = True
                self.changed.notify_all()

    def wait_for(self, number: int, timeout: float | None = None) -> bool:
        """Wait (at most `timeout`) until `number` is hashed; raise the hasher's error."""
        with self.changed:
            ready = self.changed.wait_for(
                lambda: number in self.done or self.finished or self.stop.is_set(), timeout
            )
            if number in self.done:
                return True
            if self.error is not None:
                raise self.error
            if self.stop.is_set():
                raise KeyboardInterrupt
            if ready:
                raise RuntimeError(f"part {number} was never hashed")
            return False

    def wake(self) -> None:
        """Let workers waiting for a checksum see that the run stops."""
        with self.changed:
            self.changed.notify_all()

    def join(self) -> None:
        self.thread.join()


class _Signer:
    """Presigned URLs for the workers, signed many parts per call.

    A worker asking for a part that has no fresh URL signs it together with the next parts
    whose checksums are ready (up to `batch`), so most workers find their URL already there.
    A URL close to its expires_at is signed again before use; S3's "Request has expired"
    (clock skew, a stalled PUT) makes the worker ask again with refresh=True.
    """

    def __init__(self, api: PartwiseApi, upload_id: str, checksums: _Checksums, batch: int) -> None:
        self.api, self.upload_id, self.checksums = api, upload_id, checksums
        self.batch = max(1, min(batch, MAX_SIGN_BATCH))
        self.order = {number: index for index, number in enumerate(checksums.numbers)}
        self.signed: dict[int, tuple[dict[str, Any], float]] = {}  # number -> (part, fresh until)
        # Parts whose URL a worker took: a later batch must not sign them again (workers ask
        # in any order, so a batch starting lower can reach parts already taken).
        self.taken: set[int] = set()
        self.lock = threading.Lock()
        self.calls = 0

    def checksum(self, number: int) -> str:
        self.checksums.wait_for(number)
        return self.checksums.done[number]

    def url_for(self, number: int, *, refresh: bool = False) -> dict[str, Any]:
        self.checksums.wait_for(number)
        with self.lock:
            if refresh:
                self.signed.pop(number, None)
            self.taken.add(number)
            cached = self.signed.get(number)
            if cached is not None and time.monotonic() < cached[1]:
                return self.signed.pop(number)[0]  # each URL is used once; a retry re-signs
            self._sign_from(number)
            return self.signed.pop(number)[0]

    def _sign_from(self, number: int) -> None:
        numbers = self.checksums.numbers
        wanted = min(self.batch, len(numbers) - self.order[number])
        # Give the hasher a moment to get `wanted` parts ahead: one call instead of several.
        last = numbers[self.order[number] + wanted - 1]
        self.checksums.wait_for(last, timeout=SIGN_WAIT)
        now = time.monotonic()
        batch = [number]
        for following in numbers[self.order[number] + 1 :]:
            if len(batch) >= self.batch or following not in self.checksums.done:
                break
            if following in self.taken:
                continue
            cached = self.signed.get(following)
            if cached is None or now >= cached[1]:
                batch.append(following)
        parts = [{"number": n, "checksum": self.checksums.done[n]} for n in batch]
        self.calls += 1
        signed_at, wall = time.monotonic(), time.time()
        for part in self.api.sign_parts(self.upload_id, parts):
            self.signed[part["number"]] = (part, signed_at + _fresh_for(part, wall))


def _fresh_for(part: dict[str, Any], wall_now: float) -> float:
    """Seconds a signed URL can be used without risking expiry in flight.

    Measured against our own clock: when the clocks disagree so much that the URL looks
    expired already, it is used anyway and S3's answer decides (a 403 re-signs it).
    """
    try:
        expires = datetime.fromisoformat(part["expires_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return float("inf")
    left = expires - wall_now
    if left <= 0:
        return float("inf")
    return left - min(EXPIRY_MARGIN, left / 4)


class _Reports:
    """Finished parts, reported in batches: the first at once, then `batch` at a time or after
    `interval` seconds.

    flush() reports everything pending; the run flushes before complete, and once more (best
    effort) on the way out after an error or Ctrl+C. A part never reported is not lost: the
    server reconciles with S3, but other sessions see progress late.
    """

    def __init__(self, api: PartwiseApi, upload_id: str, *, batch: int, interval: float) -> None:
        self.api, self.upload_id = api, upload_id
        self.batch, self.interval = max(1, batch), interval
        self.pending: list[dict[str, Any]] = []
        self.oldest = 0.0
        self.lock = threading.Lock()
        self.calls = 0

    def add(self, part: dict[str, Any]) -> None:
        with self.lock:
            if not self.pending:
                self.oldest = time.monotonic()
            self.pending.append(part)

    def due(self) -> bool:
        with self.lock:
            # The first finished part goes at once: other sessions see the upload move.
            return bool(self.pending) and (
                not self.calls
                or len(self.pending) >= self.batch
                or time.monotonic() - self.oldest >= self.interval
            )

    def flush(self, *, best_effort: bool = False) -> None:
        with self.lock:
            parts, self.pending = self.pending, []
        if not parts:
            return
        try:
            while parts:
                chunk = parts[:MAX_REPORT_BATCH]
                self.calls += 1
                self.api.report_parts(self.upload_id, chunk, best_effort=best_effort)
                del parts[: len(chunk)]
        except BaseException:
            with self.lock:  # not reported yet: keep them for the next flush
                self.pending[:0] = parts
                self.oldest = time.monotonic()
            raise


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
        sign_batch: int = SIGN_BATCH,
        report_batch: int = REPORT_BATCH,
        report_interval: float = REPORT_INTERVAL,
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
        self.sign_batch = sign_batch
        self.report_batch = report_batch
        self.report_interval = report_interval
        self.sign_calls = self.report_calls = 0  # of the last run, for tests and benchmarks

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
        """Send `numbers` with `concurrency` workers; every finished part is reported on return.

        Parts are hashed ahead in one thread and signed in batches; workers stream each part
        from the file, so file bytes in memory stay under concurrency x READ_BLOCK.
        """
        if not numbers:
            return
        checksums = _Checksums(path, upload, numbers, self.stop)
        signer = _Signer(self.api, upload["id"], checksums, self.sign_batch)
        reports = _Reports(
            self.api, upload["id"], batch=self.report_batch, interval=self.report_interval
        )
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="partwise-part")
        checksums.start()
        try:
            futures = [
                pool.submit(self._send_part, path, upload, n, progress, signer, reports)
                for n in numbers
            ]
            pending: set[Future[int]] = set(futures)
            while pending:
                # A short timeout keeps the main thread responsive to Ctrl+C and reports fresh.
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    transfer.parts_sent.append(future.result())  # re-raises a part's error
                if reports.due():
                    reports.flush()
            reports.flush()  # everything, before the caller completes the upload
        except BaseException:
            self.stop.set()  # workers stop at their next block; nothing half-done is recorded
            checksums.wake()
            pool.shutdown(wait=True, cancel_futures=True)
            # Parts S3 has: tell the server on the way out, else it finds them when it reconciles.
            with contextlib.suppress(PartwiseError, requests.RequestException):
                reports.flush(best_effort=True)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            checksums.join()
            self.sign_calls, self.report_calls = signer.calls, reports.calls

    def _send_part(
        self,
        path: Path,
        upload: dict[str, Any],
        number: int,
        progress: _Progress,
        signer: _Signer,
        reports: _Reports,
    ) -> int:
        if self.stop.is_set():
            raise KeyboardInterrupt
        start, length = _part_range(upload, number)
        attempt = 0
        while True:
            # Every retry gets a fresh URL: the old one may be what S3 refused (expired).
            signed = signer.url_for(number, refresh=attempt > 0)
            body = _PartBody(path, start, length, progress, self.limit, self.stop)
            try:
                response = self.api.session.request(
                    signed["method"],
                    signed["url"],
                    # An empty stream would go out chunked, without the signed Content-Length 0.
                    data=body if length else b"",
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
                    reports.add(
                        {"number": number, "etag": etag, "checksum": signer.checksum(number)}
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
            finally:
                body.close()
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
