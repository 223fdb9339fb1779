"""The page in Chromium on each real store: SeaweedFS (verifies SHA-256) and Ceph RGW 16
(verifies only Content-MD5), each probed as `setup_storage` probes it.

The page's presigned URLs name a fault proxy (tests/faultproxy.py) in front of the store, which
can flip one byte of a part on its way: the same length, other bytes.
"""

from collections.abc import Iterator

import pytest

from tests.faultproxy import FaultProxy
from tests.s3server import probed_bucket_on
from tests.support.ceph_rgw import ceph_rgw  # noqa: F401  (fixture)
from tests.support.checksums import MiB, sha256_of_file, sha256_of_stored
from tests.support.files import write_random
from uploads.models import Upload

pytestmark = pytest.mark.timeout(300)

# What each store's probe finds it verifies, hence what the page hashes every part with there.
DIGEST_ON = {"seaweedfs": "SHA256", "ceph_rgw": "MD5"}


@pytest.fixture(params=list(DIGEST_ON), ids=["seaweedfs", "ceph-rgw"])
def store(request):
    return request.param, request.getfixturevalue(request.param)


@pytest.fixture
def real_s3(store, settings):
    """This module's bucket is on each store in turn (the e2e tier's is on SeaweedFS only)."""
    yield from probed_bucket_on(store[1], settings)


@pytest.fixture
def part_proxy(store, s3_for_browser, settings) -> Iterator[FaultProxy]:
    with FaultProxy(store[1].endpoint) as proxy:
        settings.AWS_S3_PUBLIC_ENDPOINT_URL = proxy.url
        settings.UPLOADS_PART_SIZE = 5 * MiB
        yield proxy


def row_of(page, name: str):
    return page.locator(f'#queue li[data-filename="{name}"]').first


def wait_for_state(page, name: str, state: str) -> Upload:
    page.wait_for_selector(f'#queue li[data-filename="{name}"][data-state="{state}"]')
    return Upload.objects.get(pk=row_of(page, name).get_attribute("data-upload-id"))


def test_a_12_mib_file_arrives_byte_identical_hashed_the_way_its_store_verifies(
    store, open_session, s3_for_browser, part_proxy, tmp_path, artifacts
):
    path = write_random(tmp_path / "clean.bin", 12 * MiB)
    _, page = open_session()

    page.set_input_files("#file-input", str(path))
    upload = wait_for_state(page, path.name, "completed")
    artifacts(page, "completed")

    assert (upload.status, upload.part_count) == (Upload.Status.COMPLETED, 3)
    assert (upload.checksum_algorithm, upload.integrity) == (DIGEST_ON[store[0]], "store")
    assert sha256_of_stored(s3_for_browser, upload.key) == sha256_of_file(path)


def test_a_part_damaged_on_its_way_is_refused_by_the_store_and_never_completes(
    store, open_session, s3_for_browser, part_proxy, tmp_path, artifacts
):
    path = write_random(tmp_path / "damaged.bin", 12 * MiB)
    part_proxy.add("corrupt", method="PUT", path=r"partNumber=2(&|$)", after_bytes=MiB, times=1)
    _, page = open_session()

    page.set_input_files("#file-input", str(path))
    upload = wait_for_state(page, path.name, "failed")
    artifacts(page, "failed")

    assert part_proxy.counts["corrupt"] == 1
    assert row_of(page, path.name).get_attribute("data-error-code") == "checksum_mismatch"
    assert "part 2" in row_of(page, path.name).get_by_role("alert").inner_text()
    upload.refresh_from_db()
    assert upload.status == Upload.Status.UPLOADING  # not completed; it can be resumed
    stored = s3_for_browser.list_parts(upload.key, upload.s3_upload_id)
    assert 2 not in [part.number for part in stored]
    assert s3_for_browser.head_object(upload.key) is None
