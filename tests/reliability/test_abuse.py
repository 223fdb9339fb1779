"""Hostile input against every endpoint: REST, Uppy-compatible (/s3/) and token routes.

Each bad request must answer a 4xx JSON error with a stable `code` and change nothing: no
upload, part or token row, and no multipart upload in S3 (tests/unit/test_api.py holds the
first catalogue; this one goes further and across all three APIs). Then: throttling answers
429 with Retry-After, a revoked token stops working at the very next request, another user's
upload id answers exactly like a missing one, and no answer leaks S3 upload ids, object keys
or names of others, secrets, or a stack trace (a bug answers a bare JSON 500).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from io import StringIO
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from tests.factories import UploadFactory
from uploads import services
from uploads.models import Upload, UploadPart
from uploads.parts import MiB
from uploads.services import PartToSign, ReportedPart
from uploads.tokens.models import ApiToken

pytestmark = [pytest.mark.unit, pytest.mark.django_db]

SIZE = 11 * MiB  # three planned parts: 5, 5 and 1 MiB
CHECKSUM = base64.b64encode(hashlib.sha256(b"part one").digest()).decode()
OTHER_CHECKSUM = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
SECRET_KEY = "s3cr3t-" + uuid.uuid4().hex  # the S3 secret key: must never appear in an answer


class Raw:
    """A body sent as bytes with its own content type (not encoded by the test client)."""

    def __init__(self, data: bytes, content_type: str = "application/json") -> None:
        self.data, self.content_type = data, content_type


@dataclass
class World:
    """Everything the catalogue's paths name, and the clients that call them."""

    alice: Any
    mallory: Any
    alice_key: str
    alice_token: ApiToken
    mallory_token: ApiToken
    ids: dict[str, str]

    def client(self, auth: str) -> APIClient:
        if auth == "session":
            client = APIClient(enforce_csrf_checks=True)
            client.force_login(self.alice)
            return client
        client = APIClient()
        if auth == "alice":
            client.credentials(HTTP_AUTHORIZATION=f"Token {self.alice_key}")
        elif auth != "none":
            client.credentials(HTTP_AUTHORIZATION=auth)
        return client


@pytest.fixture
def secret_storage(aws_credentials, settings, request):
    settings.AWS_SECRET_ACCESS_KEY = SECRET_KEY
    return request.getfixturevalue("storage")


@pytest.fixture
def world(secret_storage, user, other_user, settings) -> World:
    settings.UPLOADS_ALLOWED_TYPES = ["application/*", "video/*", "image/*"]
    alice_token, alice_key = ApiToken.issue(user, name="laptop")
    mallory_token, _ = ApiToken.issue(other_user, name="mallory's")

    def start(owner: Any, **fields: Any) -> Upload:
        fields = {"filename": "movie.mp4", "size": SIZE, "part_size": 5 * MiB, **fields}
        return services.start_upload(owner=owner, **fields)[0]

    mine = start(user)
    services.record_parts(mine, parts=[ReportedPart(2, "b" * 32)], by=user)
    sha = start(user, checksum_algorithm="SHA256")
    services.sign_parts(sha, parts=[PartToSign(1, checksum=CHECKSUM)], by=user)
    services.record_parts(sha, parts=[ReportedPart(1, "c" * 32, CHECKSUM)], by=user)
    uppy = start(user, filename="uppy.bin", size=None, part_size=None)
    theirs = start(other_user, filename="theirs.bin")
    done = UploadFactory(owner=user, completed=True)
    aborted = UploadFactory(owner=user, aborted=True)
    ids = {
        "mine": str(mine.pk),
        "sha": str(sha.pk),
        "uppy": str(uppy.pk),
        "uppy_key": uppy.key,
        "done": str(done.pk),
        "aborted": str(aborted.pk),
        "theirs": str(theirs.pk),
        "unknown": str(uuid.uuid4()),
        "their_token": str(mallory_token.pk),
        "alice_token": str(alice_token.pk),
    }
    return World(user, other_user, alice_key, alice_token, mallory_token, ids)


