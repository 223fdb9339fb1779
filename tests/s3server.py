"""Fixtures for the tiers that need a real S3 server (integration, e2e, reliability).

`seaweedfs` starts one `weed mini` per test session (every module that imports the fixture
shares it) on free ports with its own data dir and credentials; `real_s3` points Django's
settings at it for one test, with a fresh bucket (CORS and lifecycle set by the same code as
`setup_storage`); `probed_bucket_on` is the same on any store, with the store's probed profile
known to the server. `client_of` is a plain boto3 client on a SeaweedFS, for reading what a server
process wrote there as a consumer of the bucket would.
"""

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from django.core.cache import cache

from project.dev.seaweedfs import SeaweedFS
from uploads import selectors
from uploads.conf import upload_settings
from uploads.integrity import StoreProfile
from uploads.storage import MultipartStorage, get_storage, reset_storage
from uploads.storage.probe import probe_store


def client_of(s3: SeaweedFS) -> Any:
    """A boto3 S3 client on `s3` (path-style, checksums only where S3 requires them)."""
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


# The session's one SeaweedFS. Each module or conftest that imports `seaweedfs` holds a fixture
# definition of its own, and pytest caches a session fixture per definition: without this, every
# importing module (the integration and e2e conftests, four reliability modules) started a weed
# mini of its own and kept it running to the end of the session, each costing a start and a
# stop of up to ~15 s. Sharing one is safe: every test works in a bucket of its own (`real_s3`,
# DjangoServer), and no test stops or restarts it (the restart test starts its own).
_shared: SeaweedFS | None = None


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> Iterator[SeaweedFS]:
    global _shared
    if _shared is not None and _shared.process is not None and _shared.process.poll() is None:
        yield _shared  # started by another module's definition, which stops it
        return
    server = SeaweedFS.on_free_ports(
        data_dir=tmp_path_factory.mktemp("seaweedfs"),
        access_key="test" + secrets.token_hex(6),
        secret_key=secrets.token_urlsafe(24),
    )
    _shared = server
    try:
        yield server
    finally:  # at the end of the session: every user of it is a session fixture or narrower
        _shared = None
        # Its data is thrown away: no need to wait out a graceful stop (up to 20 s on SIGTERM).
        server.stop(timeout=3)


def bucket_on(server: Any, settings: Any) -> Iterator[MultipartStorage]:
    """Settings pointed at `server` (a SeaweedFS or a Ceph RGW), with a new bucket."""
    settings.AWS_S3_ENDPOINT_URL = server.endpoint
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = server.endpoint
    settings.AWS_ACCESS_KEY_ID = server.access_key
    settings.AWS_SECRET_ACCESS_KEY = server.secret_key
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.UPLOADS_BUCKET = f"pw-{uuid.uuid4().hex[:12]}"
    reset_storage()
    storage = get_storage()
    storage.create_bucket()
    yield storage
    reset_storage()


# Each store's probe, run once per session (uploads/storage/probe.py): what it verifies.
_profiles: dict[str, StoreProfile] = {}


def probed_bucket_on(server: Any, settings: Any) -> Iterator[MultipartStorage]:
    """`bucket_on`, with the store's probed profile known to the server (as `setup_storage`
    records it) for this test."""
    for storage in bucket_on(server, settings):
        if server.endpoint not in _profiles:
            prefix = upload_settings().key_prefix
            _profiles[server.endpoint] = probe_store(storage, key_prefix=prefix).profile
        # The cache is what uploads read the profile from (the autouse _fresh_cache fixture
        # empties it after the test); no database row is needed for it.
        cache.set(selectors._profile_cache_key(storage), _profiles[server.endpoint], None)
        yield storage


@pytest.fixture
def real_s3(seaweedfs, settings) -> Iterator[MultipartStorage]:
    """Settings pointed at the session's SeaweedFS, with a new bucket for this test."""
    yield from bucket_on(seaweedfs, settings)
