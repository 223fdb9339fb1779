"""The unit tier: every test in this folder carries the `unit` marker."""

from tests.support.tiers import mark_tier


def pytest_collection_modifyitems(items) -> None:
    mark_tier(items, "unit")