def snapshot(storage: Any) -> tuple[Any, ...]:
    """Every row an answer could have changed, and what S3 holds in flight."""
    return (
        list(Upload.objects.order_by("pk").values()),
        list(UploadPart.objects.order_by("pk").values()),
        list(ApiToken.objects.order_by("pk").values("pk", "user", "name", "digest")),
        [(item.key, item.s3_upload_id) for item in storage.list_multipart_uploads("")],
    )


def send(client: APIClient, method: str, url: str, body: Any = None, **headers: str) -> Any:
    call = getattr(client, method)
    if isinstance(body, Raw):
        return call(url, body.data, content_type=body.content_type, **headers)
    if body is None:
        return call(url, **headers)
    return call(url, body, format="json", **headers)


# --- the catalogue ---------------------------------------------------------------------------
def new(**fields: Any) -> dict[str, Any]:
    return {"filename": "a.bin", "size": 10, **fields}


def report(**part: Any) -> dict[str, Any]:
    return {"parts": [{"number": 1, "etag": "a" * 32, **part}]}


def uppy_parts(*numbers: Any, etag: str = "a" * 32) -> dict[str, Any]:
    return {"parts": [{"PartNumber": n, "ETag": etag} for n in numbers]}


U, S3, TOKENS = "/api/uploads/", "/s3/multipart", "/api/auth/tokens/"
LOGIN = "/api/auth/token/"
UPPY = S3 + "/{uppy}"
SIGN, PARTS = U + "{mine}/sign/", U + "{mine}/parts/"
FORM = "application/x-www-form-urlencoded"
DEEP = b"[" * 100_000 + b"]" * 100_000  # json.loads gives up on it with a RecursionError


def case(
    name: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    auth: str = "alice",
    **headers: str,
) -> Any:
    return pytest.param(method, path, body, status, code, auth, headers, id=name)


