"""Pure part planning: how a file of a given size is cut into S3 multipart parts.

No Django, no I/O. The limits are S3's, from
https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
"""

from dataclasses import KW_ONLY, dataclass
from datetime import datetime

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

MIN_PART_SIZE = 5 * MiB  # every part but the last must be at least 5 MiB
MAX_PART_SIZE = 5 * GiB  # no part may exceed 5 GiB
MAX_PARTS = 10_000  # part numbers run from 1 to 10,000
MAX_OBJECT_SIZE = 5 * TiB  # the largest object S3 stores


@dataclass(frozen=True)
class PartPlan:
    """How an upload of `size` bytes is cut: `part_count` parts of `part_size`, the last shorter."""

    size: int
    part_size: int
    part_count: int

    def size_of(self, number: int) -> int:
        """The exact byte length of part `number` (1-based)."""
        if not 1 <= number <= self.part_count:
            raise ValueError(f"part {number} is outside 1..{self.part_count}")
        if number < self.part_count:
            return self.part_size
        return self.size - self.part_size * (self.part_count - 1)

    def offset_of(self, number: int) -> int:
        """The byte offset in the file where part `number` starts."""
        if not 1 <= number <= self.part_count:
            raise ValueError(f"part {number} is outside 1..{self.part_count}")
        return (number - 1) * self.part_size


def plan_parts(size: int, preferred_part_size: int) -> PartPlan:
    """Cut `size` bytes into parts of `preferred_part_size`, raised just enough for 10,000 parts.

    A 0-byte file is one empty part (S3 accepts an empty last part). Raises ValueError for sizes
    S3 cannot store or a preferred part size outside S3's limits.
    """
    if size < 0 or size > MAX_OBJECT_SIZE:
        raise ValueError(f"size must be between 0 and {MAX_OBJECT_SIZE}")
    if not MIN_PART_SIZE <= preferred_part_size <= MAX_PART_SIZE:
        raise ValueError(f"part size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE}")
    if size == 0:
        return PartPlan(size=0, part_size=preferred_part_size, part_count=1)
    # Ceiling division: the smallest part size that fits the file into MAX_PARTS parts,
    # rounded up to a whole MiB so that part boundaries stay friendly to readers and caches.
    smallest = -(-size // MAX_PARTS)
    smallest = -(-smallest // MiB) * MiB
    part_size = max(preferred_part_size, smallest)
    part_count = -(-size // part_size)
    return PartPlan(size=size, part_size=part_size, part_count=part_count)


# --- a part's life, in the words services and storage share ---------------------------------
# planned (PartPlan.size_of) -> to sign -> signed -> reported (by the client) -> stored (in S3).
@dataclass(frozen=True)
class PartToSign:
    """A part to presign: its number, and the exact length and SHA-256 the URL binds."""

    number: int
    _: KW_ONLY
    size: int | None = None  # None: unplanned (Uppy-started) uploads sign no length
    checksum: str = ""  # base64 SHA-256, "" for none


@dataclass(frozen=True)
class SignedPart:
    """A presigned UploadPart URL and exactly the headers the client must send with it."""

    number: int
    url: str
    method: str
    headers: dict[str, str]
    size: int | None
    expires_at: datetime


@dataclass(frozen=True)
class ReportedPart:
    """What a client says it uploaded: only progress until completion checks it against S3."""

    number: int
    etag: str
    checksum: str = ""


@dataclass(frozen=True)
class StoredPart:
    """A part as S3 holds it (ListParts), and as CompleteMultipartUpload is given it."""

    number: int
    size: int
    etag: str
    checksum: str = ""


def normalize_etag(etag: str) -> str:
    """ETags compare without their surrounding quotes (Uppy 6 strips them, Uppy 5 keeps them)."""
    return etag.strip().strip('"')
