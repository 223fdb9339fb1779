"""Sessions: which client sessions are at work on an upload, so that they share its parts.

A session is a random id a client makes for one upload attempt (a tab's handle, a CLI run) and
sends with create, sign and report. It is *active* on an upload while it signed or reported
within UPLOADS_SESSION_IDLE seconds (`selectors.active_sessions`); a part it signed is *leased*
to it (`UploadPart.leased_to`) while it is active, and `sign_batch` (uploading.py) hands such a
part to no other session. A silent session's leases lapse by themselves: a device resuming after
a crash never waits for a clean-up.
"""

from __future__ import annotations

from datetime import datetime

from ..models import Upload, UploadSession


def note_session(upload: Upload, session: str, *, now: datetime) -> None:
    """Record that `session` acted on the upload at `now` (one statement, insert or update)."""
    UploadSession.objects.bulk_create(
        [UploadSession(upload=upload, session=session, seen_at=now)],
        update_conflicts=True,
        unique_fields=["upload", "session"],
        update_fields=["seen_at"],
    )
