"""Completion: the upload's parts checked against S3, the object made, the result settled.

`complete_upload` runs four named steps: claim (compare-and-set to `completing`, or answer a
racing or finished completion), check the parts S3 holds against the plan and the reported
ETags, complete in S3, and settle from the object itself (a HEAD decides, whatever the
completion call answered). Apps learn of a completed upload from the `upload_completed`
signal, sent once the completion has committed; the tasks subscribe to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from ..conf import upload_settings
from ..exceptions import (
    CompletionUnknown,
    PartMismatch,
    PartMissing,
    PartRefused,
    StorageFailed,
    StorageRefused,
    UploadConflict,
    UploadGone,
    UploadTooLarge,
)
from ..integrity import MD5, md5_hex
from ..models import Integrity, Upload, UploadPart
from ..parts import MIN_PART_SIZE, ReportedPart, StoredPart
from ..selectors import store_profile, with_parts
from ..signals import send_upload_completed
from ..storage import MultipartStorage, get_storage
from .cleanup import abort_until_gone
from .state import (
    Actor,
    Status,
    holding_completion,
    require_owner,
    require_status,
    take_over_dead_completion,
    transition,
    wait_for_racing_completion,
)
from .uploading import one_copy_per_part, reconcile_parts, record_parts, refresh_progress


def complete_upload(
    upload: Upload,
    *,
    by: Actor,
    storage: MultipartStorage | None = None,
    part_count: int | None = None,
) -> Upload:
    """Check every part against S3, complete the object, and confirm its size.

    Exactly parts 1..N must be in S3, each of its planned size (every part but the last at
    least 5 MiB for unplanned uploads), each with the ETag the client reported. A missing part
    puts the upload back to `uploading` and answers PartMissing with the numbers. Repeating the
    call on a completed upload answers the same result; two racing calls cannot both complete.

    For an unplanned (Uppy) upload, `part_count` is how many parts the client lists: the object
    is exactly parts 1..part_count, whatever else S3 holds. An unplanned upload whose parts add
    up to more than UPLOADS_MAX_SIZE is refused (UploadTooLarge) and aborted in S3.
    """
    storage = storage or get_storage()
    require_owner(upload, by)
    if _claim(upload, storage):
        with holding_completion(upload):
            checked = _check_parts_in_s3(upload, storage, part_count=part_count)
            if checked is not None:
                parts, size = checked
                _complete_in_s3(upload, storage, parts, expected_size=size)
    return with_parts(upload)


def record_parts_and_complete(
    upload: Upload,
    *,
    parts: Sequence[ReportedPart],
    by: Actor,
    storage: MultipartStorage | None = None,
) -> Upload:
    """Record the ETags a client lists at completion (Uppy does), then complete.

    Recording them first makes completion compare them with S3's parts. The list is recorded
    in batches of the sign limit; a racing completion that got there first answers this call
    too, and a completed upload answers as it is.
    """
    if upload.status == Status.UPLOADING:
        batch = upload_settings().sign_batch_max
        try:
            for start in range(0, len(parts), batch):
                record_parts(upload, parts=parts[start : start + batch], by=by)
        except UploadConflict:
            if upload.status not in (Status.COMPLETING, Status.COMPLETED):
                raise
    return complete_upload(upload, by=by, storage=storage, part_count=len(parts))


# --- the steps -------------------------------------------------------------------------------
def _claim(upload: Upload, storage: MultipartStorage) -> bool:
    """Move the upload to `completing` for this call: True when this call completes it.

    False when it is (or has just become) completed, so the caller answers it as it is. A
    racing call's outcome is waited for; a `completing` row of a call that died is settled from
    the object or, once its claim goes unrenewed past COMPLETION_TAKEOVER_AFTER, taken
    over. Otherwise UploadConflict.
    """
    if upload.status == Status.COMPLETED:
        return False
    if transition(upload, [Status.UPLOADING], Status.COMPLETING):
        return True
    if upload.status == Status.COMPLETING and not settle_from_object(upload, storage=storage):
        # Another call is completing it: its outcome is this call's answer too.
        wait_for_racing_completion(upload)
    if upload.status == Status.COMPLETED:
        return False
    if upload.status == Status.COMPLETING:
        # Still completing: a slow S3, or a call that died half-way (the object settles it).
        if settle_from_object(upload, storage=storage):
            return False
        if take_over_dead_completion(upload) and transition(
            upload, [Status.UPLOADING], Status.COMPLETING
        ):
            return True
        raise UploadConflict(
            "The upload is being completed; ask again shortly.", status=upload.status
        )
    if transition(upload, [Status.UPLOADING], Status.COMPLETING):
        # The racing call gave it back (a part missing): this call checks again itself.
        return True
    # Any other status is final for completion.
    require_status(upload, Status.UPLOADING)
    raise UploadConflict("The upload is being completed; ask again shortly.", status=upload.status)


def _check_parts_in_s3(
    upload: Upload, storage: MultipartStorage, *, part_count: int | None = None
) -> tuple[list[StoredPart], int] | None:
    """The parts to complete with and the object's size; None when the object settled it."""
    try:
        stored = storage.list_parts(upload.key, upload.s3_upload_id)
        profile = store_profile(storage)
        return check_parts_for_completion(
            upload,
            stored,
            part_count=part_count,
            equal_part_sizes=bool(profile and profile.equal_part_sizes),
            md5_etags=bool(profile and profile.etag_is_md5),
        )
    except UploadTooLarge as error:
        # Only an unplanned upload gets here (a planned one was refused at creation): nothing
        # of it may stay in S3.
        transition(upload, [Status.COMPLETING], Status.ABORTED, failure_reason=error.detail)
        abort_until_gone(upload.key, upload.s3_upload_id, storage=storage)
        raise
    except (PartMissing, PartMismatch):
        transition(upload, [Status.COMPLETING], Status.UPLOADING)
        raise
    except UploadGone:
        # A completion that died after S3 completed: the object is there.
        try:
            settled = settle_from_object(upload, storage=storage)
        except StorageFailed:
            settled = False  # the HEAD failed too: give the upload back for the next retry
        if settled:
            return None
        transition(upload, [Status.COMPLETING], Status.UPLOADING)
        raise
    except StorageFailed:
        transition(upload, [Status.COMPLETING], Status.UPLOADING)
        raise


