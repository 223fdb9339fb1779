"""The topology tier (the production layout, with failures): every test here carries `topology`.

It needs PostgreSQL and Redis, so it runs in the PostgreSQL pass of `make test` and skips in
the SQLite one; in CI (CI set) a PostgreSQL pass without Redis is an error, not a skip.
"""

import os
from collections.abc import Iterator

import pytest

from tests import pg
from tests.support.tiers import mark_tier, tier_of
from tests.support.topology import Topology


def pytest_collection_modifyitems(items) -> None:
    mark_tier(items, "topology")
    ours = [item for item in items if tier_of(item.path) == "topology"]
    if ours and os.environ.get("CI") and pg.on_postgresql() and not pg.redis_url():
        raise pytest.UsageError(
            f"the topology tier needs Redis in CI: set {pg.REDIS_URL_VARIABLE} (.ci/run does)"
        )


@pytest.fixture
def topology(tmp_path) -> Iterator[Topology]:
    """docs/deployment.md's reference layout, started on loopback; stopped after the test."""
    started = Topology(tmp_path / "topology", pg.redis_url()).start()
    try:
        yield started
    finally:
        started.stop()
