"""The real @uppy/core + @uppy/aws-s3 from npm, in headless Chromium, against Partwise.

Uppy is configured as for Companion (`companionEndpoint` = the site, `shouldUseMultipart:
true`) and uploads a 30 MiB file through /s3/multipart… to a real SeaweedFS; the object must
have the file's SHA-256. Another user's browser session is then refused that upload's id on
every route. The page is served by the same `runserver` (tests/e2e/uppy_urls.py), logged in
with a session cookie, so CSRF is proven by the Origin header exactly as in production.
"""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.django_server import DjangoServer
from tests.s3server import client_of
from tests.support.checksums import sha256_of_object

MiB = 1024 * 1024
UPPY_DIR = Path(__file__).resolve().parent / "uppy"
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def uppy_bundle() -> Path:
    """The page's bundle: `npm ci` (pinned versions) when needed, then esbuild."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: it fetches @uppy/core and @uppy/aws-s3")
    if not (UPPY_DIR / "node_modules" / "@uppy" / "aws-s3").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=UPPY_DIR, check=True, timeout=300
        )
    subprocess.run([npm, "run", "--silent", "build"], cwd=UPPY_DIR, check=True, timeout=120)
    return UPPY_DIR / "dist" / "uppy-test.js"


@pytest.fixture(scope="module")
def server(seaweedfs, tmp_path_factory, uppy_bundle):
    server = DjangoServer(
        tmp_path_factory.mktemp("django"), seaweedfs, settings_module="tests.e2e.uppy_settings"
    ).start()
    yield server
    server.stop()


def logged_in_page(browser, server: DjangoServer, username: str):
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": server.users[username].session, "url": server.url}]
    )
    page = context.new_page()
    page.goto(f"{server.url}/uppy-test/")
    page.wait_for_function("window.uppyReady === true")
    return page


def test_uppy_uploads_30_mib_through_the_companion_endpoints(browser, server, tmp_path):
    data = os.urandom(30 * MiB)
    path = tmp_path / "clip.bin"
    path.write_bytes(data)
    page = logged_in_page(browser, server, "alice")
    page.set_input_files("#file", str(path))
    log_mark = len(server.log())
    result = page.evaluate("() => window.uploadWithUppy(document.querySelector('#file').files[0])")

    assert result["failed"] == [], result
    (uploaded,) = result["successful"]
    upload_id = uploaded["uploadURL"].rstrip("/").rsplit("/", 1)[1]
    assert uploaded["uploadURL"] == f"{server.url}/api/uploads/{upload_id}/"
    done = server.api("GET", f"/api/uploads/{upload_id}/").json()
    assert (done["status"], done["size"], done["filename"]) == ("completed", len(data), "clip.bin")
    assert uploaded["body"]["key"] == done["key"]
    # Uppy went through the Companion-compatible routes only: create, one sign per part, complete.
    requests_seen = server.log()[log_mark:]
    assert requests_seen.count('"POST /s3/multipart HTTP') == 1
    assert requests_seen.count(f'"GET /s3/multipart/{upload_id}/') == done["parts_uploaded"]
    assert requests_seen.count(f'"POST /s3/multipart/{upload_id}/complete?key=') == 1

    in_s3 = sha256_of_object(client_of(server.s3), server.bucket, done["key"])
    assert in_s3 == hashlib.sha256(data).hexdigest()

    # Another user's browser: every route answers 404 for that upload id, and nothing changes.
    page = logged_in_page(browser, server, "mallory")
    statuses = page.evaluate(
        """async ([id, key]) => {
            const base = `${location.origin}/s3/multipart/${id}`
            const q = `?key=${encodeURIComponent(key)}`
            const json = {'content-type': 'application/json'}
            const calls = [
                fetch(base + q),
                fetch(`${base}/1${q}`),
                fetch(`${base}/batch${q}&partNumbers=1,2`),
                fetch(`${base}/complete${q}`, {method: 'POST', headers: json,
                      body: JSON.stringify({parts: [{PartNumber: 1, ETag: 'a'.repeat(32)}]})}),
                fetch(base + q, {method: 'DELETE'}),
            ]
            return (await Promise.all(calls)).map((response) => response.status)
        }""",
        [upload_id, done["key"]],
    )
    assert statuses == [404, 404, 404, 404, 404]
    assert server.api("GET", f"/api/uploads/{upload_id}/").json()["status"] == "completed"