def _complete_in_s3(
    upload: Upload, storage: MultipartStorage, parts: list[StoredPart], *, expected_size: int
) -> None:
    try:
        storage.complete_multipart_upload(
            upload.key, upload.s3_upload_id, parts, checksum_algorithm=upload.checksum_algorithm
        )
    except CompletionUnknown:
        try:
            settled = settle_from_object(upload, storage=storage, expected_size=expected_size)
        except StorageFailed:
            # Neither the completion nor the HEAD that would settle it got an answer: give the
            # upload back, so that a retried complete settles it (S3 then answers "no such
            # upload" if it did complete, and the object decides) instead of waiting for the
            # take-over of a dead completion.
            transition(upload, [Status.COMPLETING], Status.UPLOADING)
            raise
        if settled:
            return
        transition(upload, [Status.COMPLETING], Status.UPLOADING)
        raise
    except PartRefused as error:
        suspects = _parts_to_send_again(upload)
        if not suspects:
            transition(upload, [Status.COMPLETING], Status.FAILED, failure_reason=str(error))
            raise
        # A part signed twice with different checksums may hold the bytes of the first
        # signature: S3 refuses the checksum now recorded. Sending it again mends it.
        UploadPart.objects.filter(upload=upload, number__in=suspects).update(
            etag="", uploaded_at=None, checksum_replaced=False
        )
        refresh_progress(upload)
        transition(upload, [Status.COMPLETING], Status.UPLOADING)
        raise PartMismatch(
            "S3 holds other bytes for these parts than their checksum says: send them again.",
            parts=suspects[:1000],
        ) from error
    except StorageRefused as error:
        # S3 looked at the parts and said no: keep the reason, the upload cannot finish.
        transition(upload, [Status.COMPLETING], Status.FAILED, failure_reason=str(error))
        raise
    except StorageFailed:
        transition(upload, [Status.COMPLETING], Status.UPLOADING)
        raise
    try:
        settled = settle_from_object(upload, storage=storage, expected_size=expected_size)
    except StorageFailed:
        # S3 completed, and the HEAD that records the object failed: give the upload back as
        # above; the retry's ListParts answers "no such upload" and the object settles it.
        transition(upload, [Status.COMPLETING], Status.UPLOADING)
        raise
    if not settled:
        raise StorageFailed("The completed object could not be found.", s3_code="")


