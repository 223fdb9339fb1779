"""The browser client under S3 faults: real Chromium, the real page, a fault proxy before S3.

The page's presigned URLs name a fault proxy (tests/faultproxy.py) in front of the session's
SeaweedFS, which resets part PUTs in the middle of their bodies and answers 503 SlowDown to
others; the upload still ends with the object's bytes equal to the file's. The other fault
scenarios (Python client, CLI, API, restarts) are in tests/reliability/test_faults.py.
"""

from collections.abc import Iterator

import pytest

from tests.faultproxy import FaultProxy
from tests.support.checksums import MiB, sha256_of_file, sha256_of_stored
from tests.support.files import write_random
from uploads.models import Upload

pytestmark = pytest.mark.timeout(300)

PART = 5 * MiB


@pytest.fixture
def part_proxy(s3_for_browser, seaweedfs, settings) -> Iterator[FaultProxy]:
    """The page's presigned URLs name a fault proxy in front of the test's SeaweedFS."""
    with FaultProxy(seaweedfs.endpoint, seed=3) as proxy:
        settings.AWS_S3_PUBLIC_ENDPOINT_URL = proxy.url
        settings.UPLOADS_PART_SIZE = PART
        yield proxy


def test_the_browser_client_survives_resets_in_the_middle_of_parts_and_slowdowns(
    open_session, s3_for_browser, part_proxy, tmp_path, artifacts
):
    path = write_random(tmp_path / "browser.bin", 5 * PART + 321)
    part_proxy.add("reset", method="PUT", path="partNumber=", after_bytes=MiB, fraction=0.3)
    part_proxy.add("error", method="PUT", path="partNumber=", status=503, fraction=0.3)
    _, page = open_session()

    page.set_input_files("#file-input", str(path))
    row = f'#queue li[data-filename="{path.name}"]'
    page.wait_for_selector(f'{row}[data-state="completed"]', timeout=120_000)
    artifacts(page, "completed-despite-resets")

    assert part_proxy.counts["reset"] >= 1, part_proxy.counts
    assert part_proxy.counts["error"] >= 1, part_proxy.counts
    upload = Upload.objects.get(pk=page.locator(row).first.get_attribute("data-upload-id"))
    assert upload.status == Upload.Status.COMPLETED
    assert sha256_of_stored(s3_for_browser, upload.key) == sha256_of_file(path)
    assert s3_for_browser.list_multipart_uploads(upload.key) == []
