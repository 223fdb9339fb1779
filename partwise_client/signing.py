"""Presigned URLs for the senders, many parts per sign call, and the parts other sessions hold.

A sender asking for a part that has no fresh URL signs it together with the next parts whose
checksums are ready (up to the batch size), so most senders find their URL already there. A
URL close to its expires_at is signed again before use.

Sessions (README, "REST API"): every run names itself with a random session id. The server
does not sign a part for us while another live session holds it (it signed it, and signed or
reported within the last `session_idle` seconds): such parts come back as "leased", and the
sender raises Leased; the run comes back for them later (transfer.py), so two sessions never
send the same part at once and a silent session's parts go to whoever asks.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from .api import PartwiseApi
from .hashing import Checksums

SIGN_WAIT = 0.2  # seconds a sign call waits for the hasher to fill its batch
EXPIRY_MARGIN = 60.0  # seconds before expires_at a URL is no longer handed out


def new_session_id() -> str:
    """A random session id (22 characters of [A-Za-z0-9_-]): one per run."""
    return secrets.token_urlsafe(16)


class Leased(Exception):  # a condition, not a failure: the part is someone else's
    """Another live session holds this part: come back for it later."""

    def __init__(self, number: int) -> None:
        super().__init__(f"part {number} is being sent by another session")
        self.number = number


def fresh_for(part: dict[str, Any], wall_now: float) -> float:
    """Seconds a signed URL can be used without risking expiry in flight.

    Measured against our own clock: when the clocks disagree so much that the URL looks
    expired already, it is used anyway and S3's answer decides (a 403 re-signs it).
    """
    try:
        expires = datetime.fromisoformat(part["expires_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return float("inf")
    left = expires - wall_now
    if left <= 0:
        return float("inf")
    return left - min(EXPIRY_MARGIN, left / 4)


class Signer:
    """URLs for `numbers` (in sending order), signed in batches of at most `batch`."""

    def __init__(
        self,
        api: PartwiseApi,
        upload_id: str,
        checksums: Checksums,
        numbers: list[int],
        *,
        batch: int,
        session: str | None = None,
        on_sessions: Callable[[int], None] | None = None,
    ) -> None:
        self.api, self.upload_id, self.checksums = api, upload_id, checksums
        self.numbers = numbers
        self.batch = max(1, batch)
        self.session = session
        self.on_sessions = on_sessions or (lambda others: None)
        self.order = {number: index for index, number in enumerate(numbers)}
        self.signed: dict[int, tuple[dict[str, Any], float]] = {}  # number -> (part, fresh until)
        # Parts whose URL a sender took: a later batch must not sign them again (senders ask
        # in any order, so a batch starting lower can reach parts already taken).
        self.taken: set[int] = set()
        self.taken_until: dict[int, float] = {}  # number -> when the taken URL goes stale
        self.leased: set[int] = set()  # held by another live session, as the server said
        self.lock = threading.Lock()
        self.calls = 0

    def add(self, answer: dict[str, Any], *, key: str = "parts") -> None:
        """Take a sign answer: our own call's ("parts"), or the create call's first batch
        (key="signed": there "parts" are the parts S3 holds)."""
        signed_at, wall = time.monotonic(), time.time()
        for part in answer.get(key) or []:
            self.signed[part["number"]] = (part, signed_at + fresh_for(part, wall))
        self.leased.update(answer.get("leased") or [])
        if "other_sessions" in answer:
            self.on_sessions(int(answer["other_sessions"]))

    def is_fresh(self, number: int) -> bool:
        """Whether the URL a sender took for `number` can still be used (a retry after a wait)."""
        with self.lock:
            return time.monotonic() < self.taken_until.get(number, 0.0)

    def url_for(self, number: int, *, refresh: bool = False) -> dict[str, Any]:
        """A signed part for `number`: cached when fresh, else signed now with its followers.

        Raises Leased when another live session holds the part.
        """
        self.checksums.wait_for(number)
        with self.lock:
            if refresh:
                self.signed.pop(number, None)
            elif number in self.leased:
                raise Leased(number)
            self.taken.add(number)
            cached = self.signed.get(number)
            if cached is not None and time.monotonic() < cached[1]:
                return self._take(number)
            self.leased.discard(number)
            self._sign_from(number)
            if number in self.leased or number not in self.signed:
                raise Leased(number)
            return self._take(number)

    def _take(self, number: int) -> dict[str, Any]:
        part, fresh_until = self.signed.pop(number)  # each URL is taken once
        self.taken_until[number] = fresh_until
        return part

    def _sign_from(self, number: int) -> None:
        numbers = self.numbers
        wanted = min(self.batch, len(numbers) - self.order[number])
        # Give the hasher a moment to get `wanted` parts ahead: one call instead of several.
        self.checksums.wait_for(numbers[self.order[number] + wanted - 1], timeout=SIGN_WAIT)
        now = time.monotonic()
        batch = [number]
        for following in numbers[self.order[number] + 1 :]:
            if len(batch) >= self.batch or following not in self.checksums.done:
                break
            if following in self.taken or following in self.leased:
                continue
            cached = self.signed.get(following)
            if cached is None or now >= cached[1]:
                batch.append(following)
        self.calls += 1
        self.add(self.api.sign(self.upload_id, self._parts(batch), session=self.session))

    def _parts(self, numbers: Iterable[int]) -> list[dict[str, Any]]:
        return [{"number": n, "checksum": self.checksums.done[n]} for n in numbers]
