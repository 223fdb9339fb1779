"""HTTP edges: chunked bodies, failed authentication under the anonymous rate, JSON errors on
every /api/ and /s3/ route whatever fails (a bad Host, CSRF, no route)."""

import io
import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


# --- chunked request bodies (the WSGI server's side is in tests/integration) -------------------
def chunked(client: Client, path: str, body: bytes, *, terminated: bool = True):
    """A body sent as gunicorn hands a chunked one over: no CONTENT_LENGTH, `wsgi.input`
    ending where the body ends, `wsgi.input_terminated` (runserver sets none of it)."""
    return client.generic(
        "POST",
        path,
        b"",
        content_type="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": terminated},
    )


def test_a_chunked_json_body_is_read(user):
    body = json.dumps({"username": "alice", "password": PASSWORD, "name": "chunked"}).encode()
    response = chunked(APIClient(), "/api/auth/token/", body)
    assert response.status_code == 201, response.json()
    assert response.json()["name"] == "chunked"


def test_a_chunked_body_over_the_limit_is_a_413(user, settings):
    big = json.dumps({"username": "alice", "password": "x" * (2 * 1024 * 1024)}).encode()
    response = chunked(APIClient(), "/api/auth/token/", big)
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_a_chunked_body_the_server_cannot_read_is_a_411(user):
    body = json.dumps({"username": "alice", "password": PASSWORD}).encode()
    response = chunked(APIClient(), "/api/auth/token/", body, terminated=False)
    assert response.status_code == 411
    assert response.json()["code"] == "length_required"
    assert "Content-Length" in response.json()["detail"]


# --- failed authentication counts against the anonymous rate -----------------------------------
@pytest.mark.parametrize("path", ["/api/uploads/", "/api/auth/tokens/", "/s3/multipart"])
def test_the_61st_failed_authentication_in_a_minute_is_a_429(shipped_throttles, user, path):
    anonymous = APIClient()
    bad_token = APIClient(HTTP_AUTHORIZATION="Token pw_not-a-real-token")
    statuses = [(anonymous if n % 2 else bad_token).get(path).status_code for n in range(60)]
    assert statuses == [401] * 60

    for client in (anonymous, bad_token):
        response = client.get(path)
        assert response.status_code == 429
        assert response.json()["code"] == "throttled"
        assert 0 < int(response["Retry-After"]) <= 60


def test_the_anonymous_rate_does_not_touch_signed_in_users(shipped_throttles, api_client):
    for _ in range(61):
        APIClient().get("/api/uploads/")
    assert api_client.get("/api/uploads/").status_code == 200


# --- JSON errors under /api/ and /s3/, whatever fails ------------------------------------------
@pytest.fixture
def production(settings):
    settings.DEBUG = False  # Django calls handler400/404 only then


@pytest.mark.parametrize("path", ["/api/uploads/", "/s3/multipart", "/api/nowhere/"])
def test_a_bad_host_is_json_bad_host(production, path):
    response = Client(HTTP_HOST="evil.example").get(path)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "bad_host"


def test_a_bad_host_elsewhere_keeps_djangos_page(production):
    response = Client(HTTP_HOST="evil.example").get("/login/")
    assert response.status_code == 400
    assert "html" in response["Content-Type"]


@pytest.mark.parametrize("path", ["/api/nowhere/", "/s3/nowhere", "/api/uploads/x/y/z/"])
def test_no_route_is_json_not_found(production, path):
    response = Client().get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_wrong_method_is_json_method_not_allowed(production, api_client):
    response = api_client.put("/api/uploads/", {}, format="json")
    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")


def test_a_csrf_failure_under_the_api_is_json(production, rf):
    from django.middleware.csrf import CsrfViewMiddleware

    from uploads.api.errors import csrf_failure

    request = rf.post("/api/anything/")
    response = CsrfViewMiddleware(lambda r: None).process_view(request, csrf_failure, (), {})
    assert response is not None
    assert response.status_code == 403
    assert json.loads(response.content)["code"] == "csrf_failed"
    page = rf.post("/login/")
    assert "html" in csrf_failure(page, "no token")["Content-Type"]


def test_a_permission_denied_under_the_api_is_json(rf):
    from django.core.exceptions import PermissionDenied

    from uploads.api.errors import permission_denied

    response = permission_denied(rf.get("/s3/x"), PermissionDenied())
    assert (response.status_code, json.loads(response.content)["code"]) == (
        403,
        "permission_denied",
    )
