"""Completed files: hand out a short-lived download link, and delete a file on purpose.

A completed upload's object is the user's file. Downloading never goes through Django: the
answer is a presigned GET, signed for UPLOADS_DOWNLOAD_EXPIRY seconds with the original name in
its Content-Disposition. Deleting is deliberate: the caller names the file's etag (the object's
S3 ETag, as the upload's JSON and its `ETag` header show it), so a stray cancel or a stale page
can never delete a file; the row becomes `deleted` and is kept for audit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.utils.http import content_disposition_header, parse_etags, quote_etag

from ..conf import upload_settings
from ..exceptions import PreconditionFailed, StorageFailed, UploadConflict
from ..models import Upload
from ..storage import MultipartStorage, get_storage
from .cleanup import BatchResult
from .state import OPERATOR, Actor, Status, require_owner, require_status, transition

logger = logging.getLogger(__name__)


def entity_tag(upload: Upload) -> str:
    """The upload's etag as an HTTP strong entity-tag (`"…"`), or "" before it has an object."""
    return quote_etag(upload.etag) if upload.etag else ""


def download_url(
    upload: Upload, *, by: Actor, inline: bool = False, storage: MultipartStorage | None = None
) -> str:
    """A presigned GET of the completed upload's object, valid UPLOADS_DOWNLOAD_EXPIRY seconds.

    S3 answers it with `Content-Disposition: attachment` (or `inline`) and the original file
    name (RFC 6266, `filename*` for non-ASCII names), and the upload's content type. Anything
    but a completed upload is an UploadConflict: there is no file to give.
    """
    require_owner(upload, by)
    require_status(upload, Status.COMPLETED)
    return (storage or get_storage()).presign_get_object(
        upload.key,
        expires_in=upload_settings().download_expiry,
        content_disposition=content_disposition_header(not inline, upload.filename) or "",
        content_type=upload.content_type,
    )


def _matches(if_match: str, upload: Upload) -> bool:
    """RFC 9110's strong comparison of `If-Match` with the upload's etag.

    `*` does not match on purpose: "delete whatever file is there" is exactly the stray delete
    that naming the etag exists to prevent.
    """
    if not upload.etag:
        return False
    tags = [tag for tag in parse_etags(if_match) if tag != "*"]
    return entity_tag(upload) in tags


def delete_file(
    upload: Upload, *, if_match: str, by: Actor, storage: MultipartStorage | None = None
) -> Upload:
    """Delete a completed upload's object in S3; the upload becomes `deleted` (row kept).

    `if_match` is the request's `If-Match`: it must name the upload's etag (strong, quoted),
    else PreconditionFailed. Repeating it is harmless: a `deleted` upload deletes its key again
    (S3 answers alike whether the object was there), which also finishes a delete whose S3 call
    failed. An upload that is not completed is an UploadConflict (abort it instead).
    """
    require_owner(upload, by)
    if not _matches(if_match, upload):
        raise PreconditionFailed(etag=entity_tag(upload))
    if upload.status != Status.DELETED:
        # The row first (compare-and-set from completed), so a verification or a racing
        # delete sees `deleted` and never reports the missing object as a mismatch.
        won = transition(upload, [Status.COMPLETED], Status.DELETED)
        if not won and upload.status != Status.DELETED:  # a racing delete is as good as ours
            require_status(upload, Status.COMPLETED)
    (storage or get_storage()).delete_object(upload.key)
    return upload


def delete_files(
    uploads: Iterable[Upload], *, storage: MultipartStorage | None = None
) -> BatchResult:
    """delete_file for each completed upload, on an operator's behalf (the admin action).

    The operator chose these rows on a confirmation page that listed them, which stands for
    the etag a user sends: each is deleted with its own current etag. Uploads that are not
    completed (or deleted already) are left as they are and reported.
    """
    result = BatchResult()
    storage = storage or get_storage()
    for upload in uploads:
        if upload.status == Status.DELETED:
            result.unchanged += 1
            continue
        try:
            require_status(upload, Status.COMPLETED)
            delete_file(upload, if_match=entity_tag(upload), by=OPERATOR, storage=storage)
        except (UploadConflict, PreconditionFailed) as error:
            result.errors.append(f"{upload.filename} ({upload.pk}): {error.detail}")
            continue
        except StorageFailed as error:
            # The row says deleted already; deleting it again (API or action) finishes it.
            logger.warning("could not delete the object of %s", upload.key, exc_info=True)
            result.errors.append(f"{upload.filename} ({upload.pk}): {error.detail}")
        result.changed += 1
    return result
