"""Part digests: one part's checksum, and the hasher thread that runs ahead of the senders.

Each upload names the digest its parts carry (`checksum_algorithm`, chosen by the server for
its store: "SHA256", "CRC32C" or "MD5", or "" for none; digests.py). The checksum is signed
into each part's URL, so it must be known before the part is signed; hashing far ahead lets
one sign call cover many parts. Only checksums are kept (at most 44 bytes a part), never the
bytes, so running ahead costs no memory; the senders read each part again (from the page
cache) while the hasher works on later ones, in parallel: hashlib releases the GIL, as do the
reads and the socket sends.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import google_crc32c

from .digests import ALGORITHMS, part_digest
from .errors import FileMismatch
from .planning import part_range

READ_BLOCK = 1024 * 1024  # bytes read from the file at a time, to hash or to send
DEFAULT_ALGORITHM = "SHA256"


def part_checksum(data: bytes | memoryview, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """A part's checksum as its signed header carries it: base64 of the raw `algorithm`
    digest (x-amz-checksum-sha256, x-amz-checksum-crc32c or Content-MD5); "" for none."""
    return part_digest(algorithm, data) if algorithm else ""


class _Digest(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32c:
    """CRC32C, hashlib-style. google_crc32c takes read-only bytes only: each block is copied
    (a mebibyte at a time, far cheaper than reading it)."""

    def __init__(self) -> None:
        self.crc = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self.crc = google_crc32c.extend(self.crc, data if isinstance(data, bytes) else bytes(data))

    def digest(self) -> bytes:
        return self.crc.to_bytes(4, "big")


def new_digest(algorithm: str) -> _Digest:
    """A streaming digest of `algorithm` whose result part_digest gives for the same bytes."""
    if algorithm == "SHA256":
        return hashlib.sha256()
    if algorithm == "MD5":
        # Not for security: S3's integrity check (Content-MD5).
        return hashlib.md5(usedforsecurity=False)
    if algorithm == "CRC32C":
        return _Crc32c()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}: expected one of {ALGORITHMS}")


def hash_range(
    path: Path,
    start: int,
    length: int,
    stop: threading.Event | None = None,
    algorithm: str = DEFAULT_ALGORITHM,
) -> str:
    """The `algorithm` checksum of `length` bytes of `path` from `start` (as part_checksum
    gives it), read a block at a time into one buffer (no part in memory, no allocation per
    block). "" for an upload whose parts carry no digest (nothing is read)."""
    if not algorithm:
        return ""
    digest = new_digest(algorithm)
    buffer = bytearray(min(READ_BLOCK, max(length, 1)))
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as file:
        file.seek(start)
        while length:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            read = file.readinto(view[: min(len(buffer), length)])
            if not read:
                raise FileMismatch(f"{path} is shorter than the upload says.", code="file_changed")
            digest.update(view[:read])
            length -= read
    return base64.b64encode(digest.digest()).decode()


class Checksums:
    """Hashes parts in order in a thread of its own, with the upload's `algorithm`; waiters
    block on the part they need.

    `skip` drops parts found already uploaded (the create answer comes after hashing began).
    """

    def __init__(
        self,
        path: Path,
        *,
        size: int,
        part_size: int,
        numbers: Iterable[int],
        stop: threading.Event,
        algorithm: str = DEFAULT_ALGORITHM,
    ) -> None:
        if algorithm:
            new_digest(algorithm)  # an unknown algorithm fails here, not in the thread
        self.path, self.size, self.part_size = path, size, part_size
        self.algorithm = algorithm
        self.numbers = list(numbers)
        self.stop = stop
        self.cancelled = threading.Event()  # this hasher only (a wrong guess of the server's)
        self.done: dict[int, str] = {}
        self.skipped: set[int] = set()
        self.error: BaseException | None = None
        self.finished = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="partwise-hash", daemon=True)

    def start(self) -> Checksums:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for number in self.numbers:
                if self.cancelled.is_set():
                    break
                with self.changed:
                    if number in self.skipped:
                        continue
                start, end = part_range(self.size, self.part_size, number)
                checksum = hash_range(self.path, start, end - start, self.stop, self.algorithm)
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

    def skip(self, numbers: Iterable[int]) -> None:
        """Do not hash these parts (S3 holds them already)."""
        with self.changed:
            self.skipped.update(numbers)

    def ready(self, numbers: Iterable[int]) -> list[dict[str, object]]:
        """Those of `numbers` hashed so far, as parts to sign."""
        with self.changed:
            return [{"number": n, "checksum": self.done[n]} for n in numbers if n in self.done]

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

    def checksum(self, number: int) -> str:
        """Part `number`'s checksum, waiting for the hasher to get there."""
        self.wait_for(number)
        return self.done[number]

    def wake(self) -> None:
        """Let waiters see that the run stops."""
        with self.changed:
            self.changed.notify_all()

    def cancel(self) -> None:
        """Stop this hasher (its part size or algorithm was a wrong guess)."""
        self.cancelled.set()
        self.thread.join()

    def join(self) -> None:
        self.thread.join()
