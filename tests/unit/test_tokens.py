"""Token login for apps: obtain named tokens with a password, list them, revoke one."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from uploads.tokens.models import ApiToken

pytestmark = pytest.mark.unit
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(settings):
    # The login throttle counts attempts in the cache, which outlives a test.
    cache.clear()
    # Logins hash passwords; the production hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
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


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "alice"}, {"username": "alice", "password": PASSWORD, "name": "x" * 65}],
    ids=["empty", "no-password", "name-too-long"],
)
def test_a_malformed_login_is_refused(user, body):
    response = APIClient().post("/api/auth/token/", body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


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


@pytest.mark.parametrize("token_id", ["theirs", "not-a-uuid"], ids=["other-user", "malformed"])
def test_another_users_token_cannot_be_revoked(user, other_user, token_id):
    theirs = login(username="mallory").json()
    mine = login().json()
    target = theirs["id"] if token_id == "theirs" else token_id
    response = client_with(mine["token"]).delete(f"/api/auth/tokens/{target}/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert client_with(theirs["token"]).get("/api/uploads/").status_code == 200


def test_listing_and_revoking_need_a_login(db):
    assert APIClient().get("/api/auth/tokens/").status_code == 401


def test_drfs_own_token_still_authenticates(api_client):
    assert api_client.get("/api/auth/tokens/").json() == []


def test_logins_are_throttled_per_address(user):
    statuses = [login(password="guess").status_code for _ in range(11)]
    assert statuses == [401] * 10 + [429]
    response = login()
    assert (response.status_code, response.json()["code"]) == (429, "throttled")
    assert int(response.headers["Retry-After"]) > 0


def test_a_user_cannot_pile_up_tokens_without_limit(user, monkeypatch):
    monkeypatch.setattr("uploads.api.tokens.MAX_TOKENS_PER_USER", 2)
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
