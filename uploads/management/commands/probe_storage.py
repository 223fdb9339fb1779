"""`manage.py probe_storage`: find out what the configured S3 store really verifies.

Sends parts through presigned URLs exactly as the clients do (uploads/storage/probe.py) and
records the result; new uploads then carry the digest the store verifies (README's store
table). `setup_storage` runs the same probe after setting the bucket up.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from uploads.exceptions import StorageFailed
from uploads.integrity import ALGORITHMS, StoreProfile
from uploads.services import probe_and_record_store
from uploads.storage.probe import ProbeResult


def describe(profile: StoreProfile) -> list[str]:
    """The profile in a few lines, as `probe_storage` and `setup_storage` print it."""
    verified = [a for a in ALGORITHMS if a in profile.verifies]
    lines = [
        "verifies: " + (", ".join(verified) if verified else "no part digest"),
        "part ETag is its MD5: " + ("yes" if profile.etag_is_md5 else "no"),
        "signed length enforced: " + ("yes" if profile.binds_length else "NO"),
        "equal part sizes required: " + ("yes" if profile.equal_part_sizes else "no"),
    ]
    if profile.verifies_nothing:
        lines.append("WARNING: nothing catches a corrupted part here; uploads are unverified")
    return lines


def report(command: BaseCommand, result: ProbeResult) -> None:
    for step in result.steps:
        mark = "ok " if step.passed else "-- "
        answer = f"{step.status or 'no answer'}{f' {step.code}' if step.code else ''}"
        command.stdout.write(f"  {mark}{step.name}: {answer} (a checking store: {step.expected})")
    for line in describe(result.profile):
        command.stdout.write(f"store profile: {line}")


class Command(BaseCommand):
    help = (
        "Probe what the configured S3 store verifies of each part (SHA-256, CRC32C, "
        "Content-MD5, length, equal sizes) through presigned URLs, and record it."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = probe_and_record_store()
        except StorageFailed as error:
            raise CommandError(f"The probe could not run: {error.detail}") from error
        report(self, result)
