"""The upload page as a new user meets it (issue 12): honest figures, messages that stay, no
false failures, confirmations before anything is destroyed, and continuing without the file
dialog where the browser keeps file handles.

Real headless Chromium against the real server and SeaweedFS. Nothing between the page and S3
is faked: outages are the browser's own offline mode (which also holds an upload still while a
test looks at a dialog), and what the page showed over time is read from a MutationObserver the
test installs (tests/e2e/page_watch.js), never from timing.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.factories import UploadFactory
from tests.support.checksums import MiB, sha256_b64, sha256_of_file, sha256_of_stored
from tests.support.files import write_random
from tests.support.presigned import put_signed
from uploads import services
from uploads.models import Upload

pytestmark = pytest.mark.timeout(300)

PART = 5 * MiB
WATCH = (Path(__file__).parent / "page_watch.js").read_text()


@pytest.fixture
def small_parts(settings) -> None:
    settings.UPLOADS_PART_SIZE = PART


@pytest.fixture
def watched(open_session):
    """open_session(), with the page watched from its first paint (see page_watch.js)."""

    def open_() -> tuple:
        context, page = open_session()
        context.add_init_script(WATCH)
        page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" on reload
        page.reload()
        page.wait_for_selector("#app[data-ready=true][data-lists-loaded]")
        return context, page

    return open_


# --- helpers ------------------------------------------------------------------------------------
def row_of(page, name: str):
    return page.locator(f'#queue li[data-filename="{name}"]').first


def wait_for_state(page, name: str, state: str, timeout: float = 120) -> None:
    page.wait_for_selector(
        f'#queue li[data-filename="{name}"][data-state="{state}"]', timeout=timeout * 1000
    )


def wait_for_parts(page, name: str, count: int, timeout: float = 60) -> None:
    """Until the page has seen `count` parts of `name` stored (its `part` events)."""
    page.wait_for_function(
        "([name, count]) => Number(document.querySelector("
        '`#queue li[data-filename="${name}"]`)?.dataset.partsDone ?? 0) >= count',
        arg=[name, count],
        timeout=timeout * 1000,
    )


def watch(page) -> dict:
    return page.evaluate("window.partwiseWatch.report()")


def fingerprint_in_browser(page, path: Path) -> str:
    """The fingerprint client.js computes for `path` as the page's file input hands it over."""
    page.evaluate(
        "() => { const input = document.createElement('input'); input.type = 'file';"
        " input.id = 'fingerprint-probe'; input.hidden = true; document.body.append(input); }"
    )
    page.set_input_files("#fingerprint-probe", str(path))
    return page.evaluate(
        "async () => { const { fileFingerprint } = await import('/static/partwise/client.js');"
        " const input = document.getElementById('fingerprint-probe');"
        " const fingerprint = await fileFingerprint(input.files[0]); input.remove();"
        " return fingerprint; }"
    )


def interrupted_upload(user, path: Path, fingerprint: str, parts: int, data: bytes | None = None):
    """An upload of `path` whose first `parts` parts are in S3 but were never reported: a tab
    that closed between PUTting parts and reporting them. `data` sends other bytes instead."""
    data = path.read_bytes() if data is None else data
    upload, _ = services.start_upload(
        owner=user,
        filename=path.name,
        size=len(data),
        checksum_algorithm="SHA256",
        fingerprint=fingerprint,
        part_size=PART,
    )
    for number in range(1, parts + 1):
        body = data[(number - 1) * PART : number * PART]
        part = services.PartToSign(number, checksum=sha256_b64(body))
        [signed] = services.sign_parts(upload, parts=[part], by=user)
        put_signed(signed, body)
    upload.refresh_from_db()
    assert upload.parts_uploaded == 0, "S3 holds the parts; the server was never told"
    return upload


