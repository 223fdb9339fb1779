"""Finished parts, reported to the server in batches.

`batch` at a time, or after `interval` seconds (which also keeps the session live on the
server while a slow link finishes few parts). flush() reports everything pending; the run
flushes before complete, and once more (best effort) on the way out after an error or
Ctrl+C. A part never reported is not lost: the server reconciles with S3, but other sessions
see progress late.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .api import PartwiseApi


class Reports:
    """The parts S3 took and the server has not heard of yet."""

    def __init__(
        self,
        api: PartwiseApi,
        upload_id: str,
        *,
        batch: int,
        interval: float,
        session: str | None = None,
        on_sessions: Callable[[int], None] | None = None,
    ) -> None:
        self.api, self.upload_id, self.session = api, upload_id, session
        self.batch, self.interval = max(1, batch), interval
        self.on_sessions = on_sessions or (lambda others: None)
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
            return bool(self.pending) and (len(self.pending) >= self.batch or self._waited_long())

    def _waited_long(self) -> bool:
        return time.monotonic() - self.oldest >= self.interval

    def flush_due(self) -> None:
        """Report what is due: whole batches, or everything once the oldest waited long
        enough. A few parts beyond a whole batch wait for the next one, so a GiB of 8 MiB parts
        is reported in two calls, not in two and a remainder."""
        with self.lock:
            if self._waited_long():
                count = len(self.pending)
            else:
                count = len(self.pending) // self.batch * self.batch
            if not count:
                return
            parts, self.pending = self.pending[:count], self.pending[count:]
            if self.pending:
                self.oldest = time.monotonic()  # the remainder finished just now
        self._send(parts, best_effort=False)

    def flush(self, *, best_effort: bool = False) -> None:
        """Report every pending part, `batch` per call; unreported ones stay pending."""
        with self.lock:
            parts, self.pending = self.pending, []
        if parts:
            self._send(parts, best_effort=best_effort)

    def _send(self, parts: list[dict[str, Any]], *, best_effort: bool) -> None:
        try:
            while parts:
                chunk = parts[: self.batch]
                self.calls += 1
                answer = self.api.report_parts(
                    self.upload_id, chunk, best_effort=best_effort, session=self.session
                )
                del parts[: len(chunk)]
                if "other_sessions" in answer:
                    self.on_sessions(int(answer["other_sessions"]))
        except BaseException:
            with self.lock:  # not reported yet: keep them for the next flush
                self.pending[:0] = parts
                self.oldest = time.monotonic()
            raise
