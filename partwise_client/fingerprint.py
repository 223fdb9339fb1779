"""The file fingerprint that finds an unfinished upload again, from any machine or browser.

The same definition as the browser client (frontend/client.js), so an upload started in a
browser can be resumed from the command line and the other way round. The server treats the
value as opaque; it is only a lookup key. Proof that the bytes are the same comes from
comparing one uploaded part's SHA-256 with the checksum the server holds (see transfer.py).

    fingerprint = "pw1-" + hex(SHA-256(
        UTF-8(name) + "\\n" + decimal(size) + "\\n" + decimal(lastModified in ms) + "\\n"
        + SHA-256(first MiB) + SHA-256(last MiB)            # raw 32-byte digests
    ))

`name` is the base name, `lastModified` the modification time in whole milliseconds (a
browser's `File.lastModified`), the first and last MiB are the first and last
min(size, 1 MiB) bytes (the same bytes twice for a file of 1 MiB or less; empty for 0 bytes).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

MiB = 1024 * 1024
VERSION = "pw1"


def fingerprint_of(name: str, size: int, modified_ms: int, head: bytes, tail: bytes) -> str:
    """The fingerprint from its ingredients (what a browser has: File.name, size, lastModified)."""
    digest = hashlib.sha256()
    digest.update(f"{name}\n{size}\n{modified_ms}\n".encode())
    digest.update(hashlib.sha256(head).digest())
    digest.update(hashlib.sha256(tail).digest())
    return f"{VERSION}-{digest.hexdigest()}"


def fingerprint(path: str | os.PathLike[str]) -> str:
    """The fingerprint of the file at `path`."""
    path = Path(path)
    stat = path.stat()
    edge = min(stat.st_size, MiB)
    with path.open("rb") as file:
        head = file.read(edge)
        file.seek(stat.st_size - edge)
        tail = file.read(edge)
    return fingerprint_of(path.name, stat.st_size, stat.st_mtime_ns // 1_000_000, head, tail)