def pattern(size: int) -> bytes:
    """byte i = (i * 31 + 7) % 251: what the OPFS test writes in the browser."""
    period = bytes((i * 31 + 7) % 251 for i in range(251))
    return (period * (size // 251 + 1))[:size]


# --- figures and messages ----------------------------------------------------------------------
def test_figures_are_rounded_and_an_eta_never_reads_about_less_than(watched):
    _, page = watched()
    words = page.evaluate(
        "async () => { const w = await import('/static/partwise/words.js'); return ["
        " w.formatRate(9.538950715421304), w.formatRate(2_134_567), w.formatBytes(315_000_000),"
        " w.formatBytes(1), w.formatBytes(999.6), w.formatEta(0.4), w.formatEta(33.2),"
        " w.describeOutage({ attempt: 2, retryAt: 4_000 }, 0)]; }"
    )
    assert words == [
        "9.5 B/s",
        "2.1 MB/s",
        "315 MB",
        "1 byte",
        "1.0 kB",
        "less than a second left",
        "about 33 s left",
        "Connection lost — retrying in 4 s (attempt 2)",
    ]


def test_the_same_file_picked_twice_in_one_tab_is_one_upload_that_completes(
    watched, s3_for_browser, small_parts, tmp_path, artifacts
):
    path = write_random(tmp_path / "twice.bin", 16 * PART)
    _, page = watched()

    page.set_input_files("#file-input", str(path))
    page.wait_for_selector('#queue li[data-filename="twice.bin"]')
    page.set_input_files("#file-input", str(path))
    row = row_of(page, path.name)
    assert "already uploading here" in row.locator(".messages").inner_text()
    wait_for_state(page, path.name, "completed")
    artifacts(page, "picked-twice-one-upload")

    assert page.locator("#queue > li").count() == 1
    assert page.locator("#queue > li[data-state=failed]").count() == 0
    uploads = Upload.objects.filter(filename=path.name)
    assert [upload.status for upload in uploads] == [Upload.Status.COMPLETED]
    assert sha256_of_stored(s3_for_browser, uploads[0].key) == sha256_of_file(path)
    # The note stays until read, and goes when dismissed.
    assert "already uploading here" in row.locator(".messages").inner_text()
    row.get_by_role("button", name="Dismiss this message about twice.bin").click()
    assert row.locator(".messages").is_hidden()


def test_unfinished_uploads_show_what_s3_holds_and_a_resume_shows_its_real_figures_at_once(
    watched, e2e_user, s3_for_browser, small_parts, tmp_path, artifacts
):
    path = write_random(tmp_path / "holiday.mov", 6 * PART + 1234)
    _, page = watched()
    upload = interrupted_upload(e2e_user, path, fingerprint_in_browser(page, path), parts=4)
    page.reload()
    page.wait_for_selector("#app[data-ready=true][data-lists-loaded]")

    # The list asked S3 (through the reconciled detail), not the stale "0 parts" of the list.
    item = page.locator(f'#unfinished li[data-upload-id="{upload.id}"]')
    assert "4 of 7 parts" in item.inner_text()
    assert "21 MB in storage" in item.inner_text()
    artifacts(page, "1-unfinished-reconciled")

    page.set_input_files(f"#resume-{upload.id}", str(path))
    wait_for_state(page, path.name, "completed")
    artifacts(page, "2-resumed-and-completed")

    seen = watch(page)
    statuses = seen["statuses"][path.name]
    assert not [text for text in statuses if text.startswith("Resumed · 0 bytes")], statuses
    assert not [text for text in statuses if "about less than" in text], statuses
    assert all(text.count(".") <= 2 for text in statuses), statuses  # no 9.538950715421304
    assert seen["backwards"] == [], "progress never moves backwards"
    assert seen["offered_while_live"] == [], "an upload being sent is not offered under Unfinished"
    messages = row_of(page, path.name).locator(".messages").inner_text()
    assert "Continuing an earlier upload: 4 of 7 parts" in messages, "still there at the end"
    upload.refresh_from_db()
    assert upload.status == Upload.Status.COMPLETED
    assert sha256_of_stored(s3_for_browser, upload.key) == sha256_of_file(path)


def test_a_file_that_does_not_match_the_unfinished_upload_says_so_and_the_note_stays(
    watched, e2e_user, s3_for_browser, small_parts, tmp_path, artifacts
):
    path = write_random(tmp_path / "report.bin", 3 * PART)
    _, page = watched()
    other_bytes = bytes(b ^ 0xFF for b in path.read_bytes())
    first = interrupted_upload(
        e2e_user, path, fingerprint_in_browser(page, path), parts=2, data=other_bytes
    )
    page.reload()
    page.wait_for_selector("#app[data-ready=true][data-lists-loaded]")

    page.set_input_files("#file-input", str(path))
    wait_for_state(page, path.name, "completed")
    artifacts(page, "mismatch-note-stays")

    note = "so it is uploaded separately"
    row = row_of(page, path.name)
    assert note in row.locator(".messages").inner_text(), "the note was not overwritten"
    assert [text for text in watch(page)["statuses"][path.name] if note in text] == []
    assert row.get_attribute("data-upload-id") != str(first.id)
    first.refresh_from_db()
    assert first.status == Upload.Status.UPLOADING


# --- destructive buttons -----------------------------------------------------------------------
def test_cancel_asks_first_naming_the_file_and_the_bytes_and_sits_apart_from_pause(
    watched, s3_for_browser, small_parts, tmp_path, artifacts
):
    path = write_random(tmp_path / "keep-me.bin", 10 * PART)
    context, page = watched()
    page.set_input_files("#file-input", str(path))
    wait_for_parts(page, path.name, 1)
    context.set_offline(True)  # the upload stays live (retrying) while the test reads
    row = row_of(page, path.name)

    pause = row.get_by_role("button", name=f"Pause {path.name}").bounding_box()
    cancel_button = row.get_by_role("button", name=f"Cancel {path.name}")
    cancel = cancel_button.bounding_box()
    assert cancel["x"] - (pause["x"] + pause["width"]) > 200, "Cancel is far from Pause"

    # Dismissed: nothing happens, the upload goes on.
    cancel_button.click()
    dialog = page.get_by_role("dialog")
    assert path.name in dialog.inner_text()
    assert "MB of 52 MB already uploaded will be deleted" in dialog.inner_text()
    artifacts(page, "1-cancel-asks")
    dialog.get_by_role("button", name="Keep uploading").click()
    assert dialog.is_hidden()
    assert row.get_attribute("data-state") == "uploading"

    # Accepted: the upload stops at once; its abort reaches the server when the network is back.
    cancel_button.click()
    dialog.get_by_role("button", name="Cancel and delete the parts").click()
    context.set_offline(False)
    wait_for_state(page, path.name, "cancelled", timeout=60)
    upload = Upload.objects.get(pk=row.get_attribute("data-upload-id"))
    assert upload.status == Upload.Status.ABORTED
    assert not [
        item for item in s3_for_browser.list_multipart_uploads("uploads/") if item.key == upload.key
    ]


def test_abort_asks_first_naming_the_file_and_the_bytes_in_storage(
    watched, e2e_user, s3_for_browser, small_parts, tmp_path, artifacts
):
    path = write_random(tmp_path / "old.bin", 4 * PART)
    _, page = watched()
    upload = interrupted_upload(e2e_user, path, "v1:" + "0" * 64, parts=2)
    page.reload()
    page.wait_for_selector("#app[data-ready=true][data-lists-loaded]")
    item = page.locator(f'#unfinished li[data-upload-id="{upload.id}"]')
    abort = item.get_by_role("button", name="Abort the unfinished upload of old.bin")

    abort.click()
    dialog = page.get_by_role("dialog")
    assert "old.bin" in dialog.inner_text()
    assert "The 10 MB already uploaded (2 of 4 parts) will be deleted" in dialog.inner_text()
    artifacts(page, "1-abort-asks")
    page.keyboard.press("Escape")  # Escape keeps, as "Keep it" does
    assert dialog.is_hidden()
    upload.refresh_from_db()
    assert upload.status == Upload.Status.UPLOADING
    abort.click()
    dialog.get_by_role("button", name="Keep it").click()
    upload.refresh_from_db()
    assert upload.status == Upload.Status.UPLOADING

    abort.click()
    dialog.get_by_role("button", name="Abort and delete the parts").click()
    page.wait_for_selector(f'#unfinished li[data-upload-id="{upload.id}"]', state="detached")
    upload.refresh_from_db()
    assert upload.status == Upload.Status.ABORTED
    assert "Aborted the unfinished upload of old.bin" in page.locator("#messages").inner_text()


# --- outage ------------------------------------------------------------------------------------
def test_an_outage_says_connection_lost_hides_speed_and_never_moves_progress_backwards(
    watched, s3_for_browser, small_parts, tmp_path, artifacts
):
    path = write_random(tmp_path / "outage.bin", 24 * PART)
    context, page = watched()
    page.set_input_files("#file-input", str(path))
    wait_for_parts(page, path.name, 1)
    row = row_of(page, path.name)

    context.set_offline(True)
    connection = row.locator(".connection")
    page.wait_for_function(
        "() => /Connection lost — retrying in \\d+ s \\(attempt [2-9]\\)/.test("
        "document.querySelector('#queue li .connection')?.textContent ?? '')",
        timeout=60_000,
    )
    artifacts(page, "1-connection-lost")
    status = row.locator(".status").inner_text()
    assert "/s" not in status, "no speed while stalled"
    assert "left" not in status, "no time left while stalled"
    assert "connection lost" in page.locator("#overall-text").inner_text()
    assert row.get_attribute("data-stalled") == "true"

    context.set_offline(False)
    wait_for_state(page, path.name, "completed")
    assert connection.is_hidden()
    artifacts(page, "2-completed-after-outage")

    seen = watch(page)
    assert seen["backwards"] == [], "progress never moved backwards"
    assert [text for text in seen["connection"][path.name] if "Connection lost" in text]
    upload = Upload.objects.get(pk=row.get_attribute("data-upload-id"))
    assert sha256_of_stored(s3_for_browser, upload.key) == sha256_of_file(path)


# --- completed uploads -------------------------------------------------------------------------
def test_completed_uploads_page_with_show_more_and_say_when_there_are_more(
    watched, e2e_user, s3_for_browser
):
    for _ in range(57):
        UploadFactory(owner=e2e_user, completed=True)
    _, page = watched()
    assert page.locator("#completed li").count() == 50
    assert page.locator("#completed-hint").inner_text() == "Showing the newest 50; there are more."

    page.get_by_role("button", name="Show more").click()
    page.wait_for_function("document.querySelectorAll('#completed li').length === 57")
    assert page.locator("#completed-hint").inner_text() == "Showing all 57."
    assert page.get_by_role("button", name="Show more").is_hidden()
    ids = page.locator("#completed li").evaluate_all(
        "items => items.map(item => item.dataset.uploadId)"
    )
    assert len(set(ids)) == 57, "no upload twice, none left out"


# --- continuing without the file dialog (File System Access API) -------------------------------
def test_after_a_reload_continue_finishes_from_the_kept_file_handle_sending_only_missing_parts(
    watched, s3_for_browser, small_parts, artifacts
):
    size = 24 * PART + 4321
    _, page = watched()
    chooser: list = []
    page.on("filechooser", lambda chooser_: chooser.append(chooser_))
    # A file in the origin-private file system: a real FileSystemFileHandle, as the picker or a
    # drop hands out (they need a person; OPFS handles need no permission prompt).
    page.evaluate(
        """async (size) => {
          const root = await navigator.storage.getDirectory();
          const handle = await root.getFileHandle("continue.bin", { create: true });
          const writable = await handle.createWritable();
          for (let offset = 0; offset < size; offset += 1 << 20) {
            const chunk = new Uint8Array(Math.min(1 << 20, size - offset));
            for (let i = 0; i < chunk.length; i++) chunk[i] = ((offset + i) * 31 + 7) % 251;
            await writable.write(chunk);
          }
          await writable.close();
          await window.partwisePage.addHandle(handle);
        }""",
        size,
    )
    wait_for_parts(page, "continue.bin", 2)
    upload_id = row_of(page, "continue.bin").get_attribute("data-upload-id")

    page.reload()  # mid-upload: the tab's handle is gone, the kept file handle is not
    page.wait_for_selector("#app[data-ready=true][data-lists-loaded]")
    artifacts(page, "1-after-reload-continue-offered")
    upload = Upload.objects.get(pk=upload_id)
    held = {part.number for part in s3_for_browser.list_parts(upload.key, upload.s3_upload_id)}
    assert 2 <= len(held) < upload.part_count

    item = page.locator(f'#unfinished li[data-upload-id="{upload_id}"]')
    # The client resumes from the server's detail (reconciled with S3's ListParts). A part whose
    # PUT the reload cut off after S3 had its body may land after `held` was listed, so "missing"
    # is what that answer says S3 held when the client asked.
    with page.expect_response(
        lambda response: response.request.method == "GET"
        and response.url.split("?")[0].endswith(f"/api/uploads/{upload_id}/")
    ) as resumed_from:
        item.get_by_role("button", name="Continue continue.bin").click()
    # The detail lists every part of the plan; those S3 holds carry their ETag.
    present = {part["number"] for part in resumed_from.value.json()["parts"] if part["etag"]}
    assert held <= present < set(range(1, upload.part_count + 1))
    wait_for_state(page, "continue.bin", "completed")
    artifacts(page, "2-continued-and-completed")

    assert chooser == [], "no file dialog"
    assert row_of(page, "continue.bin").get_attribute("data-upload-id") == upload_id
    sent = page.evaluate(
        "performance.getEntriesByType('resource').map(entry => new URL(entry.name))"
        ".filter(url => url.searchParams.has('partNumber'))"
        ".map(url => Number(url.searchParams.get('partNumber')))"
    )
    assert sorted(sent) == sorted(set(range(1, upload.part_count + 1)) - present), "only missing"
    upload.refresh_from_db()
    assert upload.status == Upload.Status.COMPLETED
    assert sha256_of_stored(s3_for_browser, upload.key) == hashlib.sha256(pattern(size)).hexdigest()
    # The handle is forgotten once its upload completed: nothing is offered after a reload.
    page.reload()
    page.wait_for_selector("#app[data-ready=true][data-lists-loaded]")
    assert page.get_by_role("button", name="Continue continue.bin").count() == 0


# --- two windows (needs the server's sessions and the client's `sessions` event) ---------------
def test_two_windows_uploading_one_file_see_each_other_and_finish_one_upload(
    watched, s3_for_browser, small_parts, tmp_path, artifacts
):
    path = write_random(tmp_path / "shared.bin", 40 * PART)
    windows = [watched(), watched()]
    for _, page in windows:
        page.set_input_files("#file-input", str(path))
    # Which window hears of the other first depends on when each talks to the server (the one
    # that joins always does, in its first sign answer): wait for either to say so.
    seeing = None
    deadline = time.monotonic() + 60
    while seeing is None and time.monotonic() < deadline:
        for _, page in windows:
            try:
                page.wait_for_selector(".sessions:not([hidden])", timeout=250)
            except PlaywrightTimeoutError:
                continue
            seeing = page
            break
    assert seeing is not None, "neither window said it was also uploading in another window"
    assert "Also uploading in another window" in seeing.locator(".sessions").inner_text()
    artifacts(seeing, "also-uploading-in-another-window")
    for _, page in windows:
        wait_for_state(page, path.name, "completed")
    uploads = Upload.objects.filter(filename=path.name)
    assert [upload.status for upload in uploads] == [Upload.Status.COMPLETED]
    assert sha256_of_stored(s3_for_browser, uploads[0].key) == sha256_of_file(path)
