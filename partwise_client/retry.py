"""The one retry policy: which answers are worth asking again, and how long to wait first.

Used by every API call (api.py) and every part PUT (sending.py) alike, and the same as the
browser client's (frontend/client.js): tests/vectors/retry.json and s3_errors.json hold both to
one schedule and one classification. Every call the client makes is safe to repeat (create
carries a client_token; sign, report, complete and abort are idempotent on the server).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Base delays before each retry, in seconds; their count is the number of retries. Together
# they ride out an outage of about a minute (31 to 61 s of waiting): a restart of S3 or of the
# server must not end a long upload.
RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
NETWORK_ERROR = 0  # the status of "no answer at all" (refused, reset, timed out)


def is_retryable(status: int) -> bool:
    """Whether an HTTP status (0: no answer) is worth asking again after a wait.

    A network error, any 5xx, and 408/429, which are "try later" by definition; every other 4xx
    is a final answer.
    """
    return status == NETWORK_ERROR or status >= 500 or status in (408, 429)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with "equal jitter": retry n waits between half and all of delays[n].

    Attempts past the list wait its last delay. `attempts` counts the first try too.
    """

    delays: Sequence[float] = RETRY_DELAYS
    random: Callable[[], float] = field(default=random.random, compare=False)
    cap: float = 30.0  # the longest a server's Retry-After is obeyed

    @classmethod
    def none(cls, retries: int = 2) -> Backoff:
        """`retries` retries without waiting (tests, and callers that wait on their own)."""
        return cls(delays=(0.0,) * retries)

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after and retry_after.strip().isdigit():
            # The server knows when it takes requests again (429 from the throttle).
            return min(float(retry_after), self.cap)
        if not self.delays:
            return 0.0
        base = self.delays[min(attempt, len(self.delays) - 1)]
        return base * (0.5 + 0.5 * self.random())


@dataclass(frozen=True)
class S3Answer:
    """What a refused part PUT means for the client: its error code, retry it, sign it again."""

    code: str
    retryable: bool
    resign: bool
    s3_code: str = ""
    message: str = ""


CHECKSUM_CODES = frozenset(
    {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch"}
)
RETRYABLE_CODES = frozenset({"RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable"})


def _xml_field(body: str, name: str) -> str:
    match = re.search(rf"<{name}>([^<]*)</{name}>", body)
    return match.group(1) if match else ""


def classify_s3_error(status: int, body: str) -> S3Answer:
    """S3's (or a proxy's) non-2xx answer to a part PUT, classified (see s3_errors.json)."""
    s3_code, message = _xml_field(body, "Code"), _xml_field(body, "Message")
    if status == 403 and "expired" in f"{s3_code} {message}".lower():
        # Too late for this URL (a stalled PUT, a skewed clock): a fresh one will do.
        return S3Answer("url_expired", True, True, s3_code, message)
    if is_retryable(status) or s3_code in RETRYABLE_CODES:
        return S3Answer("storage_unavailable", True, False, s3_code, message)
    if s3_code in CHECKSUM_CODES:
        return S3Answer("checksum_mismatch", False, False, s3_code, message)
    if s3_code == "NoSuchUpload" or status == 404:
        return S3Answer("upload_gone", False, False, s3_code, message)
    return S3Answer("part_refused", False, False, s3_code, message)