CATALOGUE = [
    # --- REST create: names, sizes, types, other fields -------------------------------------
    case("name only spaces", "post", U, new(filename="   "), 400, "invalid_filename"),
    case("name dot", "post", U, new(filename="."), 400, "invalid_filename"),
    case("name dot dot", "post", U, new(filename=".."), 400, "invalid_filename"),
    case("name backslash", "post", U, new(filename="a\\b"), 400, "invalid_filename"),
    case("name newline", "post", U, new(filename="a\nb"), 400, "invalid_filename"),
    case("name zero-width space", "post", U, new(filename="\u200b"), 400, "invalid_filename"),
    case("name line separator", "post", U, new(filename="a\u2028b"), 400, "invalid_filename"),
    case("size an object", "post", U, new(size={"n": 1}), 400, "invalid"),
    case("size a list", "post", U, new(size=[10]), 400, "invalid"),
    case("size in exponent notation", "post", U, new(size="1e3"), 400, "invalid"),
    case(
        "size NaN",
        "post",
        U,
        Raw(b'{"filename": "a.bin", "size": NaN}'),
        400,
        "parse_error",
    ),
    case(
        "size of 400 digits",
        "post",
        U,
        Raw(b'{"filename": "a.bin", "size": 1' + b"0" * 400 + b"}"),
        413,
        "upload_too_large",
    ),
    case("part size 0", "post", U, new(part_size=0), 400, "invalid"),
    case("part size over 5 GiB", "post", U, new(part_size=5 * 1024**3 + 1), 400, "invalid"),
    case("part size null", "post", U, new(part_size=None), 400, "invalid"),
    case("content type 300 chars", "post", U, new(content_type="a/" + "b" * 298), 400, "invalid"),
    case("content type without subtype", "post", U, new(content_type="text/"), 400, "invalid"),
    case(
        "checksum algorithm lowercase", "post", U, new(checksum_algorithm="sha256"), 400, "invalid"
    ),
    case(
        "checksum algorithm a list", "post", U, new(checksum_algorithm=["SHA256"]), 400, "invalid"
    ),
    case("fingerprint with a space", "post", U, new(fingerprint="a b"), 400, "invalid"),
    case("fingerprint not ASCII", "post", U, new(fingerprint="\u00e9"), 400, "invalid"),
    case("client token 65 chars", "post", U, new(client_token="x" * 65), 400, "invalid"),
    case("client token empty", "post", U, new(client_token=""), 400, "invalid"),
    # --- REST create: bodies ----------------------------------------------------------------
    case("body JSON null", "post", U, Raw(b"null"), 400, "invalid"),
    case("body a JSON string", "post", U, Raw(b'"a.bin"'), 400, "invalid"),
    case("body a JSON number", "post", U, Raw(b"42"), 400, "invalid"),
    case("body nested 100,000 deep", "post", U, Raw(DEEP), 400, "parse_error"),
    case("body not UTF-8", "post", U, Raw(b'{"filename": "\xff\xfe"}'), 400, "parse_error"),
    case("body empty", "post", U, Raw(b""), 400, "invalid"),
    case("body XML", "post", U, Raw(b"<a/>", "application/xml"), 415, "unsupported_media_type"),
    case("body form", "post", U, Raw(b"size=1", FORM), 415, "unsupported_media_type"),
    # --- REST list, detail, abort -----------------------------------------------------------
    case("list fingerprint too long", "get", U + "?fingerprint=" + "x" * 129, None, 400, "invalid"),
    case("list status a wildcard", "get", U + "?status=%25", None, 400, "invalid"),
    case("list status uppercase", "get", U + "?status=COMPLETED", None, 400, "invalid"),
    case("abort a completed upload", "delete", U + "{done}/", None, 409, "upload_conflict"),
    case("PATCH detail", "patch", U + "{mine}/", new(), 405, "method_not_allowed"),
    case("POST detail", "post", U + "{mine}/", new(), 405, "method_not_allowed"),
    case("id with dot dot", "get", U + "{mine}/../{theirs}/", None, 404, "not_found"),
    case("id with NUL", "get", U + "{mine}%00/", None, 404, "not_found"),
    case("id of 31 hex digits", "get", U + "0" * 31 + "/", None, 404, "not_found"),
    # --- REST sign --------------------------------------------------------------------------
    case(
        "checksum 65 chars",
        "post",
        SIGN,
        {"parts": [{"number": 1, "checksum": "A" * 65}]},
        400,
        "invalid",
    ),
    case(
        "checksum of 31 bytes",
        "post",
        SIGN,
        {"parts": [{"number": 1, "checksum": base64.b64encode(b"x" * 31).decode()}]},
        400,
        "invalid",
    ),
    case("parts as numbers", "post", SIGN, {"parts": [1]}, 400, "invalid"),
    case("parts a string", "post", SIGN, {"parts": "1"}, 400, "invalid"),
    case(
        "sign without the checksum the upload requires",
        "post",
        U + "{sha}/sign/",
        {"parts": [{"number": 2}]},
        400,
        "checksum_required",
    ),
    case(
        "sign an uploaded part with another checksum",
        "post",
        U + "{sha}/sign/",
        {"parts": [{"number": 1, "checksum": OTHER_CHECKSUM}]},
        409,
        "part_conflict",
    ),
    case(
        "sign an aborted upload",
        "post",
        U + "{aborted}/sign/",
        {"parts": [{"number": 1}]},
        409,
        "upload_conflict",
    ),
    case(
        "sign a completed upload",
        "post",
        U + "{done}/sign/",
        {"parts": [{"number": 1}]},
        409,
        "upload_conflict",
    ),
    case(
        "sign part 10001 of an Uppy upload",
        "post",
        U + "{uppy}/sign/",
        {"parts": [{"number": 10_001}]},
        400,
        "invalid",
    ),
    # --- REST report ------------------------------------------------------------------------
    case("etag 33 hex digits", "post", PARTS, report(etag="a" * 33), 400, "invalid"),
    case("etag not hex", "post", PARTS, report(etag="g" * 32), 400, "invalid"),
    case("etag 131 chars", "post", PARTS, report(etag="a" * 131), 400, "invalid"),
    case("report part 10001", "post", PARTS, report(number=10_001), 400, "invalid"),
    case("report part past the last", "post", PARTS, report(number=4), 400, "part_out_of_range"),
    case(
        "report a part twice",
        "post",
        PARTS,
        {"parts": [{"number": 1, "etag": "a" * 32}, {"number": 1, "etag": "b" * 32}]},
        400,
        "invalid",
    ),
    case(
        "report without the checksum the upload requires",
        "post",
        U + "{sha}/parts/",
        {"parts": [{"number": 2, "etag": "a" * 32}]},
        400,
        "checksum_required",
    ),
    case(
        "report a checksum other than the one signed",
        "post",
        U + "{sha}/parts/",
        report(checksum=OTHER_CHECKSUM),
        409,
        "part_conflict",
    ),
    case(
        "report to a completed upload",
        "post",
        U + "{done}/parts/",
        report(),
        409,
        "upload_conflict",
    ),
    # --- REST complete ----------------------------------------------------------------------
    case(
        "complete an aborted upload",
        "post",
        U + "{aborted}/complete/",
        None,
        409,
        "upload_conflict",
    ),
    case("complete theirs", "post", U + "{theirs}/complete/", None, 404, "not_found"),
    case("PUT complete", "put", U + "{mine}/complete/", None, 405, "method_not_allowed"),
    # --- credentials ------------------------------------------------------------------------
    case("no credentials", "get", U, None, 401, "not_authenticated", auth="none"),
    case("create without credentials", "post", U, new(), 401, "not_authenticated", auth="none"),
    case("Bearer scheme", "get", U, None, 401, "not_authenticated", auth="Bearer pw_x"),
    case("Token without key", "get", U, None, 401, "authentication_failed", auth="Token"),
    case("Token with two keys", "get", U, None, 401, "authentication_failed", auth="Token a b"),
    case("Token unknown", "get", U, None, 401, "authentication_failed", auth="Token pw_nope"),
    case("Token not ASCII", "get", U, None, 401, "authentication_failed", auth="Token \u00e9"),
    case("session write without CSRF", "post", U, new(), 403, "csrf_failed", auth="session"),
    # --- token routes -----------------------------------------------------------------------
    case("login without fields", "post", LOGIN, {}, 400, "invalid", auth="none"),
    case(
        "login with a wrong password",
        "post",
        LOGIN,
        {"username": "alice", "password": "wrong"},
        401,
        "invalid_credentials",
        auth="none",
    ),
    case(
        "login name 151 chars",
        "post",
        LOGIN,
        {"username": "a" * 151, "password": "x"},
        400,
        "invalid",
        auth="none",
    ),
    case(
        "login password 4097 chars",
        "post",
        LOGIN,
        {"username": "alice", "password": "x" * 4097},
        400,
        "invalid",
        auth="none",
    ),
    case(
        "token name 65 chars",
        "post",
        LOGIN,
        {"username": "alice", "password": "correct horse battery", "name": "n" * 65},
        400,
        "invalid",
        auth="none",
    ),
    case("login body not JSON", "post", LOGIN, Raw(b"{user"), 400, "parse_error", auth="none"),
    case(
        "login form body",
        "post",
        LOGIN,
        Raw(b"username=alice", FORM),
        415,
        "unsupported_media_type",
        auth="none",
    ),
    case("GET login", "get", LOGIN, None, 405, "method_not_allowed", auth="none"),
    case("tokens without credentials", "get", TOKENS, None, 401, "not_authenticated", auth="none"),
    case("revoke a malformed token id", "delete", TOKENS + "nope/", None, 404, "not_found"),
    case("revoke their token", "delete", TOKENS + "{their_token}/", None, 404, "not_found"),
    case("revoke an unknown token", "delete", TOKENS + "{unknown}/", None, 404, "not_found"),
    case("POST tokens", "post", TOKENS, {}, 405, "method_not_allowed"),
    # --- Uppy: create -----------------------------------------------------------------------
    case("uppy create without filename", "post", S3, {}, 400, "invalid"),
    case("uppy name with a path", "post", S3, {"filename": "../x"}, 400, "invalid_filename"),
    case(
        "uppy malformed type", "post", S3, {"filename": "a", "type": "not a type"}, 400, "invalid"
    ),
    case(
        "uppy disallowed type",
        "post",
        S3,
        {"filename": "a", "type": "text/plain"},
        415,
        "type_not_allowed",
    ),
    case("uppy metadata a string", "post", S3, {"filename": "a", "metadata": "x"}, 400, "invalid"),
    case("uppy form body", "post", S3, Raw(b"filename=a", FORM), 415, "unsupported_media_type"),
    case(
        "uppy create without credentials",
        "post",
        S3,
        {"filename": "a"},
        401,
        "not_authenticated",
        auth="none",
    ),
    case(
        "uppy session write without origin",
        "post",
        S3,
        {"filename": "a"},
        403,
        "csrf_failed",
        auth="session",
    ),
    case(
        "uppy session write from another origin",
        "post",
        S3,
        {"filename": "a"},
        403,
        "csrf_failed",
        auth="session",
        HTTP_ORIGIN="https://evil.example",
    ),
    case("uppy PUT create", "put", S3, {}, 405, "method_not_allowed"),
    # --- Uppy: list parts, abort ------------------------------------------------------------
    case("uppy wrong key", "get", UPPY + "?key=uploads/other", None, 400, "key_mismatch"),
    case("uppy unknown id", "get", S3 + "/{unknown}", None, 404, "not_found"),
    case("uppy their id", "get", S3 + "/{theirs}", None, 404, "not_found"),
    case("uppy malformed id", "get", S3 + "/not-a-uuid", None, 404, "not_found"),
    case("uppy abort a completed upload", "delete", S3 + "/{done}", None, 409, "upload_conflict"),
    # --- Uppy: sign -------------------------------------------------------------------------
    case("uppy sign part 0", "get", UPPY + "/0", None, 400, "invalid"),
    case("uppy sign part -1", "get", UPPY + "/-1", None, 400, "invalid"),
    case("uppy sign part abc", "get", UPPY + "/abc", None, 400, "invalid"),
    case("uppy sign part 10001", "get", UPPY + "/10001", None, 400, "invalid"),
    case("uppy sign part 1.5", "get", UPPY + "/1.5", None, 400, "invalid"),
    case("uppy sign an aborted upload", "get", S3 + "/{aborted}/1", None, 409, "upload_conflict"),
    case("uppy batch without numbers", "get", UPPY + "/batch", None, 400, "invalid"),
    case("uppy batch empty numbers", "get", UPPY + "/batch?partNumbers=", None, 400, "invalid"),
    case("uppy batch with a word", "get", UPPY + "/batch?partNumbers=1,x", None, 400, "invalid"),
    case("uppy batch twice the same", "get", UPPY + "/batch?partNumbers=1,1", None, 400, "invalid"),
    # --- Uppy: complete ---------------------------------------------------------------------
    case("uppy complete no parts", "post", UPPY + "/complete", {"parts": []}, 400, "invalid"),
    case(
        "uppy complete out of order", "post", UPPY + "/complete", uppy_parts(2, 1), 400, "invalid"
    ),
    case("uppy complete with a gap", "post", UPPY + "/complete", uppy_parts(1, 3), 400, "invalid"),
    case(
        "uppy complete number as text", "post", UPPY + "/complete", uppy_parts("1"), 400, "invalid"
    ),
    case(
        "uppy complete bad etag",
        "post",
        UPPY + "/complete",
        uppy_parts(1, etag="xyz"),
        400,
        "invalid",
    ),
    case(
        "uppy complete theirs", "post", S3 + "/{theirs}/complete", uppy_parts(1), 404, "not_found"
    ),
    case("uppy params", "get", "/s3/params?filename=a&type=", None, 400, "multipart_required"),
    case("uppy unknown route", "get", "/s3/nope", None, 404, "not_found"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "auth", "headers"), CATALOGUE)
