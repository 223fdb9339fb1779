"""The uploads admin in a real browser: at a 1280 px laptop screen the changelist fits.

Headless Chromium signs in as a superuser against the live server, whose storage is the
session's SeaweedFS with the lifecycle rule `setup_storage` writes (so the "S3 aborts it"
date is real). Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.e2e.conftest import PASSWORD
from tests.factories import UploadFactory
from uploads.models import Upload

pytestmark = pytest.mark.timeout(120)

Status = Upload.Status
LAPTOP = {"width": 1280, "height": 800}
MiB = 1024 * 1024
# The columns an operator needs to decide what to do with a row, in the order shown.
COLUMNS = ["upload", "owner", "status", "progress", "activity", "expires"]


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(
        "root", email="root@example.com", password=PASSWORD
    )


@pytest.fixture
def uploads_in_every_state(real_s3, superuser) -> list[Upload]:
    """A row of each status, with long names and big sizes: the widest a row gets."""
    real_s3.put_bucket_lifecycle_configuration(prefix="uploads/", days=7)
    now = timezone.now()
    rows = [
        UploadFactory(
            filename="holiday-video-2026-summer-in-the-mountains-final-cut.mkv",
            size=48 * 1024 * MiB,
            part_size=64 * MiB,
            bytes_uploaded=17 * 1024 * MiB,
            parts_uploaded=272,
        ),
        UploadFactory(status=Status.COMPLETING, filename="backup.tar.zst"),
        UploadFactory(
            status=Status.FAILED,
            filename="thesis-draft-with-all-the-figures.pdf",
            failure_reason="S3 refused CompleteMultipartUpload.",
        ),
        UploadFactory(filename="stale.iso", expires_at=now - timedelta(hours=3)),
        UploadFactory(completed=True, filename="done.zip"),
        UploadFactory(status=Status.ABORTED, filename="given-up.bin"),
    ]
    return rows


@pytest.fixture
def admin_page(browser, live_server, superuser) -> Iterator:
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", superuser.get_username())
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    yield page
    context.close()


def horizontal_overflow(page) -> dict:
    """How much wider the results table is than the box that scrolls it, and the page too."""
    return page.evaluate(
        """() => {
            const box = document.querySelector('.results');
            const root = document.scrollingElement;
            return {
                table: box.scrollWidth - box.clientWidth,
                page: root.scrollWidth - root.clientWidth,
            };
        }"""
    )


@pytest.mark.parametrize("listing", ["incomplete", "all"])
def test_the_changelist_fits_a_1280px_screen_without_scrolling_sideways(
    admin_page, live_server, uploads_in_every_state, artifacts, listing
):
    query = "" if listing == "incomplete" else "?status=all"
    admin_page.goto(f"{live_server.url}/admin/uploads/upload/{query}")
    admin_page.wait_for_selector("#result_list tbody tr")
    artifacts(admin_page, f"changelist-{listing}")

    headers = admin_page.locator("#result_list thead th:not(.action-checkbox-column)")
    assert [text.strip().lower() for text in headers.all_inner_texts()] == COLUMNS
    assert horizontal_overflow(admin_page) == {"table": 0, "page": 0}
    # Every column's header is inside the viewport, the last one included.
    last = headers.last.bounding_box()
    assert last is not None
    assert last["x"] + last["width"] <= LAPTOP["width"]
    stale = admin_page.locator("#result_list tr", has_text="stale.iso")
    assert "stale for" in stale.inner_text()


def test_the_detail_page_shows_sizes_humanised_with_the_exact_bytes_on_hover(
    admin_page, live_server, uploads_in_every_state, artifacts
):
    upload = uploads_in_every_state[0]
    admin_page.goto(f"{live_server.url}/admin/uploads/upload/{upload.pk}/change/")
    artifacts(admin_page, "detail")

    size = admin_page.locator(".field-size_human .readonly span")
    assert size.inner_text().replace("\xa0", " ") == "48.0 GB"
    assert size.get_attribute("title") == f"{upload.size:,} bytes"
    assert (
        admin_page.evaluate(
            "() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
        )
        == 0
    )


def test_aborting_from_the_changelist_asks_first_and_no_takes_the_operator_back(
    admin_page, live_server, uploads_in_every_state, artifacts
):
    upload = uploads_in_every_state[0]
    admin_page.goto(f"{live_server.url}/admin/uploads/upload/")
    admin_page.check(f'input[name="_selected_action"][value="{upload.pk}"]')
    admin_page.select_option('select[name="action"]', "abort")
    admin_page.click('button[name="index"]')
    admin_page.wait_for_selector("#abort-summary")
    artifacts(admin_page, "abort-confirmation")

    assert "17.0 GB" in admin_page.inner_text("#abort-summary").replace("\xa0", " ")
    assert Upload.objects.get(pk=upload.pk).status == Status.UPLOADING

    admin_page.click("text=No, take me back")
    admin_page.wait_for_selector("#result_list")
    assert Upload.objects.get(pk=upload.pk).status == Status.UPLOADING
