"""Pure planning: part byte ranges, the server's part plan guessed ahead, batch sizes from limits.

No I/O. tests/vectors/part_ranges.json and batches.json hold the browser client to the same
arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB  # the server's UPLOADS_PART_SIZE default
MAX_PARTS = 10_000  # S3: part numbers run from 1 to 10,000

# Parts signed per call at most: the hasher runs far ahead of the network, so a GiB (128 parts
# of 8 MiB) takes the create call's first batch and one or two sign calls. 100 stays within any
# server's UPLOADS_SIGN_BATCH_MAX (its system check warns below 100); the server's `limits`
# lower it further.
SIGN_BATCH = 100
REPORT_BATCH = 64  # finished parts reported per call (at most limits.report_batch_max)
# Seconds a finished part waits at most before it is reported, and at most half the server's
# session_idle so that a session with parts to report never looks silent (its leased parts
# would go to another). Long, so a GiB of 8 MiB parts costs two reports; the server reconciles
# with S3 whenever anyone asks, so nothing is lost in between.
REPORT_INTERVAL = 15.0
SESSION_IDLE = 30.0  # seconds after which the server forgets a silent session's leases


def part_count(size: int, part_size: int) -> int:
    """How many parts `size` bytes take: at least one (a 0-byte file is one empty part)."""
    return max(1, -(-size // part_size))


def part_range(size: int, part_size: int, number: int) -> tuple[int, int]:
    """Part `number`'s (start, end_exclusive) byte offsets in the file."""
    start = (number - 1) * part_size
    return start, max(start, min(start + part_size, size))


def guess_part_size(size: int, preferred: int | None) -> int:
    """The part size the server will most likely choose (uploads/parts.py's plan_parts), so
    the first parts can be hashed, and signed in the create call, before the server answers.

    Only a guess: the upload's own part_size decides, and a wrong guess costs a sign call.
    """
    preferred = preferred or DEFAULT_PART_SIZE
    if part_count(size, preferred) <= MAX_PARTS:
        return preferred
    smallest = -(-size // MAX_PARTS)
    return -(-smallest // MiB) * MiB  # the server rounds up to a whole MiB


@dataclass(frozen=True)
class Limits:
    """What the server lets one call carry (the upload JSON's `limits`), and the clients' own
    batch sizes within them."""

    sign_batch: int = SIGN_BATCH
    report_batch: int = REPORT_BATCH
    url_expires_in: float | None = None  # seconds a presigned URL lives
    session_idle: float = SESSION_IDLE
    report_interval: float = REPORT_INTERVAL

    @classmethod
    def of(
        cls,
        upload: dict[str, Any],
        *,
        sign_batch: int = SIGN_BATCH,
        report_batch: int = REPORT_BATCH,
        report_interval: float = REPORT_INTERVAL,
    ) -> Limits:
        """The batch sizes for `upload`: ours, lowered to the server's maxima where it says."""
        limits = upload.get("limits") or {}
        sign_max = limits.get("sign_batch_max") or sign_batch
        report_max = limits.get("report_batch_max") or report_batch
        expires = limits.get("url_expires_in")
        idle = limits.get("session_idle")
        return cls(
            sign_batch=max(1, min(sign_batch, int(sign_max))),
            report_batch=max(1, min(report_batch, int(report_max))),
            url_expires_in=float(expires) if expires else None,
            session_idle=float(idle or SESSION_IDLE),
            report_interval=min(report_interval, float(idle) / 2) if idle else report_interval,
        )
