"""Named tokens: log in with a password, list, revoke; `create_token`; key lookup; the admin."""

import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import PASSWORD
from tests.pg import requires_postgresql
from uploads.exceptions import TooManyTokens
from uploads.tokens.models import ApiToken, digest_of
from uploads.tokens.services import issue_token, revoke_token

TOKENS = "/api/auth/tokens/"  # any authenticated route would do


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    # The login throttle counts attempts in the cache, which outlives a test.
    cache.clear()
    yield
    cache.clear()


def login(name="laptop", username="alice", password=PASSWORD, client=None):
    client = client or APIClient()
    return client.post(
        "/api/auth/token/",
        {"username": username, "password": password, "name": name},
        format="json",
    )


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_password_login_answers_a_named_token_that_authenticates(user):
    response = login(name="phone")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"id", "name", "prefix", "created_at", "last_used_at", "current", "token"}
    assert (body["name"], body["current"]) == ("phone", True)
    assert body["token"].startswith("pw_")
    assert body["token"].startswith(body["prefix"])
    assert client_with(body["token"]).get("/api/uploads/").status_code == 200
    assert ApiToken.objects.get(pk=body["id"]).last_used_at is not None


def test_the_key_is_stored_only_as_a_digest(user):
    key = login().json()["token"]
    stored = ApiToken.objects.get()
    assert key not in {stored.digest, stored.prefix, stored.name}
    assert len(stored.digest) == 64


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong"), ("nobody", PASSWORD), ("dormant", PASSWORD)],
    ids=["wrong-password", "unknown-user", "inactive-user"],
)
def test_a_failed_login_answers_one_401_for_every_reason(user, username, password):
    get_user_model().objects.create_user("dormant", password=PASSWORD, is_active=False)
    response = login(username=username, password=password)
    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_credentials",
        "detail": "Unable to log in with the username and password given.",
    }
    assert response.headers["WWW-Authenticate"].startswith("Token")
    assert not ApiToken.objects.exists()


def test_a_login_ignores_a_stale_token_sent_along(user):
    response = login(client=client_with("pw_revoked-long-ago"))
    assert response.status_code == 201


def test_each_login_is_a_separate_token_and_the_list_marks_the_current_one(user, other_user):
    phone = login(name="phone").json()
    laptop = login(name="laptop").json()
    login(name="theirs", username="mallory")
    assert phone["token"] != laptop["token"]
    listed = client_with(phone["token"]).get("/api/auth/tokens/")
    assert listed.status_code == 200
    assert [(t["name"], t["current"]) for t in listed.json()] == [
        ("laptop", False),
        ("phone", True),
    ]
    assert all("token" not in item for item in listed.json())


def test_revoking_one_token_leaves_the_others_working(user):
    phone = login(name="phone").json()
    laptop = login(name="laptop").json()
    response = client_with(laptop["token"]).delete(f"/api/auth/tokens/{phone['id']}/")
    assert response.status_code == 204
    revoked = client_with(phone["token"]).get("/api/uploads/")
    assert (revoked.status_code, revoked.json()["code"]) == (401, "authentication_failed")
    assert client_with(laptop["token"]).get("/api/uploads/").status_code == 200


def test_a_token_can_revoke_itself(user):
    key = login().json()
    assert client_with(key["token"]).delete(f"/api/auth/tokens/{key['id']}/").status_code == 204
    assert client_with(key["token"]).get("/api/auth/tokens/").status_code == 401


def test_the_test_clients_named_token_authenticates(api_client):
    assert [t["name"] for t in api_client.get("/api/auth/tokens/").json()] == ["test"]


def test_logins_are_throttled_per_address(user):
    statuses = [login(password="guess").status_code for _ in range(11)]
    assert statuses == [401] * 10 + [429]
    response = login()
    assert (response.status_code, response.json()["code"]) == (429, "throttled")
    assert int(response.headers["Retry-After"]) > 0


def test_a_user_cannot_pile_up_tokens_without_limit(user, monkeypatch):
    monkeypatch.setattr("uploads.tokens.services.MAX_TOKENS_PER_USER", 2)
    assert [login().status_code for _ in range(3)] == [201, 201, 409]
    assert login().json()["code"] == "too_many_tokens"


def test_a_forged_forwarded_for_header_does_not_escape_the_login_throttle(user):
    def guess(address: str):
        client = APIClient(HTTP_X_FORWARDED_FOR=address)
        return login(password="guess", client=client).status_code

    statuses = [guess(f"203.0.113.{n}") for n in range(11)]
    assert statuses == [401] * 10 + [429]


