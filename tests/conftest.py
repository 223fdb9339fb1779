"""Shared fixtures: users, API clients, and the moto chain aws_credentials -> s3 -> bucket.

The unit tier swaps the S3 endpoint for moto's in-process mock; the integration tier
(tests/integration/conftest.py) points the same settings at a real SeaweedFS. Helpers and
fixtures shared across files live in tests/support/ (its plugins are registered here); each
tier's conftest.py marks its folder's tests with the tier's marker (tests/support/tiers.py).
"""

from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from moto import mock_aws
from rest_framework.test import APIClient

from project.celery import app as celery_app
from tests.factories import PASSWORD
from uploads.api.base import PartwiseApiView
from uploads.storage import MultipartStorage, get_storage, reset_storage
from uploads.tokens.models import ApiToken

pytest_plugins = [
    "tests.support.tiers",
    "tests.support.passwords",
    "tests.support.lockout",
    "tests.support.world",
    "tests.support.engines",
]

BUCKET = "partwise-test"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory
) -> None:
    """On SQLite, the test database is a file, not Django's default in-memory one.

    Servers in a thread of this process (pytest-django's live_server, the e2e tier's) share an
    in-memory database's one connection between their request threads, and concurrent requests
    then break each other's transactions ("no such savepoint", "database table is locked"). A
    file gives each thread its own connection, with the settings' WAL mode and write lock at
    BEGIN, as `make run` has.

    It keeps pytest-django's own step (the fixture it replaces): under pytest-xdist
    (`make test`), each worker's test database gets the worker's suffix (test_partwise_gw0, …);
    the SQLite file is per worker already, in the worker's own temporary folder.
    """
    database = django_settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        name = tmp_path_factory.mktemp("database") / "test.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(name)


@pytest.fixture(autouse=True, scope="session")
def _celery_broker_in_memory() -> None:
    """Tasks that services queue (on commit) go to an in-process broker, never to var/.

    The Celery worker test points the app at its own broker folder for its duration.
    """
    celery_app.conf.broker_url = "memory://"
    celery_app.conf.broker_transport_options = {}


@pytest.fixture(autouse=True)
def _client_state_in_tmp(tmp_path, monkeypatch) -> None:
    """partwise_client keeps each file's session under a state directory: the test's own
    (the CLI subprocesses inherit it), never the developer's ~/.local/state."""
    monkeypatch.setenv("PARTWISE_STATE_DIR", str(tmp_path / "partwise-state"))


# The throttles Partwise's API views ship with, before any test turns them off.
SHIPPED_THROTTLES = list(PartwiseApiView.throttle_classes)


@pytest.fixture(autouse=True)
def _no_throttling_by_default(settings, monkeypatch) -> None:
    # Throttling has its own tests; elsewhere it would make test order matter.
    monkeypatch.setattr(PartwiseApiView, "throttle_classes", [])


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # The cache holds throttle counts and the store's profile: none may leak into the next test.
    yield
    cache.clear()


@pytest.fixture
def shipped_throttles(monkeypatch) -> Iterator[None]:
    """The API's shipped throttles back on, with a cleared count."""
    monkeypatch.setattr(PartwiseApiView, "throttle_classes", SHIPPED_THROTTLES)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def aws_credentials(monkeypatch, settings) -> None:
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings.AWS_ACCESS_KEY_ID = "testing"
    settings.AWS_SECRET_ACCESS_KEY = "testing"
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.AWS_S3_ENDPOINT_URL = None
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = None


@pytest.fixture
def s3(aws_credentials) -> Iterator[None]:
    reset_storage()
    with mock_aws():
        yield
    reset_storage()


@pytest.fixture
def bucket(s3, settings) -> str:
    settings.UPLOADS_BUCKET = BUCKET
    get_storage().create_bucket()
    return BUCKET


@pytest.fixture
def storage(bucket) -> MultipartStorage:
    return get_storage()


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("mallory", password=PASSWORD)


def in_use_token(user) -> str:  # type: ignore[no-untyped-def]
    """A named token's key, marked used: no request of a test pays the periodic last_used write."""
    token, key = ApiToken.issue(user, name="test")
    token.mark_used()
    return key


@pytest.fixture
def api_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {in_use_token(user)}")
    return client


@pytest.fixture
def other_client(other_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {in_use_token(other_user)}")
    return client
