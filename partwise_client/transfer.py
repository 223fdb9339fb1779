"""The run: find or start the upload, send the missing parts in parallel, complete.

All state lives on the server, so stopping at any moment (Ctrl+C, a crash, SIGKILL) loses at
most the parts in flight, and a later run from any machine sends only what S3 does not have.
Memory is bounded by concurrency x READ_BLOCK: each sender streams one part.

The requests of one run, on a server that offers them (the upload JSON has `limits`): one
create that starts or resumes the upload and signs the parts hashed so far, a sign call per
100 parts beyond those, a report per 64 finished parts, one complete. The parts go out in the
modules named for their step: planning, hashing, signing (and the leases of other sessions),
sending (with the retry policy of retry.py), reports.

The part digest is the server's choice, per upload (`checksum_algorithm`: what its store
verifies). The run asks for the one this server chose last time (kept in the state directory,
sessions.py), hashes with it from the start, and hashes again with the answer's algorithm when
the server chose another (it then signs nothing in the create call). A store that verifies no
digest but answers each part's MD5 as its ETag has completion compare them: a part whose bytes
changed on the way comes back as `part_mismatch`, and is sent again.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import random
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .api import PartwiseApi, size_pool
from .digests import ALGORITHMS
from .errors import FileMismatch, NothingToResume, PartRefused, PartwiseError
from .fingerprint import fingerprint
from .hashing import DEFAULT_ALGORITHM, Checksums, hash_range, part_checksum
from .planning import (
    MAX_PARTS,
    REPORT_BATCH,
    REPORT_INTERVAL,
    SIGN_BATCH,
    Limits,
    guess_part_size,
    part_count,
    part_range,
)
from .reports import Reports
from .retry import Backoff
from .sending import PartSender, Progress, ProgressCallback, RateLimit
from .sessions import local_session, remember_algorithm, remembered_algorithm
from .signing import SIGN_WAIT, Leased, Signer, new_session_id

__all__ = [
    "FileMismatch",
    "NothingToResume",
    "PartRefused",
    "Transfer",
    "Uploader",
    "part_checksum",
    "upload_file",
]

RESUMABLE = "uploading"
FINISHED = ("completing", "completed")
# Answers meaning "this upload is no longer taking parts": often another session completed it.
NOT_UPLOADING = frozenset({"upload_gone", "upload_conflict", "upload_not_uploading"})
# Completions answering part_mismatch (parts S3 holds other bytes for) before the run gives up.
MISMATCH_ROUNDS = 3
UNVERIFIED = "partwise: this store verifies no part checksum; the upload of {name} is unverified"


@dataclass
class Transfer:
    """What one run did: the final upload and how many parts it sent itself."""

    upload: dict[str, Any]
    resumed: bool
    parts_sent: list[int] = field(default_factory=list)
    parts_skipped: int = 0
    already_uploaded: bool = False  # the file was uploaded before: nothing sent, nothing made
    other_sessions: int = 0  # the most other live sessions seen working on the upload


def _held(upload: dict[str, Any]) -> dict[int, int]:
    """Part number -> size of the parts the server (reconciled with S3) holds."""
    return {p["number"]: p.get("size") or 0 for p in upload.get("parts") or [] if p.get("etag")}


class Uploader:
    """Uploads files through a PartwiseApi; see `upload_file` for the options.

    again: upload even when the same file (fingerprint and bytes) is uploaded already; False
    answers the earlier upload instead (one more look-up per file).
    """

    def __init__(
        self,
        api: PartwiseApi,
        *,
        concurrency: int = 4,
        part_size: int | None = None,
        progress: ProgressCallback | None = None,
        limit_rate: float | None = None,
        backoff: Backoff | None = None,
        proof_parts: int = 1,
        on_event: Callable[[str], None] | None = None,
        sign_batch: int = SIGN_BATCH,
        report_batch: int = REPORT_BATCH,
        report_interval: float = REPORT_INTERVAL,
        lease_poll: float | None = None,
        again: bool = True,
    ) -> None:
        self.api = api
        self.concurrency = max(1, concurrency)
        self.part_size = part_size
        self.progress_callback = progress
        self.limit = RateLimit(limit_rate)
        self.backoff = backoff or api.backoff
        self.proof_parts = proof_parts
        self.on_event = on_event or (lambda message: None)
        self.stop = api.stop
        self.sign_batch = sign_batch
        self.report_batch = report_batch
        self.report_interval = report_interval
        self.lease_poll = lease_poll
        self.again = again
        self.server_part_size: int | None = None  # learnt from the last upload the server planned
        # The checksum_algorithm the server chose for the last new upload; the state directory
        # keeps it across runs (sessions.remember_algorithm), this when it cannot.
        self.server_algorithm: str | None = None
        self.session_id = new_session_id()
        self.others = 0
        self.sign_calls = self.report_calls = 0  # of the last run, for tests and benchmarks
        if self.concurrency + 4 > 16 and hasattr(api.session, "mount"):
            size_pool(api.session, self.concurrency + 4)  # a connection per sender, and spare

    # --- finding uploads of this file --------------------------------------------------------
    def _candidates(self, path: Path, *, status: str = "") -> list[dict[str, Any]]:
        size = path.stat().st_size
        return [
            upload
            for upload in self.api.list_uploads(status=status, fingerprint=fingerprint(path))
            if upload["size"] == size and upload["filename"] == path.name and upload["part_size"]
        ]

    def find_resumable(self, path: Path, *, exclude: str = "") -> dict[str, Any] | None:
        """The unfinished upload of this file, proven by its bytes; None when there is none.

        Raises FileMismatch when uploads with this fingerprint exist but none holds this
        file's bytes (a different file with the same name, size, date and edges).
        """
        refused = []
        for candidate in self._candidates(path, status=RESUMABLE):
            if candidate["checksum_algorithm"] not in ALGORITHMS or candidate["id"] == exclude:
                continue  # no digest: nothing would prove the uploaded parts are this file's
            upload = self.api.get_upload(candidate["id"], session=self.session_id)
            if self.holds_same_bytes(path, upload):
                return upload
            refused.append(candidate["id"])
        if refused:
            raise FileMismatch(
                f"{path} is not the file of the unfinished upload {', '.join(refused)}: "
                "an uploaded part's checksum differs.",
                code="file_mismatch",
            )
        return None

    def find_finished(
        self, path: Path, candidates: list[dict[str, Any]] | None = None
    ) -> dict[str, Any] | None:
        """The upload of this file whose completion started (completing or completed), proven
        by its bytes; None when there is none. `candidates`: the fingerprint's uploads, when
        listed already."""
        for candidate in self._candidates(path) if candidates is None else candidates:
            if candidate["status"] in FINISHED:
                upload = self.api.get_upload(candidate["id"])
                if self.holds_same_bytes(path, upload):
                    return upload
        return None

    def holds_same_bytes(self, path: Path, upload: dict[str, Any]) -> bool:
        """Hash uploaded parts of the local file with the upload's checksum_algorithm and
        compare with the server's checksums."""
        uploaded = [p for p in upload.get("parts") or [] if p.get("etag") and p.get("checksum")]
        algorithm = upload.get("checksum_algorithm") or DEFAULT_ALGORITHM
        if uploaded and algorithm not in ALGORITHMS:
            return False  # a digest this client cannot compute proves nothing
        size = path.stat().st_size
        for part in random.sample(uploaded, min(self.proof_parts, len(uploaded))):
            start, end = part_range(upload["size"], upload["part_size"], part["number"])
            if end > size:
                return False
            if hash_range(path, start, end - start, algorithm=algorithm) != part["checksum"]:
                return False
        return True

    # --- the part digest the server chooses ----------------------------------------------
    def asked_algorithm(self) -> str:
        """The checksum_algorithm to ask for: the one this server chose last, else SHA-256."""
        remembered = remembered_algorithm(self.api.server) or self.server_algorithm
        return remembered if remembered in ALGORITHMS else DEFAULT_ALGORITHM

    def _remember_algorithm(self, upload: dict[str, Any]) -> None:
        """Keep the algorithm the server chose for a new upload (a resumed one's is older)."""
        chosen = upload.get("checksum_algorithm")
        if upload.get("resumed") or chosen not in ALGORITHMS:
            return
        self.server_algorithm = chosen
        remember_algorithm(self.api.server, chosen)

    # --- the run ---------------------------------------------------------------------------
    def upload(
        self, path: str | os.PathLike[str], *, resume: str = "auto", again: bool | None = None
    ) -> Transfer:
        """Upload `path`. resume: "auto" (resume when found), "never", or "required"."""
        path = Path(path)
        with local_session(fingerprint(path)) as session_id:
            self.session_id, self.others = session_id, 0
            return self._upload(path, resume=resume, again=again)

    def _upload(self, path: Path, *, resume: str, again: bool | None) -> Transfer:
        self.sign_calls = self.report_calls = 0
        again = self.again if again is None else again
        if resume == "required":
            upload = self._find_to_resume(path)
            if isinstance(upload, Transfer):
                return upload
            return self._run(path, upload, resumed=True)
        if not again:
            listed = self._candidates(path)
            finished = self.find_finished(path, listed)
            if resume == "auto" and not self._may_resume(path, listed):
                resume = "never"  # say so, and do not let the create call resume it
            if finished is not None:
                self.on_event(f"{path.name} is already uploaded as {finished['id']}.")
                if finished["status"] != "completed":
                    finished = self.api.complete_upload(finished["id"])
                return Transfer(
                    upload=finished,
                    resumed=False,
                    parts_skipped=finished["part_count"],
                    already_uploaded=True,
                )
        size = path.stat().st_size
        guessed = guess_part_size(size, self.part_size or self.server_part_size)
        checksums = self._hasher(path, size, guessed, algorithm=self.asked_algorithm())
        try:
            upload, first = self._start(path, size, checksums, resume=resume)
        except BaseException:
            checksums.cancel()
            raise
        algorithm = upload.get("checksum_algorithm", checksums.algorithm)
        self._remember_algorithm(upload)
        if upload["part_size"] != guessed or algorithm != checksums.algorithm:
            # The server cut the file otherwise, or chose another digest (then it signed
            # nothing): hash its parts its way instead, and sign them with sign calls.
            checksums.cancel()
            checksums = self._hasher(path, size, upload["part_size"], algorithm=algorithm)
            first = None
        planned = upload["part_size"] == guessed and upload["part_count"] < MAX_PARTS // 2
        if planned and not self.part_size:
            self.server_part_size = upload["part_size"]
        resumed = bool(upload.get("resumed"))
        return self._run(path, upload, resumed=resumed, checksums=checksums, first=first)

    def _may_resume(self, path: Path, listed: list[dict[str, Any]]) -> bool:
        """Whether an unfinished upload among `listed` (if any) holds this file's bytes.

        Known before the create call, so that call does not resume, and sign parts of, an
        upload of another file that looks like this one (its leases would hold up the real
        file's resume for session_idle seconds).
        """
        unfinished = [u for u in listed if u["status"] == RESUMABLE]
        for candidate in unfinished:
            if self.holds_same_bytes(path, self.api.get_upload(candidate["id"])):
                return True
        if unfinished:
            self.on_event(
                f"{path} is not the file of the unfinished upload "
                f"{', '.join(u['id'] for u in unfinished)}: an uploaded part's checksum differs. "
                "Starting a new upload."
            )
        return not unfinished

    def _hasher(
        self,
        path: Path,
        size: int,
        part_size: int,
        numbers: list[int] | None = None,
        *,
        algorithm: str,
    ) -> Checksums:
        """Hash `numbers` (every part by default) in order with `algorithm`, from now on."""
        if numbers is None:
            numbers = list(range(1, part_count(size, part_size) + 1))
        return Checksums(
            path,
            size=size,
            part_size=part_size,
            numbers=numbers,
            stop=self.stop,
            algorithm=algorithm,
        ).start()

    def _find_to_resume(self, path: Path) -> dict[str, Any] | Transfer:
        upload = self.find_resumable(path)
        if upload is not None:
            return upload
        finished = self.find_finished(path)
        if finished is None:
            raise NothingToResume(
                f"No unfinished upload of {path} was found.", code="nothing_to_resume"
            )
        # A run stopped while completing (killed, or its answer lost): finish or report it.
        self.on_event(f"Upload {finished['id']} of {path.name} is {finished['status']}.")
        return Transfer(
            upload=self.api.complete_upload(finished["id"]),
            resumed=True,
            parts_skipped=finished["part_count"],
        )

    def _start(
        self, path: Path, size: int, checksums: Checksums, *, resume: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Start or resume the upload in one call that also signs the parts hashed so far.

        Answers the upload and the create call's sign answer ("signed", "leased"); the
        caller drops the latter when the server chose another algorithm than `checksums`'.
        """
        wanted = checksums.numbers[: max(1, min(self.sign_batch, len(checksums.numbers)))]
        # The first parts to send are hashed while nothing else can happen yet; a short wait
        # lets the create call sign many of them.
        checksums.wait_for(wanted[min(self.concurrency, len(wanted)) - 1], timeout=None)
        checksums.wait_for(wanted[-1], timeout=SIGN_WAIT)
        fields: dict[str, Any] = {
            "filename": path.name,
            "size": size,
            "content_type": mimetypes.guess_type(path.name)[0] or "",
            "checksum_algorithm": checksums.algorithm,
            "fingerprint": fingerprint(path),
            "client_token": uuid.uuid4().hex,
            "session": self.session_id,
            "sign": {"parts": checksums.ready(wanted)},
        }
        if self.part_size:
            fields["part_size"] = self.part_size
        if resume == "auto":
            fields["resume"] = True
        try:
            upload = self.api.create_upload(**fields)
        except PartwiseError as error:
            if error.http_status != 400:
                raise
            # A server allowing fewer parts per call than our first batch (its limits are in
            # the answer we did not get): the same create, without the batch.
            del fields["sign"]
            upload = self.api.create_upload(**fields)
        if "limits" not in upload:  # a server from before start-or-resume and first batches
            return self._resume_on_an_older_server(path, upload, resume=resume), None
        if upload.get("resumed") and not self.holds_same_bytes(path, upload):
            # Another file looks like this one: leave its upload alone, start afresh.
            self.on_event(
                f"{path} is not the file of the unfinished upload {upload['id']}: an uploaded "
                "part's checksum differs. Starting a new upload."
            )
            del fields["resume"]
            fields["client_token"] = uuid.uuid4().hex
            upload = self.api.create_upload(**fields)
        return upload, upload

    def _resume_on_an_older_server(
        self, path: Path, created: dict[str, Any], *, resume: str
    ) -> dict[str, Any]:
        if resume != "auto":
            return created
        try:
            found = self.find_resumable(path, exclude=created["id"])
        except FileMismatch as mismatch:
            self.on_event(f"{mismatch.detail} Starting a new upload.")
            return created
        if found is None:
            return created
        with contextlib.suppress(PartwiseError, requests.RequestException):
            self.api.abort_upload(created["id"])  # made before we could know: not needed
        return {**found, "resumed": True}

    def _run(
        self,
        path: Path,
        upload: dict[str, Any],
        *,
        resumed: bool,
        checksums: Checksums | None = None,
        first: dict[str, Any] | None = None,
    ) -> Transfer:
        size = path.stat().st_size
        held = _held(upload)
        todo = [n for n in range(1, upload["part_count"] + 1) if n not in held]
        if checksums is None:
            algorithm = upload.get("checksum_algorithm") or ""
            checksums = self._hasher(path, size, upload["part_size"], todo, algorithm=algorithm)
        checksums.skip(held)
        if resumed:
            self.on_event(
                f"Resuming upload {upload['id']} of {path.name}: {len(held)} of "
                f"{upload['part_count']} parts already uploaded, sending {len(todo)}."
            )
        else:
            self.on_event(
                f"Started upload {upload['id']} of {path.name} ({upload['part_count']} parts)."
            )
        if upload.get("unverified"):
            self.on_event(UNVERIFIED.format(name=path.name))
        self._sessions(upload.get("other_sessions"))
        progress = Progress(size, self.progress_callback)
        progress.add(sum(held.values()))
        transfer = Transfer(upload=upload, resumed=resumed, parts_skipped=len(held))
        limits = Limits.of(
            upload,
            sign_batch=self.sign_batch,
            report_batch=self.report_batch,
            report_interval=self.report_interval,
        )
        reports = Reports(
            self.api,
            upload["id"],
            batch=limits.report_batch,
            interval=limits.report_interval,
            session=self.session_id,
            on_sessions=self._sessions,
        )
        try:
            sending = (checksums, todo, progress, transfer, reports, limits, first)
            self._send_all(path, upload, *sending)
            transfer.upload = self._complete(path, upload, progress, transfer, reports, limits)
        except PartwiseError as error:
            if error.code not in NOT_UPLOADING and error.http_status not in (409, 410):
                raise
            # Another session may have completed it while we were sending: then all is well.
            current = self.api.get_upload(upload["id"])
            if current["status"] not in FINISHED:
                raise
            transfer.upload = self.api.complete_upload(upload["id"])
        finally:
            self.stop_hasher(checksums)
            self.report_calls = reports.calls
        transfer.other_sessions = max(transfer.other_sessions, self.others)
        return transfer

    def _complete(
        self,
        path: Path,
        upload: dict[str, Any],
        progress: Progress,
        transfer: Transfer,
        reports: Reports,
        limits: Limits,
    ) -> dict[str, Any]:
        """Complete the upload; parts S3 holds other bytes for (409 part_mismatch: its ETag is
        not the MD5 signed, so they were corrupted on the way) are sent again, and completion
        asked again, at most MISMATCH_ROUNDS times."""
        rounds = 0
        while True:
            try:
                return self.api.complete_upload(upload["id"])
            except PartwiseError as error:
                if error.code != "part_mismatch" or rounds >= MISMATCH_ROUNDS:
                    raise
                parts = error.extra.get("parts") or []
                numbers = sorted(
                    {n for n in parts if isinstance(n, int) and 1 <= n <= upload["part_count"]}
                )
                if not numbers:
                    raise
            rounds += 1
            self.on_event(
                f"S3 holds other bytes than were sent for part{'s' if len(numbers) > 1 else ''} "
                f"{', '.join(map(str, numbers))} of {path.name}: sending "
                f"{'them' if len(numbers) > 1 else 'it'} again."
            )
            for number in numbers:  # those bytes count again once they arrive
                start, end = part_range(upload["size"], upload["part_size"], number)
                progress.add(start - end)
            checksums = self._hasher(
                path,
                upload["size"],
                upload["part_size"],
                numbers,
                algorithm=upload.get("checksum_algorithm") or "",
            )
            try:
                self._send_all(
                    path, upload, checksums, numbers, progress, transfer, reports, limits, None
                )
            finally:
                self.stop_hasher(checksums)

    def stop_hasher(self, checksums: Checksums) -> None:
        checksums.cancelled.set()
        checksums.wake()
        checksums.join()

    def _sessions(self, others: object) -> None:
        """Note how many other live sessions work on the upload; say so when it changes."""
        if not isinstance(others, int) or others == self.others:
            return
        if others > 0:
            self.on_event(
                f"Also uploading in {others} other session{'s' if others > 1 else ''}: "
                "sharing the parts."
            )
        self.others = others

    def _send_all(
        self,
        path: Path,
        upload: dict[str, Any],
        checksums: Checksums,
        todo: list[int],
        progress: Progress,
        transfer: Transfer,
        reports: Reports,
        limits: Limits,
        first: dict[str, Any] | None,
    ) -> None:
        """Send `todo`; parts another live session holds are left to it and waited for."""
        pending, said = todo, False
        while pending:
            leased = self._send_round(
                path, upload, checksums, pending, progress, transfer, reports, limits, first
            )
            first = None
            if not leased:
                return
            if not said:
                self.on_event(
                    f"{len(leased)} parts of {path.name} are being sent by another session; "
                    "waiting for them."
                )
                said = True
            pending = self._wait_for_others(upload, leased, limits, progress)

    def _wait_for_others(
        self, upload: dict[str, Any], leased: list[int], limits: Limits, progress: Progress
    ) -> list[int]:
        """Poll until another session sent some of `leased`, or went silent (its leases lapse
        after session_idle seconds: then they are ours to send). The parts still missing."""
        poll = self.lease_poll or max(0.5, min(limits.session_idle / 3, 10.0))
        counted: set[int] = set()
        while True:
            if self.stop.wait(poll):
                raise KeyboardInterrupt
            current = self.api.get_upload(upload["id"], session=self.session_id)
            self._sessions(current.get("other_sessions"))
            if current["status"] != RESUMABLE:
                return []  # completed (or completing) by the other: complete answers it
            held = _held(current)
            for number in set(leased) & held.keys() - counted:
                progress.add(held[number])  # the other session's bytes count for the file
                counted.add(number)
            left = [n for n in leased if n not in held]
            if len(left) < len(leased) or not current.get("other_sessions"):
                return left

    def _send_round(
        self,
        path: Path,
        upload: dict[str, Any],
        checksums: Checksums,
        numbers: list[int],
        progress: Progress,
        transfer: Transfer,
        reports: Reports,
        limits: Limits,
        first: dict[str, Any] | None,
    ) -> list[int]:
        """Send `numbers` with `concurrency` workers; every finished part is reported on return.

        Answers the parts another live session holds (not sent).
        """
        signer = Signer(
            self.api,
            upload["id"],
            checksums,
            numbers,
            batch=limits.sign_batch,
            session=self.session_id,
            on_sessions=self._sessions,
        )
        if first is not None:
            signer.add(first, key="signed")
        sender = PartSender(
            self.api,
            path=path,
            size=upload["size"],
            part_size=upload["part_size"],
            progress=progress,
            limit=self.limit,
            backoff=self.backoff,
        )
        leased: list[int] = []
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="partwise-part")
        try:
            pending: set[Future[int]] = {
                pool.submit(sender.send, n, signer, reports) for n in numbers
            }
            while pending:
                # A short timeout keeps the main thread responsive to Ctrl+C and reports fresh.
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        transfer.parts_sent.append(future.result())  # re-raises a part's error
                    except Leased as held:
                        leased.append(held.number)
                if reports.due():
                    reports.flush_due()
            reports.flush()  # everything, before the caller completes the upload
        except BaseException as error:
            self.stop.set()  # workers stop at their next block; nothing half-done is recorded
            checksums.wake()
            pool.shutdown(wait=True, cancel_futures=True)
            # Parts S3 has: tell the server on the way out, else it finds them when it reconciles.
            with contextlib.suppress(PartwiseError, requests.RequestException):
                reports.flush(best_effort=True)
            if not isinstance(error, KeyboardInterrupt):
                # The workers are gone; the caller may still ask the server why (another
                # session completed the upload?), which a set stop would refuse.
                self.stop.clear()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.sign_calls += signer.calls
        return sorted(leased)


def upload_file(
    path: str | os.PathLike[str],
    *,
    server: str,
    token: str,
    concurrency: int = 4,
    part_size: int | None = None,
    progress: ProgressCallback | None = None,
    resume: str = "auto",
    limit_rate: float | None = None,
) -> dict[str, Any]:
    """Upload a file to Partwise and return the completed upload (the API's JSON object).

    `progress(bytes_done, bytes_total)` is called from worker threads as bytes leave. With
    resume="auto" an unfinished upload of the same file (same fingerprint, and an uploaded
    part's checksum matching) is continued, also while another session is sending it (the two
    share the parts); "required" raises NothingToResume when there is none; "never" always
    starts a new upload.
    """
    api = PartwiseApi(server, token)
    uploader = Uploader(
        api, concurrency=concurrency, part_size=part_size, progress=progress, limit_rate=limit_rate
    )
    return uploader.upload(path, resume=resume).upload
