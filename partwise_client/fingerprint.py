"""The file fingerprint that finds an unfinished upload again, from any machine or browser.

The same definition as the browser client (`fileFingerprint` in frontend/client.js), so an
upload started in a browser can be resumed from the command line and the other way round; a
test runs both on the same file. The server treats the value as opaque: it is only a lookup
key. Proof that the bytes are the same comes from comparing an uploaded part's SHA-256 with
the checksum the server holds (see transfer.py).

    text = JSON ["partwise-v1", size, name, lastModified, b64(SHA-256(head)), b64(SHA-256(tail))]
    fingerprint = "v1:" + hex(SHA-256(UTF-8(text)))

JSON as JavaScript's JSON.stringify writes it (no spaces, non-ASCII kept); `name` is the base
name, `lastModified` the modification time in whole milliseconds (a browser's
`File.lastModified`), head and tail the first and last min(size, 1 MiB) bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

MiB = 1024 * 1024
SAMPLE = MiB  # bytes hashed at each end (FINGERPRINT_SAMPLE in client.js)


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def fingerprint_of(name: str, size: int, modified_ms: int, head: bytes, tail: bytes) -> str:
    """The fingerprint from its ingredients (what a browser has: File.name, size, lastModified)."""
    text = json.dumps(
        ["partwise-v1", size, name, modified_ms, _b64_sha256(head), _b64_sha256(tail)],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return "v1:" + hashlib.sha256(text.encode()).hexdigest()


def fingerprint(path: str | os.PathLike[str]) -> str:
    """The fingerprint of the file at `path`."""
    path = Path(path)
    stat = path.stat()
    edge = min(stat.st_size, SAMPLE)
    with path.open("rb") as file:
        head = file.read(edge)
        file.seek(stat.st_size - edge)
        tail = file.read(edge)
    return fingerprint_of(path.name, stat.st_size, stat.st_mtime_ns // 1_000_000, head, tail)
