"""tokens/0002: DRF authtoken keys become named tokens, and no plain-text key stays in the database.

Each test migrates the `tokens` app back to 0001, builds what a database from before looked
like (DRF's `authtoken_token` table, with raw SQL: that app is no longer installed), migrates
forward and checks the result; the fixture leaves the schema migrated to the latest again.
Portable SQL only: the suite runs on SQLite and on PostgreSQL.
"""

import datetime
import hashlib
import secrets
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from rest_framework.test import APIClient

from uploads.tokens.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("tokens", "0001_initial")]
AFTER = [("tokens", "0002_drf_authtoken_keys_to_named_tokens")]
DRF_TABLE = "authtoken_token"
CREATED = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)


def migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)  # a fresh one: it reads what is applied now
    executor.migrate(targets)


@pytest.fixture
def before_the_migration() -> Iterator[Callable[[], None]]:
    """Migrates tokens back to 0001; the callable creates DRF's table as DRF's migrations did."""
    migrate(BEFORE)

    def create_drf_table() -> None:
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE {quote(DRF_TABLE)} ("
                f"{quote('key')} varchar(40) NOT NULL PRIMARY KEY, "
                f"{quote('created')} {connection.data_types['DateTimeField']} NOT NULL, "
                f"{quote('user_id')} integer NOT NULL UNIQUE)"
            )
        MigrationRecorder(connection).record_applied("authtoken", "0004_alter_tokenproxy_options")

    yield create_drf_table
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(DRF_TABLE)}")
    MigrationRecorder(connection).migration_qs.filter(app="authtoken").delete()
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def insert_drf_key(user, key: str, created: datetime.datetime = CREATED) -> None:  # type: ignore[no-untyped-def]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(DRF_TABLE)} ({quote('key')}, {quote('created')}, "  # noqa: S608
            f"{quote('user_id')}) VALUES (%s, %s, %s)",
            [key, connection.ops.adapt_datetimefield_value(created), user.pk],
        )


def every_stored_value() -> str:
    """Every row of every table in the database, as one text."""
    quote = connection.ops.quote_name
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {quote(table)}")  # noqa: S608 (introspected names)
            rows.extend(cursor.fetchall())
    return "\n".join(repr(row) for row in rows)


def test_a_drf_key_keeps_working_and_only_its_digest_stays(before_the_migration):
    before_the_migration()
    users = get_user_model().objects
    carol, dave = users.create_user("carol"), users.create_user("dave")
    carols, daves = secrets.token_hex(20), secrets.token_hex(20)
    insert_drf_key(carol, carols)
    insert_drf_key(dave, daves, created=CREATED + datetime.timedelta(days=1))
    _, named = ApiToken.issue(carol, name="laptop")  # issued before the migration too
    assert carols in every_stored_value()

    migrate(AFTER)

    for key, user in [(carols, carol), (daves, dave)]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        response = client.get("/api/auth/tokens/")
        assert response.status_code == 200, response.content
        current = [t for t in response.json() if t["current"]]
        assert [(t["name"], t["prefix"]) for t in current] == [("migrated", key[:10])]
        token = ApiToken.objects.get(user=user, name="migrated")
        assert token.digest == hashlib.sha256(key.encode()).hexdigest()
    assert ApiToken.objects.get(user=carol, name="migrated").created_at == CREATED
    assert ApiToken.objects.get(user=dave).created_at == CREATED + datetime.timedelta(days=1)
    assert ApiToken.find(named).name == "laptop"  # named tokens are untouched
    assert ApiToken.objects.count() == 3
    assert DRF_TABLE not in connection.introspection.table_names()
    assert not MigrationRecorder(connection).migration_qs.filter(app="authtoken").exists()
    stored = every_stored_value()
    assert carols not in stored
    assert daves not in stored


def test_an_empty_drf_table_is_dropped_too(before_the_migration):
    before_the_migration()

    migrate(AFTER)

    assert DRF_TABLE not in connection.introspection.table_names()
    assert not ApiToken.objects.exists()


def test_a_database_that_never_had_drf_tokens_migrates_without_change(before_the_migration):
    user = get_user_model().objects.create_user("erin")
    token, _ = ApiToken.issue(user, name="phone")

    migrate(AFTER)

    assert list(ApiToken.objects.all()) == [token]
    assert DRF_TABLE not in connection.introspection.table_names()
