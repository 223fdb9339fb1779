"""A page served from an origin the bucket's CORS does not allow says exactly that.

The browser refuses every part PUT such a page makes and tells the script only "network error";
without the server's word the page could say nothing better than "check your network".
"""

import os

PAGE_ONLY = "http://127.0.0.1:8000"  # the default of UPLOADS_CORS_ORIGINS, not the live server


def test_a_page_whose_origin_cors_refuses_names_the_origin_and_the_setting(
    open_session, s3_for_browser, settings, live_server, tmp_path, artifacts
):
    _, page = open_session()
    # `make run --addr 127.0.0.1:<other port>` before the fix: bucket and setting name only :8000.
    settings.UPLOADS_CORS_ORIGINS = [PAGE_ONLY]
    s3_for_browser.put_bucket_cors([PAGE_ONLY])
    page.reload()
    page.wait_for_selector("#app[data-ready=true][data-lists-loaded]")

    warning = page.locator("#cors-blocked")
    assert warning.is_visible()
    text = " ".join(warning.inner_text().split())
    assert f"does not allow this page's origin, {live_server.url}," in text
    assert f"UPLOADS_CORS_ORIGINS setting (now: {PAGE_ONLY})" in text
    assert "manage.py setup_storage" in text
    artifacts(page, "1-warned-on-load")

    # An upload tried anyway fails, after the client's retries, with the same cause named.
    path = tmp_path / "refused.bin"
    path.write_bytes(os.urandom(1024))
    page.set_input_files("#file-input", str(path))
    row = page.locator('#queue li[data-filename="refused.bin"]').first
    page.wait_for_selector(
        '#queue li[data-filename="refused.bin"][data-state="failed"]', timeout=120_000
    )
    assert row.get_attribute("data-error-code") == "network_error"
    error = " ".join(row.locator(".error").inner_text().split())
    assert f"does not allow this page's origin, {live_server.url}," in error
    assert "check your network" not in error.lower()
    artifacts(page, "2-upload-failed-naming-cors")
