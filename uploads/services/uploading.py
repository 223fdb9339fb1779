"""Uploading: start an upload, sign its parts, record what clients report, sync with S3.

The client's word is only progress here; completion (completion.py) checks every part against
S3. Each function takes the upload, the acting user (`by`) and, for tests and other stores, the
storage to use (`get_storage()` when none is given).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.http import content_disposition_header

from ..conf import upload_settings
from ..exceptions import (
    ChecksumRequired,
    IdempotencyConflict,
    InvalidInput,
    PartConflict,
    QuotaExceeded,
    StorageFailed,
    UploadGone,
    UploadTooLarge,
)
from ..integrity import SHA256, choose_algorithm, integrity_of
from ..models import Upload, UploadPart
from ..parts import PartToSign, ReportedPart, SignedPart, StoredPart, plan_parts
from ..selectors import (
    OpenUsage,
    active_sessions,
    open_usage,
    other_sessions,
    resumable_upload,
    store_profile,
    with_parts,
)
from ..storage import MultipartStorage, get_storage
from .sessions import note_session
from .state import Actor, Status, User, new_expiry, require_owner, require_status, touch
from .validation import (
    check_checksum,
    check_checksum_algorithm,
    check_content_type,
    check_etag,
    check_part_numbers,
    clean_filename,
    key_segment,
)

logger = logging.getLogger(__name__)


def start_upload(
    *,
    owner: User,
    filename: str,
    size: int | None,
    content_type: str = "",
    checksum_algorithm: str = "",
    fingerprint: str = "",
    part_size: int | None = None,
    client_token: str | None = None,
    to_sign: Sequence[PartToSign] = (),
    join_same_file: bool = False,
    storage: MultipartStorage | None = None,
) -> tuple[Upload, bool]:
    """Plan the parts, create the S3 multipart upload under a server-generated key, record it.

    Returns (upload, created). The same `client_token` again returns the first upload with
    created=False; a different request under a used token is an IdempotencyConflict. With
    `join_same_file`, an upload of the same file (fingerprint, size, name) that a racing call
    created first is returned instead (created=False), so two windows picking one file at
    once share one upload.
    `size=None` starts an unplanned upload (Uppy never says how large the file is).
    `to_sign` (parts the caller will sign next) is checked against the plan before S3 is
    asked, so a create refused for them creates nothing.
    """
    conf = upload_settings()
    storage = storage or get_storage()
    filename = clean_filename(filename)
    content_type = check_content_type(content_type, filename)
    asked = check_checksum_algorithm(checksum_algorithm)
    # The server chooses the parts' digest from what the store verifies; the client follows.
    profile = store_profile(storage)
    checksum_algorithm = choose_algorithm(asked, profile=profile, setting=conf.part_integrity)
    plan = None
    if size is not None:
        if size < 0:
            raise InvalidInput("size must not be negative.", field="size")
        if size > conf.max_size:
            raise UploadTooLarge(f"The largest accepted upload is {conf.max_size} bytes.")
        preferred = part_size if part_size is not None else conf.part_size
        try:
            plan = plan_parts(size, preferred)
        except ValueError as error:
            raise InvalidInput(str(error), field="part_size") from error
    if to_sign and checksum_algorithm == asked:
        # (Parts hashed with another digest than the chosen one are signed later, not now.)
        check_parts_to_sign(plan.part_count if plan else None, checksum_algorithm, to_sign)

    if client_token:
        existing = Upload.objects.filter(owner=owner, client_token=client_token).first()
        if existing is not None:
            return _replay(existing, filename=filename, size=size), False

    check_quota(owner, size=size)  # before S3 is asked: a refused create costs S3 nothing
    upload_id = uuid.uuid4()
    # The key is the server's: a prefix, our UUID, and a tamed copy of the name for humans.
    key = f"{conf.key_prefix}{upload_id}/{key_segment(filename)}"
    s3_upload_id = storage.create_multipart_upload(
        key,
        content_type=content_type,
        checksum_algorithm=checksum_algorithm,
        # The key's segment may be cut (255 bytes); a download still gets the whole name.
        content_disposition=content_disposition_header(True, filename) or "",
    )
    now = timezone.now()
    try:
        with transaction.atomic():
            # Again under the owner's row lock: racing creates of one user are serialised, so
            # they cannot together pass a quota each alone would just meet.
            check_quota(owner, size=size, locked=True)
            if join_same_file and size is not None and fingerprint:
                # Under the same lock as every create of this owner: what a racing create of
                # this file recorded first is seen here, and joined.
                first = resumable_upload(
                    owner, fingerprint=fingerprint, size=size, filename=filename
                )
                if first is not None:
                    raise _CreatedByAnother(first)
            upload = Upload.objects.create(
                id=upload_id,
                owner=owner,
                filename=filename,
                size=size,
                content_type=content_type,
                key=key,
                s3_upload_id=s3_upload_id,
                part_size=plan.part_size if plan else None,
                part_count=plan.part_count if plan else None,
                checksum_algorithm=checksum_algorithm,
                integrity=integrity_of(checksum_algorithm, profile=profile),
                fingerprint=fingerprint,
                client_token=client_token or None,
                expires_at=new_expiry(now),
            )
    except BaseException as error:
        # Undo at once: an S3 upload with no row would only be found by the orphan sweep.
        try:
            storage.abort_multipart_upload(key, s3_upload_id)
        except StorageFailed:
            logger.warning("could not abort %s after a failed insert", key, exc_info=True)
        if isinstance(error, _CreatedByAnother):
            return error.upload, False
        if isinstance(error, IntegrityError) and client_token:
            # A concurrent create with the same token won the race: answer with its upload.
            existing = Upload.objects.filter(owner=owner, client_token=client_token).first()
            if existing is not None:
                return _replay(existing, filename=filename, size=size), False
        raise
    return upload, True


class _CreatedByAnother(Exception):
    """Leaves start_upload's transaction: a racing call created the upload of this file."""

    def __init__(self, upload: Upload) -> None:
        super().__init__(str(upload.pk))
        self.upload = upload


