"""Which tests the PostgreSQL pass of `make test` runs again: those the database engine can touch.

The second pass (`make test-postgres`) exists for what depends on the engine: locks,
constraints, races, query behaviour. A test that reaches no database that follows DATABASE_URL
runs the same code on either engine, so running it twice proves nothing more; such a test
carries the `engine_independent` marker and the PostgreSQL pass deselects it
(`-m "not e2e and not engine_independent and not other_store"`). The rule, applied here:

* Unit tier: a test that asks for no database (no `django_db` mark, no `db`,
  `transactional_db`, `live_server`… fixture) gets the marker by itself. pytest-django refuses
  any database access from such a test, so it provably never reaches the engine, and the unit
  tier starts no server process that opens the test database (its subprocesses are clients,
  node, `check --deploy` with the documented environment, and `pytest --collect-only`).
* Other tiers: only by an explicit `pytest.mark.engine_independent`, for tests whose every
  process uses no database that follows DATABASE_URL (e.g. `rundev`, which drops DATABASE_*
  from its environment and keeps its own SQLite file; a bare SeaweedFS; S3 signing). A test
  that starts a Partwise server process (tests/django_server.py) must not carry it: in the
  PostgreSQL pass that server runs on PostgreSQL.

A test marked by hand that asks for a database is refused at collection, so the marker cannot
silently drop a test the engine can affect from the PostgreSQL pass. Tests that exist only for
PostgreSQL ("needs PostgreSQL") ask for a database, so they never carry it.
"""

from __future__ import annotations

import pytest

from tests.support.tiers import tier_of

MARKER = "engine_independent"
# Fixtures through which a test reaches the in-process test database (pytest-django's, and
# everything built on them shows up here too: `fixturenames` is the closure).
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
    }
)


def asks_for_a_database(item: pytest.Item) -> bool:
    if item.get_closest_marker("django_db") is not None:
        return True
    return bool(DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker (it reads the marker added here)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems = []
    for item in items:
        database = asks_for_a_database(item)
        if item.get_closest_marker(MARKER) is not None:
            if database:
                problems.append(f"{item.nodeid}: marked {MARKER} but asks for a database")
        elif tier_of(item.path) == "unit" and not database:
            item.add_marker(MARKER)
    if problems:
        raise pytest.UsageError("\n  ".join([f"{MARKER} on a database test:", *problems]))