def check_parts_for_completion(
    upload: Upload,
    stored: Sequence[StoredPart],
    *,
    part_count: int | None = None,
    equal_part_sizes: bool = False,
    md5_etags: bool = False,
) -> tuple[list[StoredPart], int]:
    """The parts to complete with (S3's copies, with the signed checksums) and the total size.

    Raises PartMissing for a gap, PartMismatch for a wrong size, ETag or a missing checksum
    (and, with `equal_part_sizes`, the store's rule, for unequal non-final parts of an
    unplanned upload), UploadTooLarge for an unplanned upload over UPLOADS_MAX_SIZE.
    """
    recorded = {part.number: part for part in UploadPart.objects.filter(upload=upload)}
    in_s3 = one_copy_per_part(stored, recorded)
    if upload.part_count:
        count = upload.part_count
    elif part_count:
        count = part_count  # the parts the client listed, strays in S3 left out
    else:
        # Unplanned: the last part is the highest one S3 holds or the client reported, so a
        # reported part that never reached S3 is missing rather than silently left out.
        reported = [number for number, part in recorded.items() if part.etag]
        if not in_s3 and not reported:
            raise PartMissing("No part has been uploaded.", missing_parts=[1])
        count = max([*in_s3, *reported])
    missing = [number for number in range(1, count + 1) if number not in in_s3]
    if missing:
        raise PartMissing(
            f"{len(missing)} of {count} parts are not in storage.", missing_parts=missing[:1000]
        )
    plan = upload.plan
    wrong_size = [
        number
        for number in range(1, count + 1)
        if (plan and in_s3[number].size != plan.size_of(number))
        or (not plan and number < count and in_s3[number].size < MIN_PART_SIZE)
        or (
            not plan and equal_part_sizes and number < count and in_s3[number].size != in_s3[1].size
        )
    ]
    if wrong_size:
        raise PartMismatch("These parts do not have their planned size.", parts=wrong_size[:1000])
    wrong_etag = [
        number
        for number in range(1, count + 1)
        if number in recorded
        and recorded[number].etag
        and recorded[number].etag != in_s3[number].etag
    ]
    if wrong_etag:
        raise PartMismatch(
            "These parts in storage are not the ones reported.", parts=wrong_etag[:1000]
        )
    if upload.checksum_algorithm:
        unchecked = [
            n for n in range(1, count + 1) if not (recorded.get(n) and recorded[n].checksum)
        ]
        if unchecked:
            raise PartMismatch("These parts have no signed checksum.", parts=unchecked[:1000])
    if upload.checksum_algorithm == MD5 and (md5_etags or upload.integrity == Integrity.ETAG):
        # The store's part ETag is the part's MD5: a part whose bytes changed on the way (a
        # store that verifies nothing), or that holds the bytes of an earlier signature with
        # another MD5 (S3 keeps no MD5 to refuse at completion), is caught here, sent again.
        corrupted = [
            n for n in range(1, count + 1) if in_s3[n].etag != md5_hex(recorded[n].checksum)
        ]
        if corrupted:
            UploadPart.objects.filter(upload=upload, number__in=corrupted).update(
                etag="", uploaded_at=None
            )
            refresh_progress(upload)
            raise PartMismatch(
                "S3 holds other bytes for these parts than their MD5 says: send them again.",
                parts=corrupted[:1000],
            )
    final = [
        StoredPart(
            number=number,
            size=in_s3[number].size,
            etag=in_s3[number].etag,
            checksum=recorded[number].checksum if upload.checksum_algorithm else "",
        )
        for number in range(1, count + 1)
    ]
    total = sum(in_s3[n].size for n in range(1, count + 1))
    max_size = upload_settings().max_size
    if plan is None and total > max_size:
        raise UploadTooLarge(
            f"The parts add up to {total} bytes; the largest accepted upload is {max_size}."
        )
    # S3 is the source of truth for parts: record what it holds before completing.
    reconcile_parts(upload, [in_s3[n] for n in range(1, count + 1)])
    return final, total


def _parts_to_send_again(upload: Upload) -> list[int]:
    """Parts re-signed with another checksum before their report: the suspects of a refusal."""
    return list(
        UploadPart.objects.filter(upload=upload, checksum_replaced=True)
        .order_by("number")
        .values_list("number", flat=True)
    )


def settle_gone_upload(upload: Upload, *, storage: MultipartStorage) -> bool:
    """An `uploading` row whose S3 multipart upload is gone: True when S3 had completed it.

    That happens when a completion reached S3 but neither its answer nor the HEAD after it
    came back (the row was given back for a retry). The object decides, as for a retried
    complete; without one the upload is left as it is for the caller's error.
    """
    if not transition(upload, [Status.UPLOADING], Status.COMPLETING):
        return upload.status == Status.COMPLETED
    try:
        if settle_from_object(upload, storage=storage):
            return True
    except StorageFailed:
        transition(upload, [Status.COMPLETING], Status.UPLOADING)
        raise
    transition(upload, [Status.COMPLETING], Status.UPLOADING)
    return False


def settle_from_object(
    upload: Upload, *, storage: MultipartStorage, expected_size: int | None = None
) -> bool:
    """Decide a completion from the object itself: complete when it exists with the right size.

    A wrong size makes the upload failed (PartMismatch). True when the upload is completed.
    """
    expected = upload.size if upload.size is not None else expected_size
    stored = storage.head_object(upload.key)
    if stored is None:
        return False
    if expected is not None and stored.size != expected:
        transition(
            upload,
            [Status.COMPLETING],
            Status.FAILED,
            failure_reason=f"The object holds {stored.size} bytes, not {expected}.",
        )
        raise PartMismatch("The completed object does not have the expected size.")
    if transition(
        upload,
        [Status.COMPLETING],
        Status.COMPLETED,
        size=stored.size,
        etag=stored.etag,
        checksum=stored.checksum,
        completed_at=timezone.now(),
    ):
        # robust: the upload is complete whatever a receiver does; a failure is logged.
        transaction.on_commit(lambda: send_upload_completed(upload), robust=True)
    elif upload.status == Status.COMPLETED:
        upload.refresh_from_db()  # a racing call recorded it: answer exactly what it wrote
    return upload.status == Status.COMPLETED
