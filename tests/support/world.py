"""A small world of uploads and tokens that hostile requests aim at (a plugin: `world`).

The routes and bodies those requests start from are here too (`ID_ROUTES`: every route that
names an id).

Alice owns an 11 MiB upload with part 2 reported (`mine`), one that requires SHA-256 checksums
with part 1 signed and reported (`sha`), an Uppy upload of unknown size (`uppy`), a completed
and an aborted one; mallory owns `theirs`. Each has a named token. The S3 secret key is
`SECRET_KEY`, so that a test can look for it in every answer. Used by the bad-input catalogue
(tests/unit/test_bad_input.py) and the abuse tests (tests/reliability/test_abuse.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import UploadFactory
from tests.support.checksums import sha256_b64
from uploads import services
from uploads.models import Upload
from uploads.parts import MiB
from uploads.services import PartToSign, ReportedPart
from uploads.tokens.models import ApiToken

# The routes, and the bodies hostile requests start from.
U, S3, TOKENS = "/api/uploads/", "/s3/multipart", "/api/auth/tokens/"
LOGIN = "/api/auth/token/"
MINE, UPPY = U + "{mine}/", S3 + "/{uppy}"
SIGN, PARTS, COMPLETE = MINE + "sign/", MINE + "parts/", MINE + "complete/"
SIZE = 11 * MiB  # three planned parts: 5, 5 and 1 MiB
CHECKSUM = sha256_b64(b"part one")  # part 1 of `sha`, signed and reported
OTHER_CHECKSUM = sha256_b64(b"something else")
SECRET_KEY = "s3cr3t-" + uuid.uuid4().hex  # the S3 secret key: must never appear in an answer


def new(**fields: Any) -> dict[str, Any]:
    """A create body, with `fields` changed."""
    return {"filename": "a.bin", "size": 10, **fields}


def parts(*numbers: Any) -> dict[str, Any]:
    """A sign body."""
    return {"parts": [{"number": n} for n in numbers]}


def report(**part: Any) -> dict[str, Any]:
    """A report body of part 1, with `part` changed."""
    return {"parts": [{"number": 1, "etag": "a" * 32, **part}]}


def uppy_parts(*numbers: Any, etag: str = "a" * 32) -> dict[str, Any]:
    """An Uppy complete body."""
    return {"parts": [{"PartNumber": n, "ETag": etag} for n in numbers]}


# Every route that names an upload or token id: (name, method, path with {id}, body).
ID_ROUTES = [
    ("REST detail", "get", U + "{id}/", None),
    ("REST abort", "delete", U + "{id}/", None),
    ("REST sign", "post", U + "{id}/sign/", parts(1)),
    ("REST report", "post", U + "{id}/parts/", report()),
    ("REST complete", "post", U + "{id}/complete/", None),
    ("Uppy parts", "get", S3 + "/{id}", None),
    ("Uppy parts with a key", "get", S3 + "/{id}?key=uploads/x", None),
    ("Uppy abort", "delete", S3 + "/{id}", None),
    ("Uppy sign", "get", S3 + "/{id}/1", None),
    ("Uppy sign batch", "get", S3 + "/{id}/batch?partNumbers=1,2", None),
    ("Uppy complete", "post", S3 + "/{id}/complete", uppy_parts(1)),
    ("token revoke", "delete", TOKENS + "{id}/", None),
]


@dataclass
class World:
    """Everything the hostile requests name (`ids`), and the clients that send them."""

    alice: Any
    mallory: Any
    alice_key: str
    alice_token: ApiToken
    mallory_token: ApiToken
    ids: dict[str, str]

    def client(self, auth: str) -> APIClient:
        """ "alice" (her token), "none", "session" (alice logged in, CSRF checks on), or an
        Authorization header to send as it is."""
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
    """The moto storage, signing with SECRET_KEY."""
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