def test_bad_input_answers_a_json_code_and_changes_nothing(
    world, secret_storage, method, path, body, status, code, auth, headers
):
    url = path.format(**world.ids)
    before = snapshot(secret_storage)

    response = send(world.client(auth), method, url, body, **headers)

    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert answer["code"] == code
    assert isinstance(answer["detail"], str)
    assert answer["detail"]
    assert "Traceback" not in response.content.decode()
    assert snapshot(secret_storage) == before


def test_the_catalogue_holds_at_least_sixty_cases_across_every_api():
    paths = [param.values[1].split("?")[0] for param in CATALOGUE]
    assert len(CATALOGUE) >= 60
    assert {path.split("/")[1] + "/" + path.split("/")[2] for path in paths} >= {
        "api/uploads",
        "api/auth",
        "s3/multipart",
        "s3/params",
    }


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
    world, secret_storage, monkeypatch, method, path, body, auth
):
    # The shipped throttle classes, at two requests a minute.
    monkeypatch.setattr(APIView, "throttle_classes", [UserRateThrottle])
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {"user": "2/min", "anon": "2/min", "token_login": "2/min"},
    )
    cache.clear()
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


# --- another user's upload -------------------------------------------------------------------
PROBES = [
    pytest.param("get", U + "{id}/", None, id="REST detail"),
    pytest.param("delete", U + "{id}/", None, id="REST abort"),
    pytest.param("post", U + "{id}/sign/", {"parts": [{"number": 1}]}, id="REST sign"),
    pytest.param("post", U + "{id}/parts/", report(), id="REST report"),
    pytest.param("post", U + "{id}/complete/", None, id="REST complete"),
    pytest.param("get", S3 + "/{id}", None, id="Uppy parts"),
    pytest.param("get", S3 + "/{id}?key=uploads/x", None, id="Uppy parts with a key"),
    pytest.param("delete", S3 + "/{id}", None, id="Uppy abort"),
    pytest.param("get", S3 + "/{id}/1", None, id="Uppy sign"),
    pytest.param("get", S3 + "/{id}/batch?partNumbers=1,2", None, id="Uppy sign batch"),
    pytest.param("post", S3 + "/{id}/complete", uppy_parts(1), id="Uppy complete"),
    pytest.param("delete", TOKENS + "{id}/", None, id="token revoke"),
]


@pytest.mark.parametrize(("method", "path", "body"), PROBES)
def test_another_users_id_answers_exactly_like_a_missing_one(
    world, secret_storage, method, path, body
):
    mallory = world.client(f"Token {ApiToken.issue(world.mallory, name='probe')[1]}")
    alices = world.ids["alice_token"] if "tokens" in path else world.ids["uppy"]
    before = snapshot(secret_storage)

    theirs = send(mallory, method, path.format(id=alices), body)
    missing = send(mallory, method, path.format(id=uuid.uuid4()), body)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content
    assert dict(theirs.headers) == dict(missing.headers)
    assert snapshot(secret_storage) == before


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
    put = secret_storage.client.upload_part(
        Bucket=secret_storage.bucket,
        Key=created["key"],
        UploadId=Upload.objects.get(pk=created["id"]).s3_upload_id,
        PartNumber=1,
        Body=data,
    )
    call(alice, "post", f"{U}{created['id']}/parts/", report(etag=put["ETag"]))
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
        for method, path, body in [p.values for p in PROBES if "tokens" not in p.values[1]]:
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
