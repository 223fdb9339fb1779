"""The upload services: the only code that changes an upload's state, by capability.

- `validation`: pure checks of what clients send;
- `state`: compare-and-set transitions, activity and expiry, who may act (`Operator`);
- `uploading`: start, sign, record, and the sync of recorded parts with S3;
- `completion`: claim, check the parts, complete in S3, settle;
- `cleanup`: abort, expiry, orphans, the operators' batch actions;
- `verification`: a completed object checked again, reconciliation;
- `files`: completed files downloaded (a presigned GET) and deleted on purpose (If-Match);
- `store`: the store's profile, probed and recorded (what it verifies of each part).

Views, admin actions, Celery tasks and the Uppy layer call these and hold no rule of their own;
reads they need are in `uploads.selectors`. Each service takes the storage to use as a keyword
argument (`get_storage()` when none is given), so tests pass a fake instead of patching.
"""

from ..parts import PartToSign, ReportedPart, SignedPart
from .cleanup import (
    BatchResult,
    Orphan,
    PruneResult,
    abort_orphans,
    abort_upload,
    abort_uploads,
    expire_stale_uploads,
    extend_expiry,
    find_orphans,
    prune_settled_parts,
    reconcile_orphans,
)
from .completion import complete_upload, record_parts_and_complete
from .files import delete_file, delete_files, download_url, entity_tag
from .state import (
    COMPLETION_TAKEOVER_AFTER,
    EXPIRABLE,
    OPERATOR,
    OWNING,
    Actor,
    Operator,
    User,
)
from .store import probe_and_record_store, record_store_profile
from .uploading import (
    SignBatch,
    StartedUpload,
    record_parts,
    sign_batch,
    sign_parts,
    start_or_resume_upload,
    start_upload,
    sync_upload_parts,
)
from .validation import (
    check_checksum,
    check_content_type,
    check_etag,
    clean_filename,
)
from .verification import (
    composite_checksum,
    reconcile_upload,
    reconcile_uploads,
    resend_lost_completions,
    settle_dead_completions,
    verify_upload,
)

__all__ = [
    "COMPLETION_TAKEOVER_AFTER",
    "EXPIRABLE",
    "OPERATOR",
    "OWNING",
    "Actor",
    "BatchResult",
    "Operator",
    "Orphan",
    "PartToSign",
    "PruneResult",
    "ReportedPart",
    "SignBatch",
    "SignedPart",
    "StartedUpload",
    "User",
    "abort_orphans",
    "abort_upload",
    "abort_uploads",
    "check_checksum",
    "check_content_type",
    "check_etag",
    "clean_filename",
    "complete_upload",
    "composite_checksum",
    "delete_file",
    "delete_files",
    "download_url",
    "entity_tag",
    "expire_stale_uploads",
    "extend_expiry",
    "find_orphans",
    "probe_and_record_store",
    "prune_settled_parts",
    "reconcile_orphans",
    "reconcile_upload",
    "reconcile_uploads",
    "record_parts",
    "record_parts_and_complete",
    "record_store_profile",
    "resend_lost_completions",
    "settle_dead_completions",
    "sign_batch",
    "sign_parts",
    "start_or_resume_upload",
    "start_upload",
    "sync_upload_parts",
    "verify_upload",
]
