"""Fixtures for the end-to-end tier: headless Debian Chromium driving the real page.

The page is served by pytest-django's `live_server` (Django in a thread of this process, so
the `settings` changes made by `real_s3` apply to it) and the browser PUTs parts straight to
the session's SeaweedFS. Everything listens on 127.0.0.1 on ports chosen at run time. Without
/usr/bin/chromium every test here is skipped with a message saying so. Every test in this
folder carries the `e2e` marker.
"""

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.s3server import real_s3, seaweedfs  # noqa: F401  (fixtures)
from tests.support.tiers import mark_tier

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
PASSWORD = "correct horse battery staple"
MiB = 1024 * 1024

# The live server must listen on loopback by address, never on a name that may resolve elsewhere.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")


def pytest_collection_modifyitems(items) -> None:
    mark_tier(items, "e2e")


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            # .ci/run installs Chromium: in CI a missing browser is a broken run, not a skip.
            pytest.fail(f"e2e: no Chromium at {CHROMIUM} in CI")
        pytest.skip(
            f"e2e: no Chromium at {CHROMIUM} (install Debian's `chromium` package); "
            "skipping the browser tests"
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run in a
    # thread with a running loop unless told that this is deliberate (the ORM calls here are
    # the test's own, made between browser steps).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            yield chromium
            chromium.close()


@pytest.fixture
def s3_for_browser(real_s3, live_server, settings):  # noqa: F811  (fixture from tests.s3server)
    """The test's fresh bucket, with a CORS rule that lets the live server's page PUT parts."""
    real_s3.put_bucket_cors([live_server.url])
    settings.UPLOADS_CORS_ORIGINS = [live_server.url]  # what the page checks its origin against
    return real_s3


@pytest.fixture
def e2e_user(django_user_model):
    return django_user_model.objects.create_user("erin", password=PASSWORD)


@pytest.fixture
def artifacts(request) -> Callable[[object, str], Path]:
    """screenshot(page, "state") saves test-artifacts/e2e/<test>--<state>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test_name = re.sub(r"[^\w.-]+", "_", request.node.name)

    def screenshot(page, state: str) -> Path:
        path = ARTIFACTS / f"{test_name}--{state}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return screenshot


@pytest.fixture
def open_session(browser, live_server, e2e_user, s3_for_browser) -> Iterator[Callable]:
    """open_session() -> (context, page): a new browser context (empty storage) signed in."""
    contexts = []

    def open_() -> tuple:
        context = browser.new_context(viewport={"width": 1000, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{live_server.url}/")
        assert "/login/" in page.url, "the page requires login"
        page.get_by_label("User name").fill(e2e_user.get_username())
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("#app[data-ready=true][data-lists-loaded]")
        return context, page

    yield open_
    for context in contexts:
        context.close()  # a no-op for a context the test closed already
