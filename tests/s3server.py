"""Fixtures for the tiers that need a real S3 server (integration, e2e).

`seaweedfs` starts one `weed mini` per test session on free ports with its own data dir and
credentials; `real_s3` points Django's settings at it for one test, with a fresh bucket (CORS
and lifecycle set by the same code as `setup_storage`).
"""

import secrets
import uuid
from collections.abc import Iterator

import pytest

from project.dev.seaweedfs import Ports, SeaweedFS
from uploads.storage import MultipartStorage, get_storage, reset_storage


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> Iterator[SeaweedFS]:
    server = SeaweedFS(
        data_dir=tmp_path_factory.mktemp("seaweedfs"),
        access_key="test" + secrets.token_hex(6),
        secret_key=secrets.token_urlsafe(24),
        ports=Ports.free(),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def real_s3(seaweedfs, settings) -> Iterator[MultipartStorage]:
    """Settings pointed at the session's SeaweedFS, with a new bucket for this test."""
    settings.AWS_S3_ENDPOINT_URL = seaweedfs.endpoint
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = seaweedfs.endpoint
    settings.AWS_ACCESS_KEY_ID = seaweedfs.access_key
    settings.AWS_SECRET_ACCESS_KEY = seaweedfs.secret_key
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.UPLOADS_BUCKET = f"pw-{uuid.uuid4().hex[:12]}"
    reset_storage()
    storage = get_storage()
    storage.create_bucket()
    yield storage
    reset_storage()