def test_behind_one_proxy_the_address_it_saw_is_throttled(user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    client = APIClient(HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert [login(password="guess", client=client).status_code for _ in range(11)][-1] == 429
    fresh = APIClient(HTTP_X_FORWARDED_FOR="198.51.100.8")
    assert login(password="guess", client=fresh).status_code == 401


# --- issuing outside the API: the service and `manage.py create_token` -----------------------
def create_token(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_token_prints_a_new_key_once_and_it_authenticates(user):
    out, err = create_token("alice", "--name", "backup script")

    key = out.strip()
    assert out == key + "\n"  # only the key on stdout: TOKEN=$(manage.py create_token alice)
    assert key.startswith("pw_")
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.prefix) == (user, "backup script", key[:10])
    assert token.prefix in err
    assert key not in err
    assert key not in {token.digest, token.prefix}
    listed = client_with(key).get(TOKENS).json()
    assert [(t["name"], t["current"]) for t in listed] == [("backup script", True)]


def test_create_token_issues_another_token_each_time(user):
    first, _ = create_token("alice")
    second, _ = create_token("alice")

    assert first != second
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["cli", "cli"]
    for key in (first.strip(), second.strip()):
        assert client_with(key).get(TOKENS).status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "No user 'nobody'."),
        (["dormant"], "User 'dormant' is inactive"),
        (["alice", "--name", ""], "--name must be 1 to 64 characters."),
        (["alice", "--name", "x" * 65], "--name must be 1 to 64 characters."),
    ],
    ids=["unknown-user", "inactive-user", "empty-name", "name-too-long"],
)
def test_create_token_refuses_what_would_not_work(user, args, message):
    get_user_model().objects.create_user("dormant", is_active=False)

    with pytest.raises(CommandError, match=re.escape(message)):
        create_token(*args)
    assert not ApiToken.objects.exists()


def test_create_token_keeps_the_per_user_limit(user, monkeypatch):
    monkeypatch.setattr("uploads.tokens.services.MAX_TOKENS_PER_USER", 1)
    create_token("alice")

    with pytest.raises(CommandError, match="At most 1 tokens per user"):
        create_token("alice")
    assert ApiToken.objects.count() == 1


def test_issue_token_refuses_beyond_the_limit_and_revoke_frees_a_place(user, monkeypatch):
    monkeypatch.setattr("uploads.tokens.services.MAX_TOKENS_PER_USER", 2)
    first, _ = issue_token(user, name="one")
    issue_token(user, name="two")

    with pytest.raises(TooManyTokens) as refused:
        issue_token(user, name="three")
    assert (refused.value.status_code, refused.value.code) == (409, "too_many_tokens")
    assert revoke_token(user, first.pk) is True
    assert revoke_token(user, first.pk) is False  # gone already
    assert revoke_token(user, "not-a-uuid") is False
    assert issue_token(user, name="three")[0].name == "three"


def test_another_users_token_is_not_revoked_by_the_service(user, other_user):
    theirs, key = issue_token(other_user, name="theirs")

    assert revoke_token(user, theirs.pk) is False
    assert ApiToken.find(key) == theirs


@requires_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_logins_of_one_user_never_exceed_the_limit(monkeypatch):
    monkeypatch.setattr("uploads.tokens.services.MAX_TOKENS_PER_USER", 3)
    alice = get_user_model().objects.create_user("alice")
    callers = 8
    barrier = threading.Barrier(callers)

    def login_once(_: int) -> bool:
        try:
            barrier.wait(timeout=30)
            issue_token(alice, name="race")
            return True
        except TooManyTokens:
            return False
        finally:
            connection.close()  # each thread has its own connection

    with ThreadPoolExecutor(callers) as pool:
        issued = list(pool.map(login_once, range(callers)))

    assert issued.count(True) == 3
    assert ApiToken.objects.filter(user=alice).count() == 3


# --- keys: shape, digest lookup, DRF's old keys -------------------------------------------------
def test_a_migrated_drf_key_authenticates_by_its_digest(user):
    key = secrets.token_hex(20)  # what DRF's authtoken issued: 40 hex digits
    ApiToken.objects.create(user=user, name="migrated", prefix=key[:10], digest=digest_of(key))

    assert client_with(key).get(TOKENS).status_code == 200
    assert client_with(key.upper()).get(TOKENS).status_code == 401


def test_the_drf_token_keyword_and_header_parsing_still_apply(user):
    _, key = ApiToken.issue(user, name="laptop")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get(TOKENS).status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {key} extra")
    assert client.get(TOKENS).json()["code"] == "authentication_failed"


# --- the admin ----------------------------------------------------------------------------------
def test_the_admin_shows_a_tokens_prefix_never_its_key_or_digest(admin_client, user):
    token, key = ApiToken.issue(user, name="laptop")

    pages = [
        admin_client.get("/admin/tokens/apitoken/"),
        admin_client.get(f"/admin/tokens/apitoken/{token.pk}/change/"),
    ]

    for page in pages:
        assert page.status_code == 200
        text = page.content.decode()
        assert token.prefix in text
        assert key not in text
        assert token.digest not in text
    assert admin_client.get("/admin/tokens/apitoken/add/").status_code == 403


def test_there_is_no_second_token_system(admin_client):
    assert not any(model._meta.app_label == "authtoken" for model in admin.site._registry)
    assert not apps.is_installed("rest_framework.authtoken")
    assert admin_client.get("/admin/authtoken/").status_code == 404
    assert "authtoken_token" not in connection.introspection.table_names()
