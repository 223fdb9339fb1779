"""The `partwise` command end to end: a real server process, a real SeaweedFS, real kills.

The CLI runs as its own process, as a user would run it; the server is `manage.py runserver`
(tests/django_server.py). "Only the missing parts are sent" is asserted on the server side by
counting the sign calls in the server's request log: every part the CLI sends is signed first.
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from partwise_client.fingerprint import fingerprint
from tests.django_server import PASSWORD, DjangoServer
from tests.s3server import client_of
from tests.support.checksums import sha256_of_object

MiB = 1024 * 1024
PARTS = 10
pytestmark = pytest.mark.timeout(300)
PARTWISE = shutil.which("partwise", path=str(Path(sys.executable).parent)) or "partwise"


@pytest.fixture(scope="module")
def server(seaweedfs, tmp_path_factory):
    server = DjangoServer(tmp_path_factory.mktemp("django"), seaweedfs).start()
    yield server
    server.stop()


def cli_env(server: DjangoServer, user: str = "alice") -> dict[str, str]:
    return {
        **os.environ,
        "PARTWISE_SERVER": server.url,
        "PARTWISE_TOKEN": server.users[user].token,
    }


def partwise(server, *args, cwd, user="alice", env=None):
    return subprocess.run(
        [PARTWISE, *args],
        cwd=cwd,
        env=env or cli_env(server, user),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def slow_upload(server: DjangoServer, path: Path, *, rate: str, cwd: Path) -> subprocess.Popen:
    """`partwise upload` of `path` in 5 MiB parts at `rate`, running (to be stopped)."""
    return subprocess.Popen(
        [PARTWISE, "upload", str(path), "--part-size", "5M", "--limit-rate", rate, "-q"],
        cwd=cwd,
        env=cli_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sign_calls(server: DjangoServer, upload_id: str, since: int) -> int:
    return len(re.findall(rf'"POST /api/uploads/{upload_id}/sign/ HTTP', server.log()[since:]))


def wait_for_parts(server, path: Path, at_least: int, process) -> dict:
    """The unfinished upload of `path`, once S3 holds `at_least` of its parts.

    Asked of the detail, which reconciles with S3: the CLI reports parts only in batches (64,
    or every 15 s), so what it reported lags behind what S3 holds.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the CLI finished before it could be stopped"
        query = f"/api/uploads/?status=uploading&fingerprint={fingerprint(path)}"
        uploads = server.api("GET", query).json()["results"]
        if uploads:
            detail = server.api("GET", f"/api/uploads/{uploads[0]['id']}/").json()
            if detail["parts_uploaded"] >= at_least:
                return detail
        time.sleep(0.05)
    raise AssertionError("the upload made no progress")


def settled_parts(server, upload_id: str) -> list[int]:
    """The part numbers S3 holds, once a part PUT cut off by the kill can no longer land."""
    seen = None
    while True:
        detail = server.api("GET", f"/api/uploads/{upload_id}/").json()  # reconciled with S3
        have = sorted(part["number"] for part in detail["parts"] if part["etag"])
        if have == seen:
            return have
        seen = have
        time.sleep(1.0)


def object_sha256(server: DjangoServer, key: str) -> str:
    # Read the object straight from S3, as a consumer of the bucket would.
    return sha256_of_object(client_of(server.s3), server.bucket, key)


