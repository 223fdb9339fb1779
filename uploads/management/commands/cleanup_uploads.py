"""`manage.py cleanup_uploads`: expiry, the orphan sweep and part pruning, for cron, not beat.

The same services the Celery beat runs: uploads inactive past their expiry are aborted in S3
and marked expired, then orphaned multipart uploads under UPLOADS_KEY_PREFIX older than the
grace period are aborted, then the part rows of uploads settled past UPLOADS_PARTS_KEPT_FOR are
pruned. Prints one line per upload it aborted; `--dry-run` only prints (and prunes nothing).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from uploads import services
from uploads.conf import upload_settings
from uploads.exceptions import StorageFailed


class Command(BaseCommand):
    help = (
        "Abort and expire uploads inactive past UPLOADS_STALE_AFTER, and abort orphaned "
        "multipart uploads under UPLOADS_KEY_PREFIX older than UPLOADS_ORPHAN_GRACE."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be aborted; change nothing"
        )
        parser.add_argument(
            "--orphan-grace",
            type=int,
            metavar="SECONDS",
            help="abort only orphans older than this (default: UPLOADS_ORPHAN_GRACE)",
        )

    def handle(
        self, *args: Any, dry_run: bool = False, orphan_grace: int | None = None, **options: Any
    ) -> None:
        grace = upload_settings().orphan_grace if orphan_grace is None else orphan_grace
        if grace < 0:
            raise CommandError("--orphan-grace must not be negative.")
        verb = "would abort" if dry_run else "aborted"
        try:
            if not dry_run:
                settled = services.settle_dead_completions()
                if settled.changed:
                    self.stdout.write(f"settled {settled.changed} dead completions")
            expired = services.expire_stale_uploads(dry_run=dry_run)
            for upload in expired:
                self.stdout.write(
                    f"{verb} expired upload {upload.pk} {upload.key} "
                    f"(owner {upload.owner}, expiry {upload.expires_at:%Y-%m-%d %H:%M} UTC)"
                )
            orphans = services.reconcile_orphans(older_than=grace, dry_run=dry_run)
        except StorageFailed as error:
            raise CommandError(f"S3 failed: {error.detail}") from error
        for orphan in orphans:
            self.stdout.write(
                f"{verb} orphan {orphan.key} (S3 upload id {orphan.s3_upload_id}, "
                f"initiated {orphan.initiated:%Y-%m-%d %H:%M} UTC)"
            )
        summary = f"{len(expired)} expired uploads and {len(orphans)} orphans"
        self.stdout.write(f"{summary} {'would be aborted' if dry_run else 'aborted'}.")
        if not dry_run:
            pruned = services.prune_settled_parts()
            self.stdout.write(
                f"pruned {pruned.parts} part rows of {pruned.uploads} settled uploads."
            )
