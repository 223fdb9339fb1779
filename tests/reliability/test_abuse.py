"""Hostile use of every API (REST, Uppy-compatible /s3/, tokens) beyond one bad request.

Throttling answers 429 with Retry-After and changes nothing, a revoked token stops working at
the very next request, and no answer leaks S3 upload ids, object keys or names of others,
secrets, or a stack trace (a bug answers a bare JSON 500). The requests aim at the `world`
(tests/support/world.py); the catalogue of single bad requests, and another user's ids, are in
tests/unit/test_bad_input.py.
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from tests.support.http import send
from tests.support.snapshots import snapshot
from tests.support.uploads import put_part
from tests.support.world import (
    ID_ROUTES,
    LOGIN,
    S3,
    SECRET_KEY,
    SIGN,
    TOKENS,
    UPPY,
    U,
    new,
    report,
    uppy_parts,
)
from uploads import services
from uploads.models import Upload
from uploads.tokens.models import ApiToken

pytestmark = pytest.mark.django_db


# --- throttling ------------------------------------------------------------------------------
THROTTLED = [
    pytest.param("get", U, None, "alice", id="REST list"),
    pytest.param("post", U, new(), "alice", id="REST create"),
    pytest.param("post", SIGN, {"parts": [{"number": 1}]}, "alice", id="REST sign"),
    pytest.param("post", S3, {"filename": "a.bin"}, "alice", id="Uppy create"),
    pytest.param("get", UPPY + "/batch?partNumbers=1", None, "alice", id="Uppy sign"),
    pytest.param("get", TOKENS, None, "alice", id="token list"),
    pytest.param(
        "post", LOGIN, {"username": "alice", "password": "wrong"}, "none", id="token login"
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "auth"), THROTTLED)
def test_too_many_requests_answer_429_with_retry_after_and_change_nothing(
    world, secret_storage, shipped_throttles, settings, method, path, body, auth
):
    # The shipped throttle classes, at two requests a minute.
    settings.UPLOADS_API_THROTTLE_RATES = {"user": "2/min", "anon": "2/min", "token_login": "2/min"}
    client = world.client(auth)
    url = path.format(**world.ids)
    for _ in range(2):
        send(client, method, url, body)
    before = snapshot(secret_storage)

    response = send(client, method, url, body)

    cache.clear()
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["code"] == "throttled"
    assert snapshot(secret_storage) == before


# --- revoked tokens --------------------------------------------------------------------------
CALLS_WITH_A_TOKEN = [
    pytest.param("get", U, None, id="REST list"),
    pytest.param("get", U + "{mine}/", None, id="REST detail"),
    pytest.param("post", SIGN, {"parts": [{"number": 1}]}, id="REST sign"),
    pytest.param("post", U + "{mine}/complete/", None, id="REST complete"),
    pytest.param("post", S3, {"filename": "a.bin"}, id="Uppy create"),
    pytest.param("get", UPPY + "/1", None, id="Uppy sign"),
    pytest.param("get", TOKENS, None, id="token list"),
]


@pytest.mark.parametrize(("method", "path", "body"), CALLS_WITH_A_TOKEN)
def test_a_revoked_token_stops_working_at_the_next_request(
    world, secret_storage, method, path, body
):
    url = path.format(**world.ids)
    phone_token, phone_key = ApiToken.issue(world.alice, name="phone")
    phone = world.client(f"Token {phone_key}")
    laptop = world.client("alice")
    assert send(phone, "get", U).status_code == 200  # it worked a moment ago

    revoked = laptop.delete(f"{TOKENS}{phone_token.pk}/")
    before = snapshot(secret_storage)
    response = send(phone, method, url, body)

    assert revoked.status_code == 204
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert snapshot(secret_storage) == before
    assert send(laptop, "get", U).status_code == 200  # the other token still works


def test_a_token_that_revokes_itself_stops_at_once(world):
    laptop = world.client("alice")

    assert laptop.delete(f"{TOKENS}{world.alice_token.pk}/").status_code == 204
    assert laptop.get(U).status_code == 401


def test_a_revoked_command_token_and_a_deactivated_user_stop_at_once(world, secret_storage):
    out = StringIO()
    call_command("create_token", "alice", "--name", "script", stdout=out, stderr=StringIO())
    script = world.client(f"Token {out.getvalue().strip()}")
    named = world.client("alice")
    assert script.get(U).status_code == 200
    ApiToken.objects.filter(user=world.alice, name="script").delete()  # revoked in the admin
    call_command("create_token", "alice", "--name", "script", stdout=StringIO(), stderr=StringIO())

    assert script.get(U).status_code == 401
    world.alice.is_active = False
    world.alice.save()
    assert named.get(U).status_code == 401


# --- nothing leaks ---------------------------------------------------------------------------
def _without_presigned_urls(value: Any) -> Any:
    """The answer minus the presigned URLs, which must carry the owner's S3 upload id."""
    if isinstance(value, dict):
        return {
            k: "<url>" if k in {"url", "presignedUrls"} else _without_presigned_urls(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_presigned_urls(v) for v in value]
    return value


def test_no_answer_leaks_s3_ids_secrets_others_uploads_or_a_stack_trace(
    world, secret_storage, settings
):
    alice, mallory = (
        world.client("alice"),
        world.client(f"Token {ApiToken.issue(world.mallory, name='probe')[1]}"),
    )
    ids = world.ids
    mine = f"{U}{ids['mine']}/"
    data = b"x" * 4096
    answers = []

    def call(client: APIClient, method: str, url: str, body: Any = None) -> Any:
        response = send(client, method, url, body)
        answers.append((client is mallory, url, response))
        return response

    # Everything alice does: REST, Uppy and token routes, errors included.
    created = call(alice, "post", U, new(size=len(data))).json()
    signed = call(alice, "post", f"{U}{created['id']}/sign/", {"parts": [{"number": 1}]}).json()
    etag = put_part(secret_storage, Upload.objects.get(pk=created["id"]), 1, data)
    call(alice, "post", f"{U}{created['id']}/parts/", report(etag=etag))
    call(alice, "post", f"{U}{created['id']}/complete/")
    call(alice, "post", f"{mine}complete/")  # part_missing
    call(alice, "get", mine)
    call(alice, "get", U)
    call(alice, "get", f"{S3}/{ids['uppy']}")
    call(alice, "get", f"{S3}/{ids['uppy']}/1")
    call(alice, "get", f"{S3}/{ids['uppy']}/batch?partNumbers=1,2")
    call(alice, "post", f"{S3}/{ids['uppy']}/complete", uppy_parts(1))  # part_missing
    call(alice, "post", S3, {"filename": "b.bin"})
    call(alice, "get", TOKENS)
    call(world.client("none"), "post", LOGIN, {"username": "alice", "password": "wrong"})
    call(alice, "delete", mine)
    # Everything mallory tries on alice's uploads, and her own list.
    for upload_id in (ids["mine"], ids["uppy"], created["id"]):
        for _, method, path, body in [r for r in ID_ROUTES if "tokens" not in r[2]]:
            call(mallory, method, path.format(id=upload_id), body)
    call(mallory, "get", U)
    call(mallory, "get", TOKENS)

    assert signed["parts"][0]["url"]  # the owner's presigned URL, which must name its S3 id
    s3_ids = list(Upload.objects.values_list("s3_upload_id", flat=True))
    alices = Upload.objects.filter(owner=world.alice)
    alice_marks = [str(u.pk) for u in alices] + [u.key for u in alices] + ["movie.mp4", "uppy.bin"]
    secrets = [SECRET_KEY, *ApiToken.objects.values_list("digest", flat=True), world.alice_key]
    assert len(answers) >= 40
    for from_mallory, url, response in answers:
        text = response.content.decode()
        headers = json.dumps(dict(response.headers))
        scrubbed = json.dumps(_without_presigned_urls(response.json())) if text else ""
        where = f"{response.status_code} {url}"
        assert not any(s3_id in scrubbed or s3_id in headers for s3_id in s3_ids), where
        assert not any(secret in text or secret in headers for secret in secrets), where
        assert "Traceback" not in text
        assert 'File "' not in text
        if from_mallory:
            assert not any(mark in text or mark in headers for mark in alice_marks), where


# --- a bug answers a bare JSON 500 -----------------------------------------------------------
@pytest.mark.parametrize("path", [U + "{mine}/", S3 + "/{uppy}"], ids=["REST detail", "Uppy parts"])
def test_a_bug_answers_a_json_500_without_any_trace_of_it(world, monkeypatch, settings, path):
    settings.DEBUG = False

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail /srv/partwise/uploads/services.py line 42")

    monkeypatch.setattr(services, "sync_upload_parts", broken)
    client = Client(raise_request_exception=False)
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {world.alice_key}"

    response = client.get(path.format(**world.ids))

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "code": "server_error",
        "detail": "The server failed. Try again later.",
    }
