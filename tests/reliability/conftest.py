"""The reliability tier (faults, races, load, abuse): every test here carries `reliability`."""

from tests.support.tiers import mark_tier


def pytest_collection_modifyitems(items) -> None:
    mark_tier(items, "reliability")
