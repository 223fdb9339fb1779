"""This machine's session for a file: the one a killed run held, so a restart never waits.

The server hands the parts a live session signed to no one else until it has been silent for
`session_idle` seconds (30 by default). A run killed mid-upload (SIGKILL, a crash, a closed
laptop) leaves its parts leased; a new random session would wait those seconds out. So each
run takes the file's lock under the state directory and keeps the session id written there:
the lock is the kernel's (`flock`), released the moment the holder dies, so a restart reuses
the dead run's session (its leases are its own) while a second run beside a live one gets a
session of its own and joins it, as two devices do.

The same directory keeps, per server, the part digest that server chose for its last new
upload (`remembered_algorithm`): the next run asks for it first, so the create call's first
batch of parts is signed rather than hashed again with another algorithm.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from .signing import new_session_id

try:
    import fcntl
except ImportError:  # Windows: no flock; every run gets a new session (and may wait)
    fcntl = None  # type: ignore[assignment]

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
ALGORITHMS_FILE = "algorithms.json"  # {server URL: the checksum_algorithm it chose last}


def state_dir() -> Path:
    """PARTWISE_STATE_DIR, else $XDG_STATE_HOME/partwise, else ~/.local/state/partwise."""
    if explicit := os.environ.get("PARTWISE_STATE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "partwise"


@contextlib.contextmanager
def local_session(file_fingerprint: str, directory: Path | None = None) -> Iterator[str]:
    """The session id to upload the file with, for the duration of the `with` block."""
    if fcntl is None:
        yield new_session_id()
        return
    folder = (directory or state_dir()) / "sessions"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A digest names the file: fingerprints hold characters no file name may.
        path = folder / hashlib.sha256(file_fingerprint.encode()).hexdigest()[:32]
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a read-only home: uploading matters more than the saved wait
        yield new_session_id()
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another live run uploads this file: join it with a session of ours
            yield new_session_id()
            return
        kept = os.pread(handle, 64, 0).decode(errors="replace").strip()
        if not SESSION_ID.fullmatch(kept):
            kept = new_session_id()
            os.ftruncate(handle, 0)
            os.pwrite(handle, kept.encode(), 0)
        yield kept
    finally:
        os.close(handle)  # releases the lock


def _algorithms(directory: Path) -> dict[str, str]:
    try:
        known = json.loads((directory / ALGORITHMS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(known, dict):
        return {}
    return {k: v for k, v in known.items() if isinstance(k, str) and isinstance(v, str)}


def remembered_algorithm(server: str, directory: Path | None = None) -> str | None:
    """The checksum_algorithm `server` chose for this machine's last new upload, if known."""
    return _algorithms(directory or state_dir()).get(server.rstrip("/"))


def remember_algorithm(server: str, algorithm: str, directory: Path | None = None) -> None:
    """Keep the checksum_algorithm `server` chose, for the next run to ask for first.

    Best effort: a state directory that cannot be written only costs the next run a hash.
    """
    folder = directory or state_dir()
    server = server.rstrip("/")
    known = _algorithms(folder)
    if known.get(server) == algorithm:
        return
    known[server] = algorithm
    temporary = folder / f".{ALGORITHMS_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(known, indent=1, sort_keys=True))
        os.replace(temporary, folder / ALGORITHMS_FILE)  # whole or not at all, for readers
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
