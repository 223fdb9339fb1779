"""The upload page in real headless Chromium, against the real server and SeaweedFS.

Each test drives the page as a person would (sign in, pick files, press buttons), and checks
the result where it matters: the bytes of the object in S3, and the multipart uploads S3 holds.
Screenshots of the page's states go to test-artifacts/e2e/.
"""

import os
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.support.checksums import MiB, sha256_of_file, sha256_of_stored
from tests.support.files import write_random
from uploads.models import Upload

pytestmark = pytest.mark.timeout(300)

BIG = 64 * MiB


class PartRouter:
    """Sits between the page and S3: lets part PUTs through, holds them, or fails first tries.

    `hold(number)` True: the PUT never gets an answer (a network that stalled half-way).
    `fail(key)` True: the first attempt of that part is aborted as a network failure.
    `refuse(number)` True: S3 answers 403 SignatureDoesNotMatch, as to a part of the wrong size.
    """

    def __init__(self, context, endpoint: str):
        self.hold = lambda number: False
        self.fail = lambda key: False
        self.refuse = lambda number: False
        self.attempts: Counter = Counter()
        self.held: list = []
        self.failed: list = []
        self.stored: list[tuple[str, int]] = []
        context.route(f"{endpoint}/**", self._route)
        context.on("requestfinished", self._finished)

    @staticmethod
    def _part(request) -> tuple[str, int] | None:
        query = parse_qs(urlparse(request.url).query)
        if request.method != "PUT" or "partNumber" not in query:
            return None
        return query["uploadId"][0], int(query["partNumber"][0])

    def _route(self, route) -> None:
        key = self._part(route.request)
        if key is None:
            route.continue_()
            return
        self.attempts[key] += 1
        if self.hold(key[1]):
            self.held.append(route)
        elif self.attempts[key] == 1 and self.fail(key):
            self.failed.append(key)
            route.abort("failed")
        elif self.refuse(key[1]):
            route.fulfill(
                status=403,
                headers={
                    "Access-Control-Allow-Origin": route.request.headers.get("origin", "*"),
                    "Content-Type": "application/xml",
                },
                body="<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature "
                "we calculated does not match the signature you provided.</Message></Error>",
            )
        else:
            route.continue_()

    def _finished(self, request) -> None:
        key = self._part(request)
        response = request.response() if key else None
        if response is not None and response.status == 200:
            self.stored.append(key)


def file_row(page, name: str):
    """The newest row of the file called `name` (rows are added at the top)."""
    return page.locator(f'#queue li[data-filename="{name}"]').first


def wait_for_state(page, name: str, state: str, timeout: float = 120) -> None:
    page.wait_for_selector(
        f'#queue li[data-filename="{name}"][data-state="{state}"]', timeout=timeout * 1000
    )


def upload_of(page, name: str) -> Upload:
    upload_id = file_row(page, name).get_attribute("data-upload-id")
    return Upload.objects.get(pk=upload_id)


