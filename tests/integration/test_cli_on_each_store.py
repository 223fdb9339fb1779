"""The `partwise` CLI on each real store: SeaweedFS (verifies SHA-256) and Ceph RGW 16 (verifies
only Content-MD5). The server probes its store at start, as `setup_storage` does in production,
and the CLI hashes each part with the digest the server chose for that store.

The CLI reaches the store through a fault proxy (tests/faultproxy.py) that can flip one byte of
a part on its way: the same length, other bytes, as a part damaged in transit would be.
"""

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.django_server import DjangoServer
from tests.faultproxy import FaultProxy
from tests.integration.test_cli import PARTWISE, cli_env, object_sha256
from tests.s3server import client_of

MiB = 1024 * 1024
pytestmark = pytest.mark.timeout(300)

# What each store's probe finds it verifies, hence what every part carries there.
DIGEST_ON = {"seaweedfs": "SHA256", "ceph_rgw": "MD5"}


@pytest.fixture(scope="module", params=list(DIGEST_ON), ids=["seaweedfs", "ceph-rgw"])
def store(request):
    """(name, store server) for each store of the suite."""
    return request.param, request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def proxy(store) -> Iterator[FaultProxy]:
    with FaultProxy(store[1].endpoint) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def server(store, proxy, tmp_path_factory) -> Iterator[DjangoServer]:
    server = DjangoServer(
        tmp_path_factory.mktemp("django"),
        store[1],
        probe=True,
        extra_env={"AWS_S3_PUBLIC_ENDPOINT_URL": proxy.url},  # the URLs clients get
    )
    yield server.start()
    server.stop()


def run_cli(server: DjangoServer, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PARTWISE, *args, "-q"],
        cwd=cwd,
        env=cli_env(server),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def upload_of(server: DjangoServer, output: str) -> dict:
    upload_id = re.search(r"uploaded as ([0-9a-f-]{36})", output).group(1)
    return server.api("GET", f"/api/uploads/{upload_id}/").json()


def test_a_12_mib_file_arrives_byte_identical_with_the_digest_its_store_verifies(
    store, server, tmp_path
):
    name, _ = store
    path = tmp_path / "clean.bin"
    data = os.urandom(12 * MiB)  # three parts: 5, 5 and 2 MiB
    path.write_bytes(data)

    uploaded = run_cli(server, "upload", str(path), "--part-size", "5M", cwd=tmp_path)

    assert uploaded.returncode == 0, uploaded.stderr
    upload = upload_of(server, uploaded.stdout)
    assert (upload["status"], upload["part_count"]) == ("completed", 3)
    assert (upload["checksum_algorithm"], upload["integrity"]) == (DIGEST_ON[name], "store")
    assert upload["unverified"] is False
    assert object_sha256(server, upload["key"]) == hashlib.sha256(data).hexdigest()


def test_a_part_damaged_on_its_way_to_the_store_is_refused_and_the_upload_never_completes(
    store, server, proxy, tmp_path
):
    path = tmp_path / "damaged.bin"
    data = os.urandom(12 * MiB)
    path.write_bytes(data)
    proxy.add("corrupt", method="PUT", path=r"partNumber=2(&|$)", after_bytes=MiB, times=1)
    client = client_of(server.s3)

    damaged = run_cli(server, "upload", str(path), "--part-size", "5M", cwd=tmp_path)

    # The store refused the part (its digest was signed): the CLI says so and stops.
    assert proxy.counts["corrupt"] == 1
    assert damaged.returncode != 0
    assert "checksum" in damaged.stderr.lower(), damaged.stderr
    [upload] = server.api("GET", "/api/uploads/?status=uploading").json()["results"]
    detail = server.api("GET", f"/api/uploads/{upload['id']}/").json()  # reconciled with S3
    assert 2 not in [part["number"] for part in detail["parts"] if part["etag"]]
    assert "Contents" not in client.list_objects_v2(Bucket=server.bucket, Prefix=detail["key"])

    # Sent again (nothing damages it now), the part completes the upload, byte-identical.
    resumed = run_cli(server, "resume", str(path), cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    done = server.api("GET", f"/api/uploads/{upload['id']}/").json()
    assert done["status"] == "completed"
    assert object_sha256(server, done["key"]) == hashlib.sha256(data).hexdigest()