def test_a_killed_upload_resumes_elsewhere_sending_only_the_missing_parts(server, tmp_path):
    first, second, impostor_dir = (tmp_path / d for d in ("first", "second", "impostor"))
    for folder in (first, second, impostor_dir):
        folder.mkdir()
    data = os.urandom(50 * MiB)
    original = first / "holiday.mov"
    original.write_bytes(data)

    # 1. Upload slowly (10 MiB/s, 5 MiB parts) and SIGKILL the CLI when half the parts are in.
    process = slow_upload(server, original, rate="10M", cwd=first)
    try:
        upload = wait_for_parts(server, original, PARTS // 2, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    upload_id = upload["id"]
    have = settled_parts(server, upload_id)
    stored = server.api("GET", f"/api/uploads/{upload_id}/").json()
    missing = PARTS - len(have)
    assert (stored["status"], stored["part_count"]) == ("uploading", PARTS)
    assert 0 < missing < PARTS

    # 2. A different file with the same name, size, date and first and last MiB has the same
    #    fingerprint, but `resume` refuses it: an uploaded part's SHA-256 differs.
    impostor = impostor_dir / "holiday.mov"
    impostor.write_bytes(data[:MiB] + os.urandom(48 * MiB) + data[-MiB:])
    stat = original.stat()
    os.utime(impostor, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprint(impostor) == fingerprint(original)
    log_mark = len(server.log())
    refused = partwise(server, "resume", str(impostor), "-q", cwd=second)
    assert refused.returncode == 5, refused.stderr
    assert "is not the file of the unfinished upload" in refused.stderr
    assert sign_calls(server, upload_id, log_mark) == 0

    #    `upload` of that file starts a new upload instead of resuming into ours.
    separate = partwise(server, "upload", str(impostor), "-q", cwd=second)
    assert separate.returncode == 0, separate.stderr
    assert upload_id not in separate.stdout
    assert sign_calls(server, upload_id, log_mark) == 0
    assert server.api("GET", f"/api/uploads/{upload_id}/").json()["parts_uploaded"] == len(have)

    # 3. Resume from a fresh process in another working directory: only missing parts go.
    log_mark = len(server.log())
    resumed = partwise(server, "resume", str(original), "-q", cwd=second)
    assert resumed.returncode == 0, resumed.stderr
    assert (
        f"Resuming upload {upload_id} of {original.name}: {len(have)} of {PARTS} parts already "
        "uploaded, " in resumed.stderr
    )
    assert f"{missing} parts sent, {len(have)} already there" in resumed.stdout
    # The missing parts are signed in batches (up to 100 a call), never one call per part. The
    # killed run's parts stay leased to its session for session_idle seconds, but this run on
    # the same machine continues that session (partwise_client/sessions.py): nothing is
    # answered `leased`, nothing waits.
    assert sign_calls(server, upload_id, log_mark) == -(-missing // 100)
    assert "being sent by another session" not in resumed.stderr
    done = server.api("GET", f"/api/uploads/{upload_id}/").json()
    assert (done["status"], done["size"]) == ("completed", len(data))
    assert object_sha256(server, done["key"]) == hashlib.sha256(data).hexdigest()


def test_ctrl_c_stops_with_exit_130_and_the_upload_resumes(server, tmp_path):
    path = tmp_path / "big.bin"
    data = os.urandom(30 * MiB)
    path.write_bytes(data)
    process = slow_upload(server, path, rate="8M", cwd=tmp_path)
    upload = wait_for_parts(server, path, 1, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert f"interrupted: {path} is not finished" in stderr  # the message names the file
    assert f"`partwise resume {path}` continues" in stderr
    assert server.api("GET", f"/api/uploads/{upload['id']}/").json()["status"] == "uploading"
    resumed = partwise(server, "resume", str(path), "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    done = server.api("GET", f"/api/uploads/{upload['id']}/").json()
    assert object_sha256(server, done["key"]) == hashlib.sha256(data).hexdigest()


def test_list_abort_and_the_exit_codes(server, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    uploaded = partwise(server, "upload", str(empty), "-q", cwd=tmp_path)
    assert uploaded.returncode == 0, uploaded.stderr
    upload_id = re.search(r"uploaded as ([0-9a-f-]{36})", uploaded.stdout).group(1)

    listed = partwise(server, "list", cwd=tmp_path)
    assert listed.returncode == 0
    assert re.search(rf"{upload_id}\s+completed\s+100%\s+0.0 MiB\s+empty.txt", listed.stdout)

    other = partwise(server, "abort", upload_id, cwd=tmp_path, user="mallory")
    assert (other.returncode, "not_found" in other.stderr or "Not found" in other.stderr) == (
        4,
        True,
    )
    completed = partwise(server, "abort", upload_id, cwd=tmp_path)
    assert completed.returncode == 1
    assert "upload_conflict" in completed.stderr

    # A finished upload is reported, not sent again; a file never uploaded has nothing to resume.
    finished = partwise(server, "resume", str(empty), cwd=tmp_path)
    assert (finished.returncode, f"uploaded as {upload_id}" in finished.stdout) == (0, True)
    never = tmp_path / "never.txt"
    never.write_bytes(b"never sent")
    nothing = partwise(server, "resume", str(never), cwd=tmp_path)
    assert nothing.returncode == 4
    bad_token = partwise(
        server, "list", cwd=tmp_path, env={**cli_env(server), "PARTWISE_TOKEN": "pw_nope"}
    )
    assert bad_token.returncode == 3
    no_server = partwise(
        server, "list", cwd=tmp_path, env={**cli_env(server), "PARTWISE_SERVER": ""}
    )
    assert (no_server.returncode, "no server" in no_server.stderr) == (2, True)
    missing = partwise(server, "upload", str(tmp_path / "absent.bin"), cwd=tmp_path)
    assert missing.returncode == 2


def test_login_prints_a_token_that_works(server, tmp_path):
    env = {
        **cli_env(server),
        "PARTWISE_TOKEN": "",
        "PARTWISE_PASSWORD": PASSWORD,
    }
    login = partwise(server, "login", "alice", "--name", "ci", cwd=tmp_path, env=env)
    assert login.returncode == 0, login.stderr
    token = login.stdout.strip()
    listed = partwise(server, "list", cwd=tmp_path, env={**env, "PARTWISE_TOKEN": token})
    assert listed.returncode == 0, listed.stderr
    wrong = partwise(
        server, "login", "alice", cwd=tmp_path, env={**env, "PARTWISE_PASSWORD": "nope"}
    )
    assert wrong.returncode == 3


def test_download_verifies_the_file_and_delete_removes_it(server, tmp_path):
    source = tmp_path / "Überblick.bin"
    source.write_bytes(os.urandom(12 * MiB + 7))  # three 5 MiB parts: a composite SHA-256
    uploaded = partwise(server, "upload", str(source), "--part-size", "5M", "-q", cwd=tmp_path)
    assert uploaded.returncode == 0, uploaded.stderr
    upload_id = re.search(r"uploaded as ([0-9a-f-]{36})", uploaded.stdout).group(1)
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    fetched = partwise(server, "download", upload_id, "-q", "-o", str(inbox), cwd=tmp_path)

    assert fetched.returncode == 0, fetched.stderr
    assert "size and SHA-256 checked" in fetched.stdout
    assert (inbox / source.name).read_bytes() == source.read_bytes()
    assert os.listdir(inbox) == [source.name]

    deleted = partwise(server, "delete", upload_id, cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == f"{upload_id}: deleted {source.name} (12.0 MiB)\n"
    assert server.api("GET", f"/api/uploads/{upload_id}/").json()["status"] == "deleted"
    again = partwise(server, "download", upload_id, "-q", "-o", str(tmp_path / "x"), cwd=tmp_path)
    assert (again.returncode, "upload_conflict" in again.stderr) == (1, True)