@dataclass(frozen=True)
class StartedUpload:
    """What a start-or-resume did: the upload (with its parts), whether it was created or
    resumed, and, when parts were asked for, the first batch signed."""

    upload: Upload
    created: bool
    resumed: bool
    signed: SignBatch | None
    other_sessions: int | None


def start_or_resume_upload(
    *,
    owner: User,
    filename: str,
    size: int,
    fingerprint: str = "",
    resume: bool = False,
    session: str = "",
    sign: Sequence[PartToSign] | None = None,
    storage: MultipartStorage | None = None,
    **options: Any,
) -> StartedUpload:
    """Start an upload, or with `resume` go on with the owner's newest one still uploading the
    same file (fingerprint, size and name); with `sign`, sign the first batch in the same call.

    A resumed upload is reconciled with S3 first, and the batch leaves out the parts S3 holds
    and the parts leased to another active session. `options` are `start_upload`'s.
    """
    storage = storage or get_storage()
    asked = check_checksum_algorithm(options.get("checksum_algorithm", ""))
    found = None
    if resume:
        if not fingerprint:
            raise InvalidInput("resume needs the file's fingerprint.", field="fingerprint")
        found = resumable_upload(
            owner, fingerprint=fingerprint, size=size, filename=clean_filename(filename)
        )
    if found is not None and asked and found.checksum_algorithm != asked:
        # Hashed with another digest than the upload's: the client signs later. (A resume
        # that names no algorithm signs with the upload's, as before the server chose one.)
        sign = None
    if found is not None:
        if sign:
            check_parts_to_sign(found.part_count, found.checksum_algorithm, sign)
        upload, created = sync_upload_parts(found, by=owner, storage=storage), False
    else:
        upload, created = start_upload(
            owner=owner,
            filename=filename,
            size=size,
            fingerprint=fingerprint,
            to_sign=sign or (),
            join_same_file=resume,
            storage=storage,
            **options,
        )
        if upload.checksum_algorithm != asked:
            sign = None  # the server chose another digest: the client hashes again, then signs
        if resume and not created and upload.fingerprint == fingerprint:
            # Joined the upload a racing call (another window) created a moment before.
            found = upload
            if sign:
                check_parts_to_sign(found.part_count, found.checksum_algorithm, sign)
            upload = sync_upload_parts(found, by=owner, storage=storage)
    batch = None
    if sign:
        batch = sign_batch(
            upload, parts=sign, by=owner, session=session, skip_held=True, storage=storage
        )
    elif session:
        note_session(upload, session, now=timezone.now())
    others = None  # only asked for by a client that knows of sessions (resume, sign, session)
    if batch is not None:
        others = batch.other_sessions
    elif resume or session:
        others = other_sessions(upload, session=session)
    return StartedUpload(
        upload=with_parts(upload),
        created=created,
        resumed=found is not None,
        signed=batch,
        other_sessions=others,
    )


