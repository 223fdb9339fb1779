"""Files for the clients to upload."""

from __future__ import annotations

import os
from pathlib import Path

MiB = 1024 * 1024


def write_random(path: Path, size: int) -> Path:
    """A file of `size` random bytes (its folders made), written 4 MiB at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 4 * MiB))
            stream.write(block)
            remaining -= len(block)
    return path
