"""The integration tier: every test in this folder carries the `integration` marker."""

from tests.s3server import real_s3, seaweedfs  # noqa: F401  (fixtures)
from tests.support.tiers import mark_tier


def pytest_collection_modifyitems(items) -> None:
    mark_tier(items, "integration")