def check_quota(owner: User, *, size: int | None, locked: bool = False) -> None:
    """Refuse an upload that would take the owner past UPLOADS_USER_MAX_OPEN_UPLOADS/_BYTES.

    Open uploads are the incomplete ones (each holds an S3 multipart upload); an unplanned
    (Uppy) upload declares no size and counts as one upload of 0 bytes until it completes.
    With `locked`, the owner's user row is locked (SELECT … FOR UPDATE) in the same query, so
    racing creates of one user are serialised until the transaction ends; on SQLite the
    IMMEDIATE transactions of the settings serialise every writer already.
    """
    conf = upload_settings()
    usage = _locked_open_usage(owner) if locked else open_usage(owner)
    if usage.uploads + 1 > conf.user_max_open_uploads:
        raise QuotaExceeded(
            f"You have {usage.uploads} open uploads, the most allowed "
            f"(UPLOADS_USER_MAX_OPEN_UPLOADS = {conf.user_max_open_uploads}): complete or "
            "abort some first.",
            limit="UPLOADS_USER_MAX_OPEN_UPLOADS",
        )
    if usage.bytes + (size or 0) > conf.user_max_open_bytes:
        raise QuotaExceeded(
            f"Your open uploads declare {usage.bytes} bytes; this one would take them past "
            f"UPLOADS_USER_MAX_OPEN_BYTES = {conf.user_max_open_bytes}.",
            limit="UPLOADS_USER_MAX_OPEN_BYTES",
        )


def _locked_open_usage(owner: User) -> OpenUsage:
    """`selectors.open_usage`, read while locking the owner's row: one query."""
    open_uploads = (
        Upload.objects.filter(owner=OuterRef("pk"), status__in=Upload.INCOMPLETE)
        .order_by()
        .values("owner")
    )
    uploads, size = (
        get_user_model()
        .objects.select_for_update()
        .filter(pk=owner.pk)
        .annotate(
            open_count=Subquery(open_uploads.annotate(n=Count("pk")).values("n")),
            open_bytes=Subquery(open_uploads.annotate(b=Sum("size")).values("b")),
        )
        .values_list("open_count", "open_bytes")
        .get()
    )
    return OpenUsage(uploads=uploads or 0, bytes=size or 0)


def _replay(existing: Upload, *, filename: str, size: int | None) -> Upload:
    if existing.filename != filename or existing.size != size:
        raise IdempotencyConflict(upload=str(existing.id))
    return existing


def sign_parts(
    upload: Upload,
    *,
    parts: Sequence[PartToSign],
    by: Actor,
    storage: MultipartStorage | None = None,
) -> list[SignedPart]:
    """Presigned UploadPart URLs for a batch of parts, each binding its size and checksum."""
    return _sign(upload, parts=parts, by=by, session="", count=False, storage=storage).parts


@dataclass(frozen=True)
class SignBatch:
    """What a sign call answers: the signed parts, the parts another live session holds (not
    signed), and how many active sessions besides the caller's work on the upload."""

    parts: list[SignedPart]
    leased: list[int] = field(default_factory=list)
    other_sessions: int = 0


def sign_batch(
    upload: Upload,
    *,
    parts: Sequence[PartToSign],
    by: Actor,
    session: str = "",
    skip_held: bool = False,
    storage: MultipartStorage | None = None,
) -> SignBatch:
    """`sign_parts` for a client session: the parts leased to another active session are left
    out (listed in `leased`), and the ones signed are leased to `session`.

    Without a session, every asked part is signed, as `sign_parts` does. With `skip_held`, parts
    the record says S3 holds are left out too (a start-or-resume asks for the parts to send);
    otherwise they are signed again, since re-sending a part is allowed.
    """
    return _sign(upload, parts=parts, by=by, session=session, skip_held=skip_held, storage=storage)


