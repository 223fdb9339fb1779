"""The integration tier: every test in this folder carries the `integration` marker.

Its S3 tests run on two real stores: `real_s3` is a bucket on the session's SeaweedFS and on
its Ceph RGW (Debian's radosgw 16, which verifies Content-MD5 but no x-amz-checksum-*). A test
about what only one of them does asks for `seaweedfs_s3` (or the `seaweedfs` server) instead.
"""

from collections.abc import Iterator

import pytest

from tests.s3server import bucket_on, probed_bucket_on, seaweedfs  # noqa: F401  (fixtures)
from tests.support.ceph_rgw import ceph_rgw  # noqa: F401  (fixture)
from tests.support.tiers import mark_tier
from uploads import selectors
from uploads.integrity import ALGORITHMS
from uploads.storage import MultipartStorage
from uploads.storage.bucket import CHECKSUM_HEADERS

STORES = ["seaweedfs", "ceph_rgw"]


def pytest_collection_modifyitems(items) -> None:
    mark_tier(items, "integration")
    # What the database engine can change does not depend on which S3 answers: the PostgreSQL
    # pass (`-m "not other_store"`, Makefile) runs the store-parametrized tests on SeaweedFS
    # only, and Ceph RGW's own behaviour once, in the SQLite pass.
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "ceph_rgw" in params.values() or "ceph_rgw" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.other_store)


@pytest.fixture(params=STORES, ids=["seaweedfs", "ceph-rgw"])
def s3_server(request):
    """The store a parametrized test runs on."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def real_s3(s3_server, settings) -> Iterator[MultipartStorage]:
    """A bucket of its own on each store, with the settings pointed at it, and the store's
    probed profile known to the server for this test."""
    yield from probed_bucket_on(s3_server, settings)


@pytest.fixture
def digest(real_s3) -> str:
    """The strongest part digest the store verifies: SHA256 on SeaweedFS, MD5 on Ceph RGW."""
    profile = selectors.store_profile(real_s3)
    assert profile is not None
    return next(a for a in ALGORITHMS if a in profile.verifies)


def header_of(algorithm: str) -> str:
    """The signed header a part's digest travels in."""
    return CHECKSUM_HEADERS[algorithm]


@pytest.fixture
def seaweedfs_s3(seaweedfs, settings) -> Iterator[MultipartStorage]:  # noqa: F811
    """A bucket on SeaweedFS only, for what only it does."""
    yield from bucket_on(seaweedfs, settings)
