"""`manage.py setup_storage`: make the bucket ready for direct browser uploads.

Creates the bucket when it is missing, lets browsers on UPLOADS_CORS_ORIGINS PUT parts and read
the ETag (the classic failure of browser multipart uploads is an unexposed ETag), and adds the
last safety net: a lifecycle rule with which S3 itself aborts multipart uploads under
UPLOADS_KEY_PREFIX that nobody finished. Idempotent, and safe on a production bucket (AWS, MinIO,
R2, SeaweedFS): the bucket's other CORS and lifecycle rules are kept as they are. `--check` only
reports, and exits with status 1 when something is not set up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from uploads.conf import upload_settings
from uploads.exceptions import StorageFailed
from uploads.management.commands.probe_storage import report
from uploads.services import probe_and_record_store
from uploads.storage import (
    CORS_RULE_ID,
    LIFECYCLE_RULE_ID,
    CorsRule,
    LifecycleRule,
    MultipartStorage,
    cors_rule,
    get_storage,
    lifecycle_rule,
)

Rule = TypeVar("Rule", CorsRule, LifecycleRule)

DAY = 24 * 3600

# What each step found or did.
OK = "ok"
CREATED = "created"
UPDATED = "updated"
MISSING = "missing"
DIFFERS = "differs"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Step:
    subject: str
    outcome: str
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.outcome} ({self.detail})"


def lifecycle_days(stale_after: int) -> int:
    """Days after which S3 aborts an upload: one day past Partwise's own expiry, at least 1.

    Partwise expires and aborts stale uploads itself; the rule only catches what it missed
    (a lost database row, a crashed worker), so it must never fire first.
    """
    return max(1, math.ceil(stale_after / DAY) + 1)


def _split(rules: Sequence[Rule], rule_id: str, wanted: Rule) -> tuple[list[Rule], list[Rule]]:
    """(Partwise's rules, everyone else's). Ours carry our ID; a server that drops IDs is
    recognised by identical content, so that re-running never piles up copies."""
    ours: list[Rule] = []
    others: list[Rule] = []
    for rule in rules:
        is_ours = rule.id == rule_id or (not rule.id and rule.same_effect(wanted))
        (ours if is_ours else others).append(rule)
    return ours, others


def setup_bucket(
    storage: MultipartStorage,
    *,
    origins: Iterable[str],
    prefix: str,
    days: int,
    check: bool = False,
) -> list[Step]:
    """Bring the bucket to the wanted state (or, with `check`, only say how far it is)."""
    origins = list(origins)
    steps: list[Step] = []
    bucket = f"bucket {storage.bucket}"
    if storage.head_bucket():
        steps.append(Step(bucket, OK, "exists"))
    elif check:
        steps.append(Step(bucket, MISSING, "does not exist"))
        return steps
    else:
        storage.create_bucket()
        steps.append(Step(bucket, CREATED, "new bucket"))

    if not origins:
        steps.append(Step("CORS", SKIPPED, "UPLOADS_CORS_ORIGINS is empty: no browser may upload"))
    else:
        wanted_cors = cors_rule(origins)
        text = f"PUT from {', '.join(origins)}; exposes ETag"
        cors_ours, cors_others = _split(storage.get_bucket_cors(), CORS_RULE_ID, wanted_cors)
        if len(cors_ours) == 1 and cors_ours[0].same_effect(wanted_cors):
            steps.append(Step("CORS", OK, text))
        elif check:
            steps.append(Step("CORS", DIFFERS if cors_ours else MISSING, text))
        else:
            storage.put_bucket_cors(origins, other_rules=cors_others)
            steps.append(Step("CORS", UPDATED if cors_ours else CREATED, text))

    wanted = lifecycle_rule(prefix=prefix, days=days)
    text = f"S3 aborts incomplete multipart uploads under {prefix} after {days} days"
    rules = storage.get_bucket_lifecycle_configuration()
    ours, others = _split(rules, LIFECYCLE_RULE_ID, wanted)
    if len(ours) == 1 and ours[0].same_effect(wanted):
        steps.append(Step("lifecycle", OK, text))
    elif check:
        steps.append(Step("lifecycle", DIFFERS if ours else MISSING, text))
    else:
        storage.put_bucket_lifecycle_configuration(prefix=prefix, days=days, other_rules=others)
        steps.append(Step("lifecycle", UPDATED if ours else CREATED, text))
    return steps


class Command(BaseCommand):
    help = (
        "Create the uploads bucket if missing, set its CORS rule (exposing ETag) and an "
        "AbortIncompleteMultipartUpload lifecycle rule. Idempotent; --check only reports."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Change nothing; report, and exit with status 1 if the bucket is not set up.",
        )
        parser.add_argument(
            "--no-probe",
            action="store_true",
            help="Do not probe what the store verifies (`manage.py probe_storage` does it).",
        )

    def handle(
        self, *args: Any, check: bool = False, no_probe: bool = False, **options: Any
    ) -> None:
        conf = upload_settings()
        endpoint = settings.AWS_S3_ENDPOINT_URL or "AWS S3"
        try:
            steps = setup_bucket(
                get_storage(),
                origins=conf.cors_origins,
                prefix=conf.key_prefix,
                days=lifecycle_days(conf.stale_after),
                check=check,
            )
        except StorageFailed as error:
            raise CommandError(
                f"{error.detail} Is {endpoint} reachable, and are the credentials right? "
                "(`make run` starts the embedded SeaweedFS.)"
            ) from error
        for step in steps:
            self.stdout.write(str(step))
        pending = [step for step in steps if step.outcome in {MISSING, DIFFERS}]
        if pending:
            raise CommandError(
                f"storage at {endpoint} is not set up: run `manage.py setup_storage`."
            )
        if check:
            self.stdout.write(f"storage at {endpoint} is set up.")
        elif not no_probe:
            # What the store verifies decides each upload's part digest (uploads/integrity.py).
            try:
                report(self, probe_and_record_store())
            except StorageFailed as error:
                raise CommandError(f"The store probe failed: {error.detail}") from error
