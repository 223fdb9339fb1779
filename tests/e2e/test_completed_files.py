"""The page's completed list: download a finished file, and delete it only after saying so.

Real headless Chromium against the real server and SeaweedFS: the Download link goes through
the server's 302 to S3's presigned URL, and the name the browser saves under is the one S3's
Content-Disposition gives. Delete asks first (the page's one confirmation dialog) and sends
`If-Match` with the row's etag.
"""

from __future__ import annotations

import os

import pytest

from tests.support.presigned import put_signed
from uploads import services
from uploads.models import Upload

pytestmark = pytest.mark.timeout(300)

NAME = "Prüfbericht März.pdf"


def completed_upload(user, data: bytes, filename: str = NAME) -> Upload:
    """A one-part upload of `data`, sent to S3 as a client would and completed."""
    upload, _ = services.start_upload(
        owner=user, filename=filename, size=len(data), content_type="application/pdf"
    )
    [signed] = services.sign_parts(upload, parts=[services.PartToSign(1)], by=user)
    etag = put_signed(signed, data)
    services.record_parts(upload, parts=[services.ReportedPart(1, etag)], by=user)
    return services.complete_upload(upload, by=user)


def test_download_saves_the_file_under_its_name_and_delete_asks_then_removes_the_row(
    open_session, e2e_user, s3_for_browser, artifacts
):
    data = os.urandom(70_000)
    upload = completed_upload(e2e_user, data)
    _, page = open_session()
    row = page.locator(f'#completed li[data-upload-id="{upload.id}"]')
    artifacts(page, "1-completed-list")

    with page.expect_download() as downloading:
        row.get_by_role("link", name=f"Download {NAME}").click()
    download = downloading.value
    assert download.suggested_filename == NAME
    with open(download.path(), "rb") as saved:
        assert saved.read() == data

    delete = row.get_by_role("button", name=f"Delete the file {NAME} from storage")
    delete.click()
    dialog = page.get_by_role("dialog")
    assert f"Delete {NAME}?" in dialog.inner_text()
    assert "The file (70 kB) is deleted from storage" in dialog.inner_text()
    artifacts(page, "2-delete-asks")
    dialog.get_by_role("button", name="Keep it").click()
    assert dialog.is_hidden()
    upload.refresh_from_db()
    assert upload.status == Upload.Status.COMPLETED
    assert s3_for_browser.head_object(upload.key) is not None

    delete.click()
    dialog.get_by_role("button", name="Delete the file").click()
    row.wait_for(state="detached")

    upload.refresh_from_db()
    assert upload.status == Upload.Status.DELETED
    assert s3_for_browser.head_object(upload.key) is None
    assert f"Deleted {NAME}." in page.locator("#messages").inner_text()
    assert page.locator("#completed-empty").is_visible()
    artifacts(page, "3-deleted")
