"""Download a completed upload's file, verified before it takes its place.

The bytes come from the presigned URL the server's download call redirects to (never through
the server). They are streamed into a temporary file next to the target; the size, and when the
upload has one the SHA-256 checksum S3 recorded for the object, are checked while streaming;
only a file that passed is renamed into place (atomically), so a failed or interrupted download
never leaves a partial file under the target's name.

S3 records a multipart object's checksum as "<base64 of SHA-256 of the parts' SHA-256
digests>-<part count>" (a composite checksum), so the parts' boundaries matter: they come from
the upload's parts (each with its size), or from its plan.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .api import PartwiseApi, unreachable
from .errors import FileMismatch, PartwiseError

BLOCK = 1024 * 1024  # bytes read from the response at a time


class DownloadCorrupt(FileMismatch):
    """The bytes served are not the upload's (wrong size or checksum): nothing was written."""


@dataclass(frozen=True)
class Downloaded:
    """What `download` wrote, and what it checked."""

    path: Path
    size: int
    checksum_checked: bool


def target_path(upload: dict[str, Any], output: Path | None) -> Path:
    """Where the file goes: `output` (a directory takes the upload's name), else the upload's
    name in the current directory. Only the name's last component is used: a name is data."""
    name = Path(str(upload.get("filename") or "")).name
    if name in ("", ".", ".."):
        name = str(upload["id"])
    if output is None:
        return Path.cwd() / name
    return output / name if output.is_dir() else output


def part_sizes(upload: dict[str, Any]) -> list[int]:
    """The sizes of the upload's parts in order: as recorded, else as planned."""
    parts = sorted(upload.get("parts") or [], key=lambda part: part["number"])
    if parts and all(part.get("size") is not None for part in parts):
        return [int(part["size"]) for part in parts]
    size, part_size = upload.get("size"), upload.get("part_size")
    if size is None or not part_size:
        return []
    count = max(1, -(-int(size) // int(part_size)))
    return [min(int(part_size), int(size) - n * int(part_size)) for n in range(count)]


class ChecksumCheck:
    """Feeds the streamed bytes to the SHA-256s that S3's checksum of the object is made of."""

    def __init__(self, checksum: str, sizes: list[int]) -> None:
        digest, _, count = checksum.partition("-")
        self.expected = digest
        self.composite = bool(count)
        self.count = int(count) if count.isdigit() else 0
        self.sizes = sizes
        self.whole = hashlib.sha256()
        self.part = hashlib.sha256()
        self.part_left = sizes[0] if sizes else 0
        self.digests: list[bytes] = []

    def update(self, block: bytes) -> None:
        self.whole.update(block)
        if not self.composite:
            return
        view = memoryview(block)
        while view:
            if self.part_left == 0 and len(self.digests) + 1 < len(self.sizes):
                self._next_part()
            if self.part_left == 0:
                # Past the last planned byte: it goes to the last part (the size check fails).
                self.part.update(view)
                return
            take = min(len(view), self.part_left)
            self.part.update(view[:take])
            self.part_left -= take
            view = view[take:]

    def _next_part(self) -> None:
        self.digests.append(self.part.digest())
        self.part = hashlib.sha256()
        self.part_left = self.sizes[len(self.digests)]

    def matches(self) -> bool:
        if not self.composite:
            return base64.b64encode(self.whole.digest()).decode() == self.expected
        digests = [*self.digests, self.part.digest()]
        if len(digests) != self.count:
            return False
        combined = hashlib.sha256(b"".join(digests)).digest()
        return base64.b64encode(combined).decode() == self.expected


def checksum_check(upload: dict[str, Any]) -> ChecksumCheck | None:
    """The check of the upload's checksum, or None when it has none (or, for a composite
    checksum, when its parts' boundaries are unknown)."""
    checksum = str(upload.get("checksum") or "")
    if not checksum:
        return None
    check = ChecksumCheck(checksum, part_sizes(upload))
    return None if check.composite and not check.sizes else check


def _blocks(response: requests.Response) -> Iterator[bytes]:
    yield from response.iter_content(BLOCK)


def download(
    api: PartwiseApi,
    upload_id: str,
    output: Path | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Downloaded:
    """Fetch a completed upload's file to `output` (see target_path), verified; raises
    DownloadCorrupt when the bytes are not the upload's, PartwiseError when S3 refuses."""
    upload = api.get_upload(upload_id)
    target = target_path(upload, output)
    expected_size = int(upload["size"]) if upload.get("size") is not None else None
    check = checksum_check(upload)
    url = api.download_location(upload_id)
    try:
        response = api.session.request("GET", url, stream=True, timeout=api.timeouts())
    except (requests.ConnectionError, requests.Timeout) as error:
        raise unreachable(url.split("?", 1)[0], error) from error
    if response.status_code != 200:
        raise PartwiseError(
            f"storage refused the download (HTTP {response.status_code})",
            code="download_refused",
            http_status=response.status_code,
        )
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    written = 0
    try:
        with os.fdopen(handle, "wb") as file, contextlib.closing(response):
            for block in _blocks(response):
                if api.stop.is_set():
                    raise KeyboardInterrupt
                file.write(block)
                written += len(block)
                if check is not None:
                    check.update(block)
                if progress is not None:
                    progress(written, expected_size or written)
        if expected_size is not None and written != expected_size:
            raise DownloadCorrupt(
                f"{target.name}: got {written} bytes, the upload holds {expected_size}; "
                "nothing written",
                code="size_mismatch",
            )
        if check is not None and not check.matches():
            raise DownloadCorrupt(
                f"{target.name}: the SHA-256 of the bytes is not the upload's checksum; "
                "nothing written",
                code="checksum_mismatch",
            )
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return Downloaded(path=target, size=written, checksum_checked=check is not None)