def _sign(
    upload: Upload,
    *,
    parts: Sequence[PartToSign],
    by: Actor,
    session: str,
    skip_held: bool = False,
    count: bool = True,
    storage: MultipartStorage | None = None,
) -> SignBatch:
    require_owner(upload, by)
    require_status(upload, Status.UPLOADING)
    checksums = check_parts_to_sign(upload.part_count, upload.checksum_algorithm, parts)
    plan = upload.plan
    conf = upload_settings()
    now = timezone.now()
    numbers = [part.number for part in parts]

    with transaction.atomic() if session else nullcontext():
        if session:
            # First: the touch is an UPDATE of the upload's row, which PostgreSQL keeps locked
            # to the end of this transaction (SQLite's IMMEDIATE transactions lock every
            # writer), so two sessions signing one upload take turns and never both take a
            # free part. A refused call rolls it back with the rest.
            touch(upload)
            now = timezone.now()  # after any wait for the lock
        active = active_sessions(upload, now=now) if count or session else set()
        if session:
            note_session(upload, session, now=now)
        recorded: dict[int, tuple[str, str, bool, str]] = {}
        if checksums or session or skip_held:
            # A batch is usually a run of consecutive parts: a range is one comparison in SQL,
            # where `IN` costs the ORM a parameter per part.
            ordered = sorted(numbers)
            if ordered[-1] - ordered[0] + 1 == len(ordered):
                chosen = Q(number__gte=ordered[0], number__lte=ordered[-1])
            else:
                chosen = Q(number__in=ordered)
            stored = UploadPart.objects.filter(chosen, upload=upload).values_list(
                "number", "checksum", "etag", "checksum_replaced", "leased_to"
            )
            recorded = {
                number: (checksum, etag, replaced, holder)
                for number, checksum, etag, replaced, holder in stored
            }
        held = {n for n, (_, etag, _, _) in recorded.items() if etag} if skip_held else set()
        # A part S3 already holds is never withheld: re-sending it is allowed, and no one is
        # sending it anymore.
        leased = sorted(
            n
            for n, (_, etag, _, holder) in recorded.items()
            if session and not etag and holder and holder != session and holder in active
        )
        skipped = held | set(leased)
        to_sign = [part for part in parts if part.number not in skipped]

        replaced: set[int] = set()  # unreported parts signed before with another checksum
        clashing = []
        for number, (checksum, etag, was_replaced, _) in recorded.items():
            if number not in checksums or number in skipped:
                continue
            # A part already uploaded keeps the checksum S3 verified: re-signing it with
            # another one would make the stored checksum lie about the bytes in S3.
            changed = bool(checksum) and checksum != checksums[number]
            if changed and etag:
                clashing.append(number)
            if changed or was_replaced:
                replaced.add(number)
        if clashing:
            raise PartConflict(
                "These parts are already uploaded with another checksum.", parts=clashing
            )
        if not session:
            touch(upload)  # only a call that will sign counts as activity
        rows = [
            {
                "number": part.number,
                "checksum": checksums.get(part.number)
                or (recorded[part.number][0] if part.number in recorded else ""),
                "size": plan.size_of(part.number) if plan else None,
                # A part signed now without a checksum keeps what its row said.
                "checksum_replaced": part.number in replaced
                or (part.number not in checksums and recorded.get(part.number, _NO_ROW)[2]),
                "signed_at": now,
                "leased_to": session,
            }
            for part in to_sign
            if session or part.number in checksums
        ]
        update = ["checksum", "checksum_replaced", "signed_at", *(["leased_to"] if session else [])]
        UploadPart.objects.upsert(upload, rows, update=update)

    to_presign = [
        PartToSign(
            number=part.number,
            size=plan.size_of(part.number) if plan else None,
            checksum=checksums.get(part.number, ""),
        )
        for part in to_sign
    ]
    signed = (
        (storage or get_storage()).presign_upload_parts(
            upload.key,
            upload.s3_upload_id,
            to_presign,
            expires_in=conf.url_expiry,
            checksum_algorithm=upload.checksum_algorithm or SHA256,
        )
        if to_presign
        else []
    )
    return SignBatch(signed, leased, other_sessions=len(active - {session}))


_NO_ROW = ("", "", False, "")


def check_parts_to_sign(
    part_count: int | None, checksum_algorithm: str, parts: Sequence[PartToSign]
) -> dict[int, str]:
    """Check a batch to sign (numbers, checksums the upload requires); answer its checksums."""
    check_part_numbers(part_count, [part.number for part in parts])
    checksums = {}
    for part in parts:
        if part.checksum:
            checksums[part.number] = check_checksum(part.checksum, checksum_algorithm or SHA256)
        elif checksum_algorithm:
            raise ChecksumRequired(parts=[part.number])
    return checksums


def record_parts(
    upload: Upload, *, parts: Sequence[ReportedPart], by: Actor, session: str = ""
) -> Upload:
    """Record parts the client says it uploaded (one or many); returns the upload's progress.

    The client's word is only progress: completion checks every part against S3. A `session`
    reporting stays active on the upload (its leased parts stay its own).
    """
    require_owner(upload, by)
    require_status(upload, Status.UPLOADING)
    check_part_numbers(upload.part_count, [part.number for part in parts])
    reported = {part.number: part for part in parts}
    etags = {number: check_etag(part.etag) for number, part in reported.items()}
    algorithm = upload.checksum_algorithm or SHA256
    for part in parts:
        if part.checksum:
            # Stored below when none was signed: never unchecked.
            check_checksum(part.checksum, algorithm)
    signed = dict(
        UploadPart.objects.filter(upload=upload, number__in=list(reported)).values_list(
            "number", "checksum"
        )
    )
    mismatched = [
        number
        for number, part in reported.items()
        if part.checksum and signed.get(number) and part.checksum != signed[number]
    ]
    if mismatched:
        raise PartConflict(
            "The checksum differs from the one the part was signed with.", parts=mismatched
        )
    if upload.checksum_algorithm:
        unsigned = sorted(n for n in reported if not signed.get(n) and not reported[n].checksum)
        if unsigned:
            raise ChecksumRequired(parts=unsigned)
    plan = upload.plan
    now = timezone.now()
    touch(upload)
    if session:
        note_session(upload, session, now=now)
    UploadPart.objects.upsert(
        upload,
        [
            {
                "number": number,
                "etag": etags[number],
                "checksum": signed.get(number) or part.checksum,
                "size": plan.size_of(number) if plan else None,
                "uploaded_at": now,
            }
            for number, part in reported.items()
        ],
        update=["etag", "checksum", "size", "uploaded_at"],
    )
    refresh_progress(upload)
    return upload