def wait_until(page, condition, what: str, timeout: float = 60) -> None:
    """Poll `condition` while letting the browser and the route handlers run."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        page.wait_for_timeout(100)


def parts_in_s3(storage, page, name: str) -> int:
    if not file_row(page, name).get_attribute("data-upload-id"):
        return 0
    upload = upload_of(page, name)
    return len(storage.list_parts(upload.key, upload.s3_upload_id))


def start_half_upload(open_session, storage, seaweedfs, path: Path, artifacts) -> Upload:
    """Upload the first half of `path` in one browser session, then close that browser."""
    context, page = open_session()
    router = PartRouter(context, seaweedfs.endpoint)
    router.hold = lambda number: number > 4  # the network stalls after the first half
    page.set_input_files("#file-input", str(path))
    wait_until(page, lambda: parts_in_s3(storage, page, path.name) >= 4, "half the parts are in S3")
    upload = upload_of(page, path.name)
    artifacts(page, "1-first-session-half-sent")
    context.close()
    return upload


def test_three_files_at_once_arrive_intact(open_session, s3_for_browser, tmp_path, artifacts):
    files = [
        write_random(tmp_path / "big.bin", BIG),
        write_random(tmp_path / "empty.txt", 0),
        write_random(tmp_path / "Überweisung – 日本語 ☃.pdf", 3 * MiB + 17),  # noqa: RUF001
    ]
    _, page = open_session()
    artifacts(page, "0-empty-page")

    page.set_input_files("#file-input", [str(path) for path in files])
    page.wait_for_selector("#queue li[data-state=uploading]")
    artifacts(page, "1-uploading")
    for path in files:
        wait_for_state(page, path.name, "completed")
    page.wait_for_function(
        "document.querySelectorAll('#completed li').length === 3", timeout=10_000
    )
    artifacts(page, "2-completed")

    for path in files:
        upload = upload_of(page, path.name)
        assert upload.status == Upload.Status.COMPLETED
        assert upload.filename == path.name
        assert upload.size == path.stat().st_size
        assert sha256_of_stored(s3_for_browser, upload.key) == sha256_of_file(path), path.name
    assert page.locator("#overall-progress").evaluate("bar => bar.value") == 100
    assert "100%" in page.locator("#overall-progress").get_attribute("aria-valuetext")


def test_a_new_browser_session_resumes_and_sends_only_what_is_missing(
    open_session, s3_for_browser, seaweedfs, tmp_path, artifacts, settings
):
    # The first session's stalled parts stay leased to it until it has been idle for
    # UPLOADS_SESSION_IDLE; the new session takes them over then (polling every 2 s). 10 s
    # instead of the default 30 s proves the same take-over, 20 s sooner.
    settings.UPLOADS_SESSION_IDLE = 10
    path = write_random(tmp_path / "video.mov", BIG)
    first = start_half_upload(open_session, s3_for_browser, seaweedfs, path, artifacts)

    # A new browser: empty storage, fresh login. The server lists the unfinished upload.
    context, page = open_session()
    router = PartRouter(context, seaweedfs.endpoint)
    unfinished = page.locator(f'#unfinished li[data-upload-id="{first.id}"]')
    assert "Pick the same file again to resume" in unfinished.inner_text()
    artifacts(page, "2-second-session-unfinished-list")

    page.set_input_files("#file-input", str(path))
    wait_for_state(page, path.name, "completed")
    artifacts(page, "3-second-session-completed")

    row = file_row(page, path.name)
    assert row.get_attribute("data-upload-id") == str(first.id), "it resumed the same upload"
    assert row.get_attribute("data-resumed") == "true"
    first.refresh_from_db()
    sizes = {n: first.plan.size_of(n) for n in range(1, first.part_count + 1)}
    sent_again = sum(sizes[number] for _, number in router.stored)
    assert sent_again < 0.6 * BIG, f"sent {sent_again} of {BIG} bytes again"
    assert int(row.get_attribute("data-bytes-sent")) == sent_again
    assert first.status == Upload.Status.COMPLETED
    assert sha256_of_stored(s3_for_browser, first.key) == sha256_of_file(path)


def test_a_different_file_with_the_same_name_and_size_does_not_resume(
    open_session, s3_for_browser, seaweedfs, tmp_path, artifacts
):
    original = write_random(tmp_path / "a" / "report.bin", BIG)
    first = start_half_upload(open_session, s3_for_browser, seaweedfs, original, artifacts)

    # Same name, size and modification time, same first and last MiB: only the middle differs,
    # so even the fingerprint matches; hashing an uploaded part must tell them apart.
    impostor = tmp_path / "b" / "report.bin"
    impostor.parent.mkdir()
    data = original.read_bytes()
    impostor.write_bytes(data[:MiB] + os.urandom(BIG - 2 * MiB) + data[-MiB:])
    stat = original.stat()
    os.utime(impostor, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    _, page = open_session()
    page.set_input_files("#file-input", str(impostor))
    wait_for_state(page, impostor.name, "completed")
    artifacts(page, "2-impostor-uploaded-separately")

    row = file_row(page, impostor.name)
    assert row.get_attribute("data-mismatch") == "true"
    second = upload_of(page, impostor.name)
    assert second.id != first.id
    assert sha256_of_stored(s3_for_browser, second.key) == sha256_of_file(impostor)
    first.refresh_from_db()
    assert first.status == Upload.Status.UPLOADING, "the old upload is left alone"
    assert len(s3_for_browser.list_parts(first.key, first.s3_upload_id)) >= 4
    old_row = page.locator(f'#unfinished li[data-upload-id="{first.id}"]')
    assert old_row.count() == 1

    # Choosing the impostor for the old upload explicitly ("Resume…") is refused in plain words.
    page.set_input_files(f"#resume-{first.id}", str(impostor))
    wait_for_state(page, impostor.name, "failed", timeout=30)
    alert = file_row(page, impostor.name).get_by_role("alert")
    assert "is not the file that upload was started with" in alert.inner_text()
    artifacts(page, "3-explicit-resume-with-the-wrong-file-refused")

    # The Abort button deletes the old upload's parts from S3.
    old_row.get_by_role("button", name="Abort the unfinished upload of report.bin").click()
    page.get_by_role("dialog").get_by_role("button", name="Abort and delete the parts").click()
    page.wait_for_selector(f'#unfinished li[data-upload-id="{first.id}"]', state="detached")
    first.refresh_from_db()
    assert first.status == Upload.Status.ABORTED
    assert not any(
        item.key == first.key for item in s3_for_browser.list_multipart_uploads("uploads/")
    )
    artifacts(page, "4-old-upload-aborted")


def test_uploads_complete_when_a_fifth_of_the_part_requests_fail_once(
    open_session, s3_for_browser, seaweedfs, tmp_path, artifacts
):
    files = [
        write_random(tmp_path / "one.bin", BIG),
        write_random(tmp_path / "two.bin", 24 * MiB),
        write_random(tmp_path / "three.bin", 24 * MiB),
    ]
    context, page = open_session()
    router = PartRouter(context, seaweedfs.endpoint)
    seen: list = []

    def every_fifth_part(key) -> bool:
        seen.append(key)
        return len(seen) % 5 == 0

    router.fail = every_fifth_part
    page.set_input_files("#file-input", [str(path) for path in files])
    for path in files:
        wait_for_state(page, path.name, "completed")
    artifacts(page, "completed-despite-failures")

    assert len(router.failed) >= 2, router.failed
    assert len(router.failed) == len(seen) // 5  # 20% of the parts failed on their first try
    for key in router.failed:
        assert router.attempts[key] == 2, "each failed part was sent again, once"
    for path in files:
        upload = upload_of(page, path.name)
        assert sha256_of_stored(s3_for_browser, upload.key) == sha256_of_file(path), path.name


def test_pause_resume_and_cancel(open_session, s3_for_browser, seaweedfs, tmp_path, artifacts):
    paused_file = write_random(tmp_path / "paused.bin", 40 * MiB)
    cancelled_file = write_random(tmp_path / "cancelled.bin", 40 * MiB)
    context, page = open_session()
    router = PartRouter(context, seaweedfs.endpoint)
    router.hold = lambda number: number > 1  # part 1 goes through, the rest hang

    # Pause: the parts in flight are dropped, nothing fails; resume finishes the upload.
    page.set_input_files("#file-input", str(paused_file))
    wait_until(page, lambda: parts_in_s3(s3_for_browser, page, paused_file.name) >= 1, "part 1")
    wait_until(page, lambda: len(router.held) >= 4, "four parts in flight")
    page.get_by_role("button", name=f"Pause {paused_file.name}").click()
    wait_for_state(page, paused_file.name, "paused", timeout=10)
    row = file_row(page, paused_file.name)
    assert row.locator(".error").is_hidden()
    artifacts(page, "1-paused")
    router.hold = lambda number: False
    resume = page.get_by_role("button", name=f"Resume {paused_file.name}")
    resume.focus()
    page.keyboard.press("Enter")  # the controls work from the keyboard
    wait_for_state(page, paused_file.name, "completed")
    upload = upload_of(page, paused_file.name)
    assert sha256_of_stored(s3_for_browser, upload.key) == sha256_of_file(paused_file)
    artifacts(page, "2-resumed-and-completed")

    # Cancel: the upload is aborted on the server and the S3 multipart upload is gone.
    router.hold = lambda number: number > 1
    page.set_input_files("#file-input", str(cancelled_file))
    wait_until(page, lambda: parts_in_s3(s3_for_browser, page, cancelled_file.name) >= 1, "part 1")
    cancelled = upload_of(page, cancelled_file.name)
    assert any(
        item.key == cancelled.key for item in s3_for_browser.list_multipart_uploads("uploads/")
    )
    page.get_by_role("button", name=f"Cancel {cancelled_file.name}").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel and delete the parts").click()
    wait_for_state(page, cancelled_file.name, "cancelled", timeout=30)
    artifacts(page, "3-cancelled")
    cancelled.refresh_from_db()
    assert cancelled.status == Upload.Status.ABORTED
    assert not any(
        item.key == cancelled.key for item in s3_for_browser.list_multipart_uploads("uploads/")
    )
    assert page.locator(f'#unfinished li[data-upload-id="{cancelled.id}"]').count() == 0


def test_a_part_refused_by_storage_fails_in_plain_words_without_retrying(
    open_session, s3_for_browser, seaweedfs, tmp_path, artifacts
):
    path = write_random(tmp_path / "refused.bin", 12 * MiB)
    context, page = open_session()
    router = PartRouter(context, seaweedfs.endpoint)
    router.refuse = lambda number: number == 2
    page.set_input_files("#file-input", str(path))
    wait_for_state(page, path.name, "failed")
    artifacts(page, "failed")

    alert = file_row(page, path.name).get_by_role("alert")
    assert alert.is_visible()
    assert "refused part 2" in alert.inner_text()
    assert "Pick the file again to try once more" in alert.inner_text()
    assert file_row(page, path.name).get_attribute("data-error-code") == "part_refused"
    assert [count for (_, number), count in router.attempts.items() if number == 2] == [1]
    upload = upload_of(page, path.name)
    assert upload.status == Upload.Status.UPLOADING, "a failed upload can still be resumed"
