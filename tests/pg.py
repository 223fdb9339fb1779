"""PostgreSQL and Redis for the tests: which pass this is, and databases for server processes.

`make test` runs the suite twice when it is given a PostgreSQL server (CI gives one): first on
SQLite, then with DATABASE_URL set to PARTWISE_TEST_DATABASE_URL. Tests that need several
database connections really running at once (races, load) run only in the PostgreSQL pass and
skip in the SQLite one with a message saying so. PARTWISE_TEST_REDIS_URL names a Redis server
for the Celery worker test's Redis broker; without it that variant skips.

Server processes started by tests (tests/django_server.py) get a fresh database of their own on
the same PostgreSQL server in the PostgreSQL pass, dropped when the test session ends.
"""

from __future__ import annotations

import atexit
import os
import uuid
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connections

DATABASE_URL_VARIABLE = "PARTWISE_TEST_DATABASE_URL"
REDIS_URL_VARIABLE = "PARTWISE_TEST_REDIS_URL"
POSTGRESQL_ENGINE = "django.db.backends.postgresql"

_created: list[str] = []


def on_postgresql() -> bool:
    """True in the PostgreSQL pass (DATABASE_URL is a postgres:// URL)."""
    return settings.DATABASES["default"]["ENGINE"] == POSTGRESQL_ENGINE


def _why_no_postgresql() -> str:
    if os.environ.get(DATABASE_URL_VARIABLE):
        return (
            "needs PostgreSQL: this is the SQLite pass; it runs in the PostgreSQL pass of "
            "`make test`"
        )
    return (
        f"needs PostgreSQL: {DATABASE_URL_VARIABLE} is not set, so `make test` runs no "
        f"PostgreSQL pass (CI sets it; e.g. {DATABASE_URL_VARIABLE}="
        "postgres://user:password@127.0.0.1:5432/partwise, a role that may create databases)"
    )


requires_postgresql = pytest.mark.skipif(not on_postgresql(), reason=_why_no_postgresql())


def redis_url() -> str:
    return os.environ.get(REDIS_URL_VARIABLE, "")


requires_redis = pytest.mark.skipif(
    not redis_url(),
    reason=(
        f"needs Redis: {REDIS_URL_VARIABLE} is not set (CI sets it; e.g. "
        f"{REDIS_URL_VARIABLE}=redis://127.0.0.1:6379/0)"
    ),
)


def database_url(name: str | None = None) -> str:
    """A postgres:// URL for database `name` (default: the one tests use right now)."""
    params = connections["default"].settings_dict
    user = quote(params.get("USER") or "", safe="")
    password = quote(params.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or "5432"
    return f"postgres://{credentials}{host}:{port}/{name or params['NAME']}"


def _maintenance_connection():  # type: ignore[no-untyped-def]
    import psycopg

    params = connections["default"].settings_dict
    return psycopg.connect(
        dbname="postgres",
        user=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
        host=params.get("HOST") or "127.0.0.1",
        port=params.get("PORT") or "5432",
        autocommit=True,
    )


def create_database(label: str) -> str:
    """A new empty database on the test PostgreSQL server; its URL. Dropped at exit."""
    name = f"partwise_{label}_{uuid.uuid4().hex[:10]}"
    with _maintenance_connection() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    _created.append(name)
    return database_url(name)


@atexit.register
def _drop_created_databases() -> None:
    if not _created:
        return
    try:
        with _maintenance_connection() as connection:
            for name in _created:
                # FORCE (PostgreSQL 13+): a server process left running must not keep it.
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as error:  # cleanup must not fail the run
        print(f"tests/pg.py: could not drop the test databases {_created}: {error}")
    _created.clear()


def server_database_url(workdir: os.PathLike[str] | str) -> str:
    """The database a server process started by a test uses: its own, on this pass's engine."""
    if on_postgresql():
        return create_database("server")
    return f"sqlite:///{os.path.join(workdir, 'db.sqlite3')}"
