"""Sending one part to S3: the streamed request body, progress, the rate limit, and the PUT
loop with the one retry policy (retry.py).

Each part is read once for sending, a mebibyte at a time into one reused buffer that urllib3
hands straight to the socket: file bytes in memory stay under concurrency x READ_BLOCK.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

from .api import PartwiseApi
from .errors import FileMismatch, PartRefused, PartwiseError
from .hashing import READ_BLOCK
from .reports import Reports
from .retry import Backoff, S3Answer, classify_s3_error
from .signing import Signer

ProgressCallback = Callable[[int, int], None]  # (bytes_done, bytes_total), like oss2's


class Progress:
    """Thread-safe byte counter feeding the caller's callback.

    A failed attempt's bytes are taken back from the count, but what the callback sees never
    moves backwards: bytes S3 holds are not forgotten while a part is sent again.
    """

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self.shown = 0
        self.callback = callback
        self.lock = threading.Lock()

    def add(self, amount: int) -> None:
        with self.lock:
            self.done += amount
            if self.done > self.shown:
                self.shown = min(self.done, self.total)
                if self.callback is not None:
                    self.callback(self.shown, self.total)


class RateLimit:
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


class PartBody:
    """A part read from the file block by block as a request body; reports progress, stops on
    request.

    requests sends a file-like body in blocks with the Content-Length it measures (len()),
    which is what the presigned URL signed. Each read fills the same buffer and answers a view
    of it: urllib3 sends a block completely before it reads the next.
    """

    def __init__(
        self,
        path: Path,
        start: int,
        length: int,
        progress: Progress,
        limit: RateLimit,
        stop: threading.Event,
    ) -> None:
        self.file = path.open("rb", buffering=0)
        self.file.seek(start)
        self.length = length
        self.position = 0
        self.progress, self.limit, self.stop = progress, limit, stop
        self.counted = 0
        self.buffer = memoryview(bytearray(0))  # sized by the first read (urllib3: 1 MiB)

    def __len__(self) -> int:
        return self.length - self.position

    def __iter__(self) -> Iterator[memoryview]:
        return iter(lambda: self.read(READ_BLOCK), b"")

    def tell(self) -> int:
        return self.position

    def read(self, size: int | None = -1) -> memoryview:
        if self.stop.is_set():
            raise KeyboardInterrupt
        left = self.length - self.position
        wanted = left if size is None or size < 0 else min(size, left)
        if wanted > len(self.buffer):
            self.buffer = memoryview(bytearray(wanted))
        got = self.file.readinto(self.buffer[:wanted]) if wanted else 0
        if got != wanted:
            raise FileMismatch(
                f"{self.file.name} is shorter than the upload says.", code="file_changed"
            )
        if got:
            self.position += got
            self.limit.take(got)
            self.counted += got
            self.progress.add(got)
        return self.buffer[:got]

    def close(self) -> None:
        self.file.close()

    def uncount(self) -> None:
        self.progress.add(-self.counted)
        self.counted = 0


NETWORK = S3Answer("network_error", retryable=True, resign=False)


class PartSender:
    """PUTs parts until S3 takes them, retrying what retry.py calls retryable."""

    def __init__(
        self,
        api: PartwiseApi,
        *,
        path: Path,
        size: int,
        part_size: int,
        progress: Progress,
        limit: RateLimit,
        backoff: Backoff,
    ) -> None:
        self.api, self.path, self.size, self.part_size = api, path, size, part_size
        self.progress, self.limit, self.backoff = progress, limit, backoff
        self.stop = api.stop

    def send(self, number: int, signer: Signer, reports: Reports) -> int:
        """Send part `number`; report it once S3 answers its ETag. Raises signing.Leased when
        another live session holds the part."""
        if self.stop.is_set():
            raise KeyboardInterrupt
        start = (number - 1) * self.part_size
        length = max(0, min(self.part_size, self.size - start))
        signed = signer.url_for(number)
        attempt = 0
        cause: BaseException | None
        while True:
            body = PartBody(self.path, start, length, self.progress, self.limit, self.stop)
            try:
                response = self.api.session.request(
                    signed["method"],
                    signed["url"],
                    # An empty stream would go out chunked, without the signed Content-Length 0.
                    data=body if length else b"",
                    headers=signed["headers"],
                    timeout=self.api.timeouts(),
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                body.uncount()
                answer, cause, text, status = NETWORK, error, str(error), None
            else:
                if response.ok:
                    etag = response.headers.get("ETag", "")
                    checksum = signer.checksums.checksum(number)
                    reports.add({"number": number, "etag": etag, "checksum": checksum})
                    return number
                body.uncount()
                answer = classify_s3_error(response.status_code, response.text)
                cause, text, status = None, response.text, response.status_code
            finally:
                body.close()
            if not answer.retryable or attempt + 1 >= self.backoff.attempts:
                raise self._error(number, answer, text, cause, status)
            if self.stop.wait(self.backoff.delay(attempt)):
                raise KeyboardInterrupt
            attempt += 1
            if answer.resign or not signer.is_fresh(number):
                signed = signer.url_for(number, refresh=True)

    def _error(
        self,
        number: int,
        answer: S3Answer,
        text: str,
        cause: BaseException | None,
        status: int | None,
    ) -> PartwiseError:
        if answer is NETWORK:
            error: PartwiseError = PartwiseError(
                f"Part {number} could not be sent: {text}", code="unreachable"
            )
        elif answer.code == "upload_gone":
            error = PartwiseError(
                "The upload no longer exists in storage (completed, cancelled or expired).",
                code="upload_gone",
                http_status=status,
            )
        else:
            error = PartRefused(
                f"S3 refused part {number} ({answer.code}"
                f"{', ' + answer.s3_code if answer.s3_code else ''}): {text[:300]}",
                code=answer.code if answer.code == "checksum_mismatch" else "part_refused",
                http_status=status,
            )
        error.__cause__ = cause
        return error