def sync_upload_parts(
    upload: Upload, *, by: Actor, storage: MultipartStorage | None = None
) -> Upload:
    """Bring the recorded parts in line with S3's ListParts; answer the upload with its parts.

    Recorded parts S3 does not have lose their ETag; parts S3 has that were never reported are
    recorded. Only an upload still in progress is reconciled; others answer from the database.
    """
    require_owner(upload, by)
    if upload.status == Status.UPLOADING:
        storage = storage or get_storage()
        try:
            stored = storage.list_parts(upload.key, upload.s3_upload_id)
        except UploadGone:
            # S3 completed it while its answer (or the HEAD after it) was lost: the object is
            # there, and settles the row instead of answering an error for a finished upload.
            from .completion import settle_gone_upload  # completion imports this module

            if not settle_gone_upload(upload, storage=storage):
                raise
            return with_parts(upload)
        reconcile_parts(upload, stored)
    return with_parts(upload)


def one_copy_per_part(
    stored: Sequence[StoredPart], recorded: dict[int, UploadPart]
) -> dict[int, StoredPart]:
    """S3's parts by number; of several copies of one number, the one the client reported.

    A part sent twice (two sessions, a retry) is one copy on AWS, the last. SeaweedFS lists
    every copy and completes with the one whose ETag the completion names, so the copy whose
    ETag was reported is the truth; without a match, the last listed stands for the part (and
    completion then refuses the reported ETag as a mismatch).
    """
    found: dict[int, StoredPart] = {}
    for part in stored:
        reported = recorded.get(part.number)
        held = found.get(part.number)
        if held is None or not (reported and reported.etag and held.etag == reported.etag):
            found[part.number] = part
    return found


def reconcile_parts(upload: Upload, stored: Sequence[StoredPart]) -> None:
    """Record what S3 holds: parts it has that differ or were never reported, and forget
    reported parts it does not have (progress follows)."""
    recorded = {part.number: part for part in UploadPart.objects.filter(upload=upload)}
    in_s3 = {
        number: part
        for number, part in one_copy_per_part(stored, recorded).items()
        if not upload.part_count or number <= upload.part_count
    }
    now = timezone.now()
    changed = [
        UploadPart(
            upload=upload,
            number=number,
            etag=part.etag,
            size=part.size,
            checksum=(recorded[number].checksum if number in recorded else "") or part.checksum,
            uploaded_at=now,
        )
        for number, part in in_s3.items()
        if number not in recorded
        or recorded[number].etag != part.etag
        or recorded[number].size != part.size
    ]
    gone = [number for number, part in recorded.items() if part.etag and number not in in_s3]
    if changed:
        UploadPart.objects.upsert(
            upload,
            [
                {
                    "number": part.number,
                    "etag": part.etag,
                    "size": part.size,
                    "checksum": part.checksum,
                    "uploaded_at": part.uploaded_at,
                }
                for part in changed
            ],
            update=["etag", "size", "uploaded_at"],
        )
    if gone:
        UploadPart.objects.filter(upload=upload, number__in=gone).update(etag="", uploaded_at=None)
    if changed or gone:
        refresh_progress(upload)


def refresh_progress(upload: Upload) -> None:
    """Rewrite the denormalised progress counters from the parts table, in one query."""
    totals = UploadPart.objects.filter(upload=upload).exclude(etag="")
    agg = totals.aggregate(parts=Count("pk"), size=Coalesce(Sum("size"), 0))
    upload.parts_uploaded, upload.bytes_uploaded = agg["parts"], agg["size"]
    Upload.objects.filter(pk=upload.pk).update(
        parts_uploaded=upload.parts_uploaded, bytes_uploaded=upload.bytes_uploaded
    )
