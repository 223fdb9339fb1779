"""Hostile input, one catalogue: every refused request answers a 4xx JSON code, changes nothing.

Across the REST API (/api/uploads/), the Uppy/Companion-compatible routes (/s3/) and the token
routes (/api/auth/), each case names a request, its status and its stable `code`; the test
proves that the answer is JSON with a detail and no trace, and that no upload, part, token or
user changed and S3 holds the same multipart uploads and objects (tests/support/snapshots.py).
The requests aim at the `world` (tests/support/world.py): alice's uploads `mine` (part 2
reported), `sha` (SHA-256 required, part 1 signed and reported), `uppy` (no size), `done`,
`aborted`, and mallory's `theirs`. Then: another user's id answers exactly like a missing one.

A new endpoint adds its rows here (docs/architecture.md). Throttling, revoked tokens and leaks
are in tests/reliability/test_abuse.py.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from tests.factories import PASSWORD
from tests.support.http import FORM, Raw, send
from tests.support.snapshots import snapshot
from tests.support.world import (
    COMPLETE,
    ID_ROUTES,
    LOGIN,
    MINE,
    OTHER_CHECKSUM,
    PARTS,
    S3,
    SIGN,
    TOKENS,
    UPPY,
    U,
    new,
    parts,
    report,
    uppy_parts,
)
from uploads.tokens.models import ApiToken

pytestmark = pytest.mark.django_db

DEEP = b"[" * 100_000 + b"]" * 100_000  # json.loads gives up on it with a RecursionError
NOT_FOUND = {"code": "not_found", "detail": "Not found."}


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
    """One row: `auth` is "alice", "none", "session" or an Authorization header (World.client)."""
    return pytest.param(method, path, body, status, code, auth, headers, id=name)


CATALOGUE = [
    # --- REST create: sizes --------------------------------------------------------------------
    case("size as string", "post", U, new(size="10"), 400, "invalid"),
    case("size in exponent notation", "post", U, new(size="1e3"), 400, "invalid"),
    case("size as bool", "post", U, new(size=True), 400, "invalid"),
    case("size as float", "post", U, new(size=10.5), 400, "invalid"),
    case("size an object", "post", U, new(size={"n": 1}), 400, "invalid"),
    case("size a list", "post", U, new(size=[10]), 400, "invalid"),
    case("negative size", "post", U, new(size=-1), 400, "invalid"),
    case("size null", "post", U, new(size=None), 400, "invalid"),
    case("size missing", "post", U, {"filename": "a.bin"}, 400, "invalid"),
    case("size NaN", "post", U, Raw(b'{"filename": "a.bin", "size": NaN}'), 400, "parse_error"),
    case("size over 5 TiB", "post", U, new(size=5 * 1024**4 + 1), 413, "upload_too_large"),
    case("huge size", "post", U, new(size=2**70), 413, "upload_too_large"),
    case(
        "size of 400 digits",
        "post",
        U,
        Raw(b'{"filename": "a.bin", "size": 1' + b"0" * 400 + b"}"),
        413,
        "upload_too_large",
    ),
    case("part size 0", "post", U, new(part_size=0), 400, "invalid"),
    case("part size 1 byte", "post", U, new(part_size=1), 400, "invalid"),
    case("part size over 5 GiB", "post", U, new(part_size=5 * 1024**3 + 1), 400, "invalid"),
    case("part size as string", "post", U, new(part_size="5242880"), 400, "invalid"),
    case("part size null", "post", U, new(part_size=None), 400, "invalid"),
    # --- REST create: names --------------------------------------------------------------------
    case("filename ../", "post", U, new(filename="../etc/passwd"), 400, "invalid_filename"),
    case("filename NUL", "post", U, new(filename="a\x00b"), 400, "invalid"),
    case("filename control character", "post", U, new(filename="a\x07b"), 400, "invalid_filename"),
    case("filename bidi override", "post", U, new(filename="a\u202eb"), 400, "invalid_filename"),
    case("filename 2,000 characters", "post", U, new(filename="x" * 2000), 400, "invalid"),
    case("filename 300 characters", "post", U, new(filename="x" * 300), 400, "invalid_filename"),
    case("filename empty", "post", U, new(filename=""), 400, "invalid"),
    case("filename as list", "post", U, new(filename=["a"]), 400, "invalid"),
    case("name only spaces", "post", U, new(filename="   "), 400, "invalid_filename"),
    case("name dot", "post", U, new(filename="."), 400, "invalid_filename"),
    case("name dot dot", "post", U, new(filename=".."), 400, "invalid_filename"),
    case("name backslash", "post", U, new(filename="a\\b"), 400, "invalid_filename"),
    case("name newline", "post", U, new(filename="a\nb"), 400, "invalid_filename"),
    case("name zero-width space", "post", U, new(filename="\u200b"), 400, "invalid_filename"),
    case("name line separator", "post", U, new(filename="a\u2028b"), 400, "invalid_filename"),
    # --- REST create: types and other fields -------------------------------------------------
    case("disallowed type", "post", U, new(content_type="text/plain"), 415, "type_not_allowed"),
    case("malformed type", "post", U, new(content_type="not a type"), 400, "invalid"),
    case("content type 300 chars", "post", U, new(content_type="a/" + "b" * 298), 400, "invalid"),
    case("content type without subtype", "post", U, new(content_type="text/"), 400, "invalid"),
    case("unknown checksum algorithm", "post", U, new(checksum_algorithm="SHA1"), 400, "invalid"),
    case(
        "checksum algorithm lowercase", "post", U, new(checksum_algorithm="sha256"), 400, "invalid"
    ),
    case(
        "checksum algorithm a list", "post", U, new(checksum_algorithm=["SHA256"]), 400, "invalid"
    ),
    case("fingerprint too long", "post", U, new(fingerprint="x" * 129), 400, "invalid"),
    case("fingerprint with a space", "post", U, new(fingerprint="a b"), 400, "invalid"),
    case("fingerprint not ASCII", "post", U, new(fingerprint="\u00e9"), 400, "invalid"),
    case("malformed client token", "post", U, new(client_token="has spaces"), 400, "invalid"),
    case("client token 65 chars", "post", U, new(client_token="x" * 65), 400, "invalid"),
    case("client token empty", "post", U, new(client_token=""), 400, "invalid"),
    # --- REST create: sessions, start-or-resume, the first signed batch -----------------------
    case(
        "session with a control character", "post", U, new(session="abcdefgh\x07"), 400, "invalid"
    ),
    case("session with a trailing newline", "post", U, new(session="abcdefgh\n"), 400, "invalid"),
    case("session with a NUL", "post", U, new(session="abcd\x00efgh"), 400, "invalid"),
    case("session 7 chars", "post", U, new(session="a" * 7), 400, "invalid"),
    case("session 65 chars", "post", U, new(session="a" * 65), 400, "invalid"),
    case("session not ASCII", "post", U, new(session="s\u00e9ssion-1234"), 400, "invalid"),
    case("session of Unicode digits", "post", U, new(session="\u0661" * 8), 400, "invalid"),
    case("session with spaces", "post", U, new(session=" abcdefgh "), 400, "invalid"),
    case("session with a dot", "post", U, new(session="abcd.efgh"), 400, "invalid"),
    case("session null", "post", U, new(session=None), 400, "invalid"),
    case("session a number", "post", U, new(session=12345678), 400, "invalid"),
    case("session a list", "post", U, new(session=["abcdefgh"]), 400, "invalid"),
    case("resume without a fingerprint", "post", U, new(resume=True), 400, "invalid"),
    case("resume as a string", "post", U, new(resume="true", fingerprint="fp"), 400, "invalid"),
    case("resume as 1", "post", U, new(resume=1, fingerprint="fp"), 400, "invalid"),
    case("resume null", "post", U, new(resume=None, fingerprint="fp"), 400, "invalid"),
    case("sign a list", "post", U, new(sign=[1]), 400, "invalid"),
    case("sign without parts", "post", U, new(sign={}), 400, "invalid"),
    case("sign with no part", "post", U, new(sign={"parts": []}), 400, "invalid"),
    case("sign part as string", "post", U, new(sign=parts("1")), 400, "invalid"),
    case(
        "sign too many parts",
        "post",
        U,
        new(size=2**40, sign=parts(*range(1, 1002))),
        400,
        "invalid",
    ),
    case("sign a part twice", "post", U, new(sign=parts(1, 1)), 400, "invalid"),
    case("sign past the last part", "post", U, new(sign=parts(2)), 400, "part_out_of_range"),
    case(
        "sign without the checksum required",
        "post",
        U,
        new(checksum_algorithm="SHA256", sign=parts(1)),
        400,
        "checksum_required",
    ),
    case(
        "sign a malformed checksum",
        "post",
        U,
        new(sign={"parts": [{"number": 1, "checksum": "abc"}]}),
        400,
        "invalid",
    ),
    case(
        "resume with sign past the last part",
        "post",
        U,
        new(fingerprint="fp", resume=True, sign=parts(2)),
        400,
        "part_out_of_range",
    ),
    # --- REST create: bodies -------------------------------------------------------------------
    case("body a list", "post", U, [], 400, "invalid"),
    case("body JSON null", "post", U, Raw(b"null"), 400, "invalid"),
    case("body a JSON string", "post", U, Raw(b'"a.bin"'), 400, "invalid"),
    case("body a JSON number", "post", U, Raw(b"42"), 400, "invalid"),
    case("body empty", "post", U, Raw(b""), 400, "invalid"),
    case("non-JSON body", "post", U, Raw(b"{not json"), 400, "parse_error"),
    case("body nested 100,000 deep", "post", U, Raw(DEEP), 400, "parse_error"),
    case("body not UTF-8", "post", U, Raw(b'{"filename": "\xff\xfe"}'), 400, "parse_error"),
    case(
        "form body",
        "post",
        U,
        Raw(b"filename=a&size=1", FORM),
        415,
        "unsupported_media_type",
    ),
    case("text body", "post", U, Raw(b"hello", "text/plain"), 415, "unsupported_media_type"),
    case("body XML", "post", U, Raw(b"<a/>", "application/xml"), 415, "unsupported_media_type"),
    case(
        "oversized body",
        "post",
        U,
        new(fingerprint="x" * (1024 * 1024)),
        413,
        "request_too_large",
    ),
    # --- REST list, detail, abort: filters, ids, methods -------------------------------------
    case("unknown status filter", "get", U + "?status=bogus", None, 400, "invalid"),
    case("list status a wildcard", "get", U + "?status=%25", None, 400, "invalid"),
    case("list status uppercase", "get", U + "?status=COMPLETED", None, 400, "invalid"),
    case("list fingerprint too long", "get", U + "?fingerprint=" + "x" * 129, None, 400, "invalid"),
    case("garbage cursor", "get", U + "?cursor=garbage", None, 404, "not_found"),
    case("unknown id", "get", U + "{unknown}/", None, 404, "not_found"),
    case("malformed id", "get", U + "not-a-uuid/", None, 404, "not_found"),
    case("id with trailing junk", "get", U + "{mine}x/", None, 404, "not_found"),
    case("id with dot dot", "get", U + "{mine}/../{theirs}/", None, 404, "not_found"),
    case("id with NUL", "get", U + "{mine}%00/", None, 404, "not_found"),
    case("id of 31 hex digits", "get", U + "0" * 31 + "/", None, 404, "not_found"),
    case("numeric id", "post", U + "12345/complete/", None, 404, "not_found"),
    case("their detail", "get", U + "{theirs}/", None, 404, "not_found"),
    case("their abort", "delete", U + "{theirs}/", None, 404, "not_found"),
    case("abort unknown", "delete", U + "{unknown}/", None, 404, "not_found"),
    case("abort a completed upload", "delete", U + "{done}/", None, 409, "upload_conflict"),
    case("PUT detail", "put", MINE, new(), 405, "method_not_allowed"),
    case("PATCH detail", "patch", MINE, new(), 405, "method_not_allowed"),
    case("POST detail", "post", MINE, new(), 405, "method_not_allowed"),
    # --- REST sign -----------------------------------------------------------------------------
    case("part 0", "post", SIGN, parts(0), 400, "invalid"),
    case("part 10001", "post", SIGN, parts(10_001), 400, "invalid"),
    case("part -1", "post", SIGN, parts(-1), 400, "invalid"),
    case("part as string", "post", SIGN, parts("1"), 400, "invalid"),
    case("part as float", "post", SIGN, parts(1.0), 400, "invalid"),
    case("part as bool", "post", SIGN, parts(True), 400, "invalid"),
    case("part null", "post", SIGN, parts(None), 400, "invalid"),
    case("part past the last", "post", SIGN, parts(4), 400, "part_out_of_range"),
    case("duplicate parts", "post", SIGN, parts(1, 1), 400, "invalid"),
    case("empty part list", "post", SIGN, {"parts": []}, 400, "invalid"),
    case("parts missing", "post", SIGN, {}, 400, "invalid"),
    case("parts not a list", "post", SIGN, {"parts": {"number": 1}}, 400, "invalid"),
    case("parts as numbers", "post", SIGN, {"parts": [1]}, 400, "invalid"),
    case("parts a string", "post", SIGN, {"parts": "1"}, 400, "invalid"),
    case("too many parts", "post", SIGN, parts(*range(1, 1002)), 400, "invalid"),
    case(
        "malformed checksum",
        "post",
        SIGN,
        {"parts": [{"number": 1, "checksum": "abc"}]},
        400,
        "invalid",
    ),
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
    case(
        "oversized sign body",
        "post",
        SIGN,
        Raw(b"x" * (1024 * 1024 + 1)),
        413,
        "request_too_large",
    ),
    case(
        "sign without the checksum the upload requires",
        "post",
        U + "{sha}/sign/",
        parts(2),
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
    case("sign an aborted upload", "post", U + "{aborted}/sign/", parts(1), 409, "upload_conflict"),
    case("sign a completed upload", "post", U + "{done}/sign/", parts(1), 409, "upload_conflict"),
    case(
        "sign part 10001 of an Uppy upload",
        "post",
        U + "{uppy}/sign/",
        parts(10_001),
        400,
        "invalid",
    ),
    case("their sign", "post", U + "{theirs}/sign/", parts(1), 404, "not_found"),
    case("sign session too long", "post", SIGN, {**parts(1), "session": "a" * 65}, 400, "invalid"),
    case("sign session too short", "post", SIGN, {**parts(1), "session": "abc"}, 400, "invalid"),
    case("sign session empty", "post", SIGN, {**parts(1), "session": ""}, 400, "invalid"),
    case("sign session null", "post", SIGN, {**parts(1), "session": None}, 400, "invalid"),
    case("sign session a number", "post", SIGN, {**parts(1), "session": 1e10}, 400, "invalid"),
    case(
        "sign session with a control character",
        "post",
        SIGN,
        {**parts(1), "session": "abcdefgh\r\n"},
        400,
        "invalid",
    ),
    case(
        "sign session not ASCII",
        "post",
        SIGN,
        {**parts(1), "session": "\u00e9" * 10},
        400,
        "invalid",
    ),
    case(
        "sign session, parts malformed",
        "post",
        SIGN,
        {"parts": [{"number": "1"}], "session": "abcdefgh"},
        400,
        "invalid",
    ),
    # --- REST report ---------------------------------------------------------------------------
    case("malformed etag", "post", PARTS, report(etag="xyz"), 400, "invalid"),
    case("etag null", "post", PARTS, report(etag=None), 400, "invalid"),
    case("etag missing", "post", PARTS, {"parts": [{"number": 1}]}, 400, "invalid"),
    case("etag 33 hex digits", "post", PARTS, report(etag="a" * 33), 400, "invalid"),
    case("etag not hex", "post", PARTS, report(etag="g" * 32), 400, "invalid"),
    case("etag 131 chars", "post", PARTS, report(etag="a" * 131), 400, "invalid"),
    case("reported part 0", "post", PARTS, report(number=0), 400, "invalid"),
    case("report part 10001", "post", PARTS, report(number=10_001), 400, "invalid"),
    case("report part past the last", "post", PARTS, report(number=4), 400, "part_out_of_range"),
    case("reported checksum malformed", "post", PARTS, report(checksum="!!"), 400, "invalid"),
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
        "report to an aborted upload",
        "post",
        U + "{aborted}/parts/",
        report(),
        409,
        "upload_conflict",
    ),
    case(
        "report to a completed upload",
        "post",
        U + "{done}/parts/",
        report(),
        409,
        "upload_conflict",
    ),
    case("their report", "post", U + "{theirs}/parts/", report(), 404, "not_found"),
    case(
        "report session too long", "post", PARTS, {**report(), "session": "a" * 65}, 400, "invalid"
    ),
    case(
        "report session with a space",
        "post",
        PARTS,
        {**report(), "session": "a b c d e f"},
        400,
        "invalid",
    ),
    case(
        "report session not ASCII",
        "post",
        PARTS,
        {**report(), "session": "\u00e9" * 10},
        400,
        "invalid",
    ),
    case(
        "report session a list",
        "post",
        PARTS,
        {**report(), "session": ["abcdefgh"]},
        400,
        "invalid",
    ),
    case("detail session too short", "get", MINE + "?session=abc", None, 400, "invalid"),
    case("detail session too long", "get", MINE + "?session=" + "a" * 65, None, 400, "invalid"),
    case(
        "detail session with a newline", "get", MINE + "?session=abcdefgh%0A", None, 400, "invalid"
    ),
    case("detail session with NUL", "get", MINE + "?session=abcd%00efgh", None, 400, "invalid"),
    case(
        "detail session not ASCII",
        "get",
        MINE + "?session=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9",
        None,
        400,
        "invalid",
    ),
    case("detail session empty", "get", MINE + "?session=", None, 400, "invalid"),
    # --- REST complete -------------------------------------------------------------------------
    case(
        "complete an aborted upload",
        "post",
        U + "{aborted}/complete/",
        None,
        409,
        "upload_conflict",
    ),
    case("their complete", "post", U + "{theirs}/complete/", None, 404, "not_found"),
    case("GET complete", "get", COMPLETE, None, 405, "method_not_allowed"),
    case("PUT complete", "put", COMPLETE, None, 405, "method_not_allowed"),
    # --- credentials ---------------------------------------------------------------------------
    case("no credentials", "get", U, None, 401, "not_authenticated", auth="none"),
    case("create without credentials", "post", U, new(), 401, "not_authenticated", auth="none"),
    case("Bearer scheme", "get", U, None, 401, "not_authenticated", auth="Bearer pw_x"),
    case("Token without key", "get", U, None, 401, "authentication_failed", auth="Token"),
    case("Token with two keys", "get", U, None, 401, "authentication_failed", auth="Token a b"),
    case("Token unknown", "get", U, None, 401, "authentication_failed", auth="Token pw_nope"),
    case(
        "Token of DRF's old shape unknown",
        "get",
        U,
        None,
        401,
        "authentication_failed",
        auth="Token " + "0" * 40,
    ),
    case("Token not ASCII", "get", U, None, 401, "authentication_failed", auth="Token \u00e9"),
    case("session write without CSRF", "post", U, new(), 403, "csrf_failed", auth="session"),
    # --- token routes --------------------------------------------------------------------------
    case("login without fields", "post", LOGIN, {}, 400, "invalid", auth="none"),
    case(
        "login without password", "post", LOGIN, {"username": "alice"}, 400, "invalid", auth="none"
    ),
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
        {"username": "alice", "password": PASSWORD, "name": "n" * 65},
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
    # --- Uppy: create --------------------------------------------------------------------------
    case("uppy create without filename", "post", S3, {}, 400, "invalid"),
    case("uppy create with an empty name", "post", S3, {"filename": ""}, 400, "invalid"),
    case(
        "uppy create with fields of the wrong types",
        "post",
        S3,
        {"filename": 3, "type": []},
        400,
        "invalid",
    ),
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
    # --- Uppy: list parts, abort ---------------------------------------------------------------
    case("uppy wrong key", "get", UPPY + "?key=uploads/other", None, 400, "key_mismatch"),
    case("uppy unknown id", "get", S3 + "/{unknown}", None, 404, "not_found"),
    case("uppy their id", "get", S3 + "/{theirs}", None, 404, "not_found"),
    case("uppy malformed id", "get", S3 + "/not-a-uuid", None, 404, "not_found"),
    case("uppy abort unknown", "delete", S3 + "/{unknown}", None, 404, "not_found"),
    case("uppy abort malformed id", "delete", S3 + "/not-a-uuid", None, 404, "not_found"),
    case("uppy abort a completed upload", "delete", S3 + "/{done}", None, 409, "upload_conflict"),
    # --- Uppy: sign ----------------------------------------------------------------------------
    case("uppy sign part 0", "get", UPPY + "/0", None, 400, "invalid"),
    case("uppy sign part -1", "get", UPPY + "/-1", None, 400, "invalid"),
    case("uppy sign part abc", "get", UPPY + "/abc", None, 400, "invalid"),
    case("uppy sign part 10001", "get", UPPY + "/10001", None, 400, "invalid"),
    case("uppy sign part 1.5", "get", UPPY + "/1.5", None, 400, "invalid"),
    case(
        "uppy sign with the wrong key",
        "get",
        UPPY + "/1?key=uploads/other",
        None,
        400,
        "key_mismatch",
    ),
    case("uppy sign an aborted upload", "get", S3 + "/{aborted}/1", None, 409, "upload_conflict"),
    case("uppy sign unknown", "get", S3 + "/{unknown}/1", None, 404, "not_found"),
    case("uppy sign malformed id", "get", S3 + "/not-a-uuid/1", None, 404, "not_found"),
    case(
        "uppy sign without credentials",
        "get",
        S3 + "/{uppy}/1",
        None,
        401,
        "not_authenticated",
        auth="none",
    ),
    case("uppy batch without numbers", "get", UPPY + "/batch", None, 400, "invalid"),
    case("uppy batch empty numbers", "get", UPPY + "/batch?partNumbers=", None, 400, "invalid"),
    case("uppy batch with a word", "get", UPPY + "/batch?partNumbers=1,x", None, 400, "invalid"),
    case("uppy batch twice the same", "get", UPPY + "/batch?partNumbers=1,1", None, 400, "invalid"),
    case(
        "uppy batch unknown",
        "get",
        S3 + "/{unknown}/batch?partNumbers=1",
        None,
        404,
        "not_found",
    ),
    case(
        "uppy batch malformed id",
        "get",
        S3 + "/not-a-uuid/batch?partNumbers=1",
        None,
        404,
        "not_found",
    ),
    # --- Uppy: complete ------------------------------------------------------------------------
    case("uppy complete no parts", "post", UPPY + "/complete", {"parts": []}, 400, "invalid"),
    case(
        "uppy complete not from part 1", "post", UPPY + "/complete", uppy_parts(2), 400, "invalid"
    ),
    case(
        "uppy complete out of order", "post", UPPY + "/complete", uppy_parts(2, 1), 400, "invalid"
    ),
    case("uppy complete with a gap", "post", UPPY + "/complete", uppy_parts(1, 3), 400, "invalid"),
    case(
        "uppy complete a part twice", "post", UPPY + "/complete", uppy_parts(1, 1), 400, "invalid"
    ),
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
        "uppy complete without etag",
        "post",
        UPPY + "/complete",
        {"parts": [{"PartNumber": 1}]},
        400,
        "invalid",
    ),
    case(
        "uppy complete theirs", "post", S3 + "/{theirs}/complete", uppy_parts(1), 404, "not_found"
    ),
    case(
        "uppy complete unknown", "post", S3 + "/{unknown}/complete", uppy_parts(1), 404, "not_found"
    ),
    case(
        "uppy complete malformed id",
        "post",
        S3 + "/not-a-uuid/complete",
        uppy_parts(1),
        404,
        "not_found",
    ),
    # --- Uppy: other routes --------------------------------------------------------------------
    case("uppy params", "get", "/s3/params?filename=a&type=", None, 400, "multipart_required"),
    case(
        "uppy params without credentials",
        "get",
        "/s3/params",
        None,
        401,
        "not_authenticated",
        auth="none",
    ),
    case("uppy unknown route", "get", "/s3/nope", None, 404, "not_found"),
    # --- hardening: what the outside review sent ------------------------------------------------
    # 7. forged pagination cursors (a position that is no time reached the database: 500)
    case("cursor not a date", "get", U + "?cursor=cD1ub3RhZGF0ZQ==", None, 404, "not_found"),
    case("cursor impossible date", "get", U + "?cursor=cD0yMDI2LTEzLTQ1", None, 404, "not_found"),
    case("cursor reversed, no date", "get", U + "?cursor=cj0xJnA9eA==", None, 404, "not_found"),
    # 8. a Unicode digit as a part number ("²".isdigit() is True, int("²") fails: 500)
    case("uppy sign part ²", "get", UPPY + "/%C2%B2", None, 400, "invalid"),
    case("uppy sign part arabic-indic 1", "get", UPPY + "/%D9%A1", None, 400, "invalid"),
    case("uppy batch with ²", "get", UPPY + "/batch?partNumbers=1,%C2%B2", None, 400, "invalid"),
    # 9. control characters in a content type (they reached S3's header: 502)
    case(
        "content type with CRLF",
        "post",
        U,
        new(content_type="image/png; a=b\r\nX: 1"),
        400,
        "invalid",
    ),
    case("content type with a tab", "post", U, new(content_type="image/png;\ta=b"), 400, "invalid"),
    case(
        "uppy type with CRLF",
        "post",
        S3,
        {"filename": "a.png", "type": "image/png; a=b\r\nX: 1"},
        400,
        "invalid",
    ),
    # 10. a parameter S3 would store re-encoded
    case(
        "content type non-latin-1", "post", U, new(content_type="image/png; name=€"), 400, "invalid"
    ),
    case("content type latin-1", "post", U, new(content_type="image/png; name=é"), 400, "invalid"),
    case("content type unicode subtype", "post", U, new(content_type="image/pngé"), 400, "invalid"),
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


# --- another user's ids ----------------------------------------------------------------------
PROBES = [pytest.param(method, path, body, id=name) for name, method, path, body in ID_ROUTES]


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
    assert {name: theirs.json()[name] for name in NOT_FOUND} == NOT_FOUND
    assert theirs.content == missing.content
    assert dict(theirs.headers) == dict(missing.headers)
    assert snapshot(secret_storage) == before
