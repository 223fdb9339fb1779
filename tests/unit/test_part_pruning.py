"""Part rows of settled uploads are pruned (services.prune_settled_parts, beat every 6 hours).

Part rows are the largest table (docs/scaling.md). Once an upload is settled past
UPLOADS_PARTS_KEPT_FOR (completed and verified, aborted, expired, deleted) its parts and
sessions go, except a completed upload's first and last part: the proof clients hash to tell
the uploaded file from a lookalike. Nothing open, failed or not yet verified loses a row.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import UploadFactory, UploadPartFactory
from uploads import services, tasks
from uploads.models import Upload, UploadPart, UploadSession

pytestmark = pytest.mark.django_db
Verification = Upload.Verification
KEPT_FOR = 7 * 24 * 3600


@pytest.fixture(autouse=True)
def _kept_a_week(settings) -> None:
    settings.UPLOADS_PARTS_KEPT_FOR = KEPT_FOR


def long_ago() -> timezone.datetime:
    return timezone.now() - timedelta(seconds=KEPT_FOR + 60)


def upload_with_parts(parts: int = 5, **fields) -> Upload:
    size = parts * 5 * 1024 * 1024
    upload = UploadFactory(size=size, **fields)
    for number in range(1, parts + 1):
        UploadPartFactory(upload=upload, number=number)
    UploadSession.objects.create(upload=upload, session="tab-1", seen_at=timezone.now())
    return upload


def settle(upload: Upload, **fields) -> Upload:
    # updated_at is auto_now: only update() can date it in the past.
    Upload.objects.filter(pk=upload.pk).update(**fields)
    upload.refresh_from_db()
    return upload


def numbers(upload: Upload) -> list[int]:
    return sorted(UploadPart.objects.filter(upload=upload).values_list("number", flat=True))


def test_a_verified_upload_settled_long_ago_keeps_only_its_first_and_last_part():
    upload = settle(
        upload_with_parts(5, completed=True),
        completed_at=long_ago(),
        verification=Verification.OK,
    )

    result = services.prune_settled_parts()

    assert numbers(upload) == [1, 5]
    assert result == services.PruneResult(uploads=1, parts=3)
    assert not UploadSession.objects.filter(upload=upload).exists()
    upload.refresh_from_db()
    assert upload.parts_pruned_at is not None
    assert (upload.parts_uploaded, upload.bytes_uploaded) == (5, upload.size)  # totals stay


@pytest.mark.parametrize("status", ["aborted", "expired", "deleted"])
def test_an_upload_abandoned_long_ago_loses_every_part_row(status):
    upload = settle(upload_with_parts(4, status=status), updated_at=long_ago())

    services.prune_settled_parts()

    assert numbers(upload) == []
    assert not UploadSession.objects.filter(upload=upload).exists()


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"status": "uploading"}, id="open"),
        pytest.param({"status": "completing"}, id="completing"),
        pytest.param({"status": "failed"}, id="failed: operators need its parts"),
        pytest.param({"completed": True, "verification": ""}, id="completed, not verified yet"),
        pytest.param(
            {"completed": True, "verification": Verification.MISMATCH}, id="verification failed"
        ),
    ],
)
def test_nothing_unsettled_loses_a_row_however_old(fields):
    upload = upload_with_parts(3, **fields)
    settle(upload, updated_at=long_ago(), completed_at=long_ago())

    assert services.prune_settled_parts().parts == 0
    assert numbers(upload) == [1, 2, 3]


def test_a_recently_settled_upload_keeps_its_parts_until_the_setting_says():
    upload = upload_with_parts(3, completed=True, verification=Verification.OK)
    aborted = upload_with_parts(3, status="aborted")

    assert services.prune_settled_parts().parts == 0
    assert numbers(upload) == [1, 2, 3]
    assert numbers(aborted) == [1, 2, 3]


def test_a_pruned_upload_is_pruned_once_and_the_sweep_works_in_batches():
    uploads = [
        settle(
            upload_with_parts(3, completed=True),
            completed_at=long_ago(),
            verification=Verification.OK,
        )
        for _ in range(5)
    ]

    first = services.prune_settled_parts(batch=2)
    again = services.prune_settled_parts(batch=2)

    assert first == services.PruneResult(uploads=5, parts=5)
    assert again == services.PruneResult(uploads=0, parts=0)
    assert [numbers(upload) for upload in uploads] == [[1, 3]] * 5


def test_each_batch_costs_a_bounded_number_of_queries_whatever_its_size():
    def queries_for(count: int) -> int:
        for _ in range(count):
            settle(upload_with_parts(4, status="aborted"), updated_at=long_ago())
        with CaptureQueriesContext(connection) as captured:
            services.prune_settled_parts(batch=1000)
        return len(captured)

    assert queries_for(3) == queries_for(30)


def test_an_upload_of_one_part_keeps_it():
    upload = settle(
        upload_with_parts(1, completed=True), completed_at=long_ago(), verification="ok"
    )

    services.prune_settled_parts()

    assert numbers(upload) == [1]


def test_the_detail_of_a_pruned_upload_still_answers_with_its_proof_parts(api_client, user):
    upload = settle(
        upload_with_parts(4, completed=True, owner=user),
        completed_at=long_ago(),
        verification=Verification.OK,
    )
    services.prune_settled_parts()

    body = api_client.get(f"/api/uploads/{upload.pk}/").json()

    assert body["status"] == "completed"
    assert body["parts_uploaded"] == 4
    assert [part["number"] for part in body["parts"]] == [1, 4]


def test_the_beat_task_prunes():
    settle(upload_with_parts(3, status="expired"), updated_at=long_ago())

    assert tasks.prune_settled_parts() == 3


def test_the_cron_command_prunes_after_its_sweeps_but_not_in_a_dry_run(storage):
    upload = settle(upload_with_parts(2, status="aborted"), updated_at=long_ago())

    dry = StringIO()
    call_command("cleanup_uploads", "--dry-run", stdout=dry)
    assert numbers(upload) == [1, 2]
    out = StringIO()
    call_command("cleanup_uploads", stdout=out)

    assert "pruned" not in dry.getvalue()
    assert out.getvalue().endswith("pruned 2 part rows of 1 settled uploads.\n")
    assert numbers(upload) == []
