"""The upload state machine: compare-and-set transitions, activity and expiry, who may act.

Every status change goes through `transition` (`UPDATE … WHERE status IN old`), so two racing
calls cannot both win, on SQLite or PostgreSQL and across any number of processes. The
completion take-over rules live here too: when a `completing` upload belongs to a call that
died, and how long a second call waits for a first.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from django.db import DatabaseError, connections
from django.utils import timezone

from ..conf import upload_settings
from ..exceptions import UploadConflict
from ..models import Upload

if TYPE_CHECKING:
    from django.contrib.auth.models import _User

Status = Upload.Status
logger = logging.getLogger(__name__)

OWNING = Upload.OWNING
EXPIRABLE = Upload.EXPIRABLE


class Operator(enum.Enum):
    """Who acts when no user does: an admin action, a Celery task, a management command.

    Services check ownership against a user; `by=OPERATOR` says, explicitly, that the caller
    is the operator side and may act on anyone's upload.
    """

    OPERATOR = "operator"


OPERATOR: Final = Operator.OPERATOR
# The class of settings.AUTH_USER_MODEL, which owns uploads: django-stubs' plugin resolves
# `_User` from the settings (django.contrib.auth's User for project.settings), so that
# `Upload.objects.filter(owner=user)` and `Upload(owner=user)` are checked. A string at run time.
User: TypeAlias = "_User"
# Who acts on an upload: its owner (any other user is refused), or the operator side.
Actor: TypeAlias = "User | Operator"


def require_owner(upload: Upload, by: Actor) -> None:
    """The second lock: callers select uploads through an owner-scoped queryset already."""
    if by is not OPERATOR and upload.owner_id != by.pk:
        raise UploadConflict("Not your upload.")


def require_status(upload: Upload, *allowed: str) -> None:
    if upload.status not in allowed:
        raise UploadConflict(
            f"The upload is {upload.status}; this needs it to be {' or '.join(allowed)}.",
            status=upload.status,
        )


def new_expiry(now: datetime) -> datetime:
    """When an upload active at `now` becomes stale."""
    return now + timedelta(seconds=upload_settings().stale_after)


def transition(upload: Upload, old: Sequence[str], new: str, **fields: Any) -> bool:
    """Compare-and-set the status; True when this call won and `upload` now reflects it."""
    fields["updated_at"] = timezone.now()
    won = Upload.objects.filter(pk=upload.pk, status__in=list(old)).update(status=new, **fields)
    if won:
        upload.status = new
        for name, value in fields.items():
            setattr(upload, name, value)
    else:
        upload.refresh_status()
    return bool(won)


def touch(upload: Upload) -> None:
    """Record activity: the upload stays alive for another UPLOADS_STALE_AFTER.

    Conditional on the upload still uploading, so a sign or report that races an abort or a
    completion loses cleanly instead of writing parts into a finished upload.
    """
    now = timezone.now()
    expires_at = new_expiry(now)
    touched = Upload.objects.filter(pk=upload.pk, status=Status.UPLOADING).update(
        updated_at=now, expires_at=expires_at
    )
    if not touched:
        upload.refresh_status()
        require_status(upload, Status.UPLOADING)
    upload.updated_at, upload.expires_at = now, expires_at


# A completion keeps its claim alive by touching the `completing` row every
# COMPLETION_HEARTBEAT while it runs (a CompleteMultipartUpload of 10,000 parts can take
# minutes). A row untouched for COMPLETION_TAKEOVER_AFTER belongs to a call that died (its
# process killed, its node lost), and a retried completion takes over at once instead of
# answering 409 until a long fixed lease ends. Taking over a call that was only slow is safe:
# S3 completes a multipart upload once, and the object settles both calls.
COMPLETION_HEARTBEAT = 5.0  # seconds
COMPLETION_TAKEOVER_AFTER = timedelta(seconds=6 * COMPLETION_HEARTBEAT)
# A completion that finds another call completing the same upload waits this long for that
# call's outcome, so that both answer the same (a retried or doubled "complete" is common).
COMPLETION_WAIT = 10.0  # seconds
_COMPLETION_POLL = 0.1


@contextmanager
def holding_completion(upload: Upload) -> Iterator[None]:
    """Keep this call's claim on a `completing` upload alive until the block ends.

    A thread touches the row every COMPLETION_HEARTBEAT (only while it is still `completing`),
    so no other call takes the completion over while this one is waiting on S3.
    """
    done = threading.Event()

    def beat() -> None:
        try:
            while not done.wait(COMPLETION_HEARTBEAT):
                Upload.objects.filter(pk=upload.pk, status=Status.COMPLETING).update(
                    updated_at=timezone.now()
                )
        except DatabaseError:
            # A missed beat at worst lets a retry take over, which S3 and the object settle.
            logger.warning("The completion of %s could not renew its claim", upload.pk)
        finally:
            connections.close_all()  # this thread's own connections only

    heart = threading.Thread(target=beat, name=f"completing-{upload.pk}", daemon=True)
    heart.start()
    try:
        yield
    finally:
        done.set()
        heart.join()


def completion_is_abandoned(upload: Upload) -> bool:
    """Whether the `completing` row has gone unrenewed past COMPLETION_TAKEOVER_AFTER."""
    return upload.status == Status.COMPLETING and upload.updated_at < (
        timezone.now() - COMPLETION_TAKEOVER_AFTER
    )


def take_over_dead_completion(upload: Upload) -> bool:
    """Move a `completing` upload abandoned by a dead call back to `uploading` (compare-and-set)."""
    cutoff = timezone.now() - COMPLETION_TAKEOVER_AFTER
    taken = Upload.objects.filter(
        pk=upload.pk, status=Status.COMPLETING, updated_at__lt=cutoff
    ).update(status=Status.UPLOADING, updated_at=timezone.now())
    upload.refresh_status()
    return bool(taken)


def wait_for_racing_completion(upload: Upload) -> None:
    """Poll the row until the racing completion has settled it, or COMPLETION_WAIT passes.

    A completion found abandoned (its claim no longer renewed) is not waited for.
    """
    deadline = time.monotonic() + COMPLETION_WAIT
    while (
        upload.status == Status.COMPLETING
        and not completion_is_abandoned(upload)
        and time.monotonic() < deadline
    ):
        time.sleep(_COMPLETION_POLL)
        upload.refresh_from_db(fields=["status", "updated_at"])
    # Everything the winner wrote (progress, times), so both calls answer the same body.
    upload.refresh_from_db()
