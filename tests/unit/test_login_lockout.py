"""Login lockout (django-axes): failed logins per username and address end in a 429.

`/login/` (the upload page's), `/admin/login/` and `POST /api/auth/token/` all count; after
AXES_FAILURE_LIMIT failures the username is refused from that address, with Retry-After,
until the cool-off passes or an operator deletes the access attempt.
"""

from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import PASSWORD
from uploads.exceptions import error_codes

LIMIT = 5
COOL_OFF = 15 * 60  # seconds: the shipped AXES_COOLOFF_TIME


@pytest.fixture(autouse=True)
def _lockout_as_shipped(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = LIMIT
    cache.clear()  # the token login's own throttle counts in the cache
    yield
    cache.clear()


def token_login(password: str, client: APIClient | None = None, username: str = "alice"):
    return (client or APIClient()).post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def test_the_token_login_locks_a_username_after_five_failures_with_a_json_429(user):
    statuses = [token_login("guess").status_code for _ in range(LIMIT)]
    assert statuses == [401] * (LIMIT - 1) + [429]

    locked = token_login(PASSWORD)  # even the right password, while locked
    assert locked.status_code == 429
    assert locked.json()["code"] == "login_locked"
    assert "try again later" in locked.json()["detail"]
    assert int(locked["Retry-After"]) == COOL_OFF
    assert AccessAttempt.objects.get().username == "alice"


def test_a_lockout_is_per_username_and_address(user, other_user):
    for _ in range(LIMIT):
        token_login("guess")
    assert token_login(PASSWORD, username="mallory").status_code == 201  # another username
    elsewhere = APIClient(REMOTE_ADDR="198.51.100.9")
    assert token_login(PASSWORD, client=elsewhere).status_code == 201  # another address


def test_behind_a_proxy_the_address_it_saw_is_locked(user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxied = APIClient(HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert [token_login("guess", client=proxied).status_code for _ in range(LIMIT)][-1] == 429
    assert AccessAttempt.objects.get().ip_address == "198.51.100.7"
    other = APIClient(HTTP_X_FORWARDED_FOR="198.51.100.8")  # same proxy, another client
    assert token_login(PASSWORD, client=other).status_code == 201


def test_without_proxies_a_forged_forwarded_for_does_not_escape_the_lockout(user):
    def guess(address: str) -> int:
        client = APIClient(HTTP_X_FORWARDED_FOR=address)
        return token_login("guess", client=client).status_code

    assert [guess(f"203.0.113.{n}") for n in range(LIMIT)][-1] == 429


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_the_login_pages_lock_a_username_after_five_failures(client, db, path):
    get_user_model().objects.create_superuser("alice", password=PASSWORD)

    def post(password: str):
        return client.post(path, {"username": "alice", "password": password})

    assert [post("guess").status_code for _ in range(LIMIT)] == [200] * (LIMIT - 1) + [429]
    locked = post(PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert int(locked["Retry-After"]) == COOL_OFF
    assert "_auth_user_id" not in client.session


def test_deleting_the_access_attempt_unlocks(user):
    for _ in range(LIMIT):
        token_login("guess")
    AccessAttempt.objects.all().delete()  # what the admin's delete action does
    assert token_login(PASSWORD).status_code == 201


def test_axes_reset_username_unlocks(user):
    for _ in range(LIMIT):
        token_login("guess")
    call_command("axes_reset_username", "alice", stdout=StringIO())
    assert token_login(PASSWORD).status_code == 201


def test_the_admin_lists_access_attempts(db):
    admin = get_user_model().objects.create_superuser("root", password=PASSWORD)
    for _ in range(2):
        Client().post("/admin/login/", {"username": "alice", "password": "guess"})
    client = Client()
    client.force_login(admin)
    response = client.get("/admin/axes/accessattempt/")
    assert response.status_code == 200
    assert "alice" in response.content.decode()


def test_login_locked_is_a_documented_error_code():
    assert error_codes()["login_locked"] == 429
