"""`setup_storage` against a real SeaweedFS, and `rundev` (what `make run` runs) as a whole.

`rundev` runs in a subprocess with every port chosen at run time and all its state in a
temporary PARTWISE_VAR_DIR, so it never touches the developer's var/ or the fixed ports.
"""

import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from io import StringIO

import psutil
import pytest
import requests
from django.core.management import call_command

from project.dev.embedded import BASE_DIR
from project.dev.management.commands.rundev import port_in_use
from project.dev.seaweedfs import PortClash, Ports, SeaweedFS, free_port
from tests.support.devstack import DevStack, dev_environment
from tests.support.presigned import put_signed

MiB = 1024 * 1024
ORIGIN = "http://127.0.0.1:8000"
# Once, in the SQLite pass: no test here reaches a database that follows DATABASE_URL (rundev
# drops DATABASE_* and keeps its own SQLite file; the rest is SeaweedFS and S3 settings), so the
# PostgreSQL pass would run the same code again (tests/support/engines.py).
pytestmark = pytest.mark.engine_independent


# --- the embedded SeaweedFS --------------------------------------------------------------------
def test_a_weed_mini_whose_port_is_taken_reports_a_clash_naming_the_port(tmp_path):
    ports = Ports.free()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports.master))
        holder.listen()

        with pytest.raises(PortClash, match=f"port {ports.master} for Master"):
            SeaweedFS(tmp_path / "s3", "testkey1", "secret" * 4, ports=ports).start()


# --- setup_storage -----------------------------------------------------------------------------
def test_setup_storage_prepares_a_real_bucket_for_browser_uploads(real_s3, settings):
    settings.UPLOADS_BUCKET = f"pw-new-{uuid.uuid4().hex[:8]}"
    settings.UPLOADS_CORS_ORIGINS = [ORIGIN]
    out = StringIO()

    call_command("setup_storage", "--no-probe", stdout=out)
    call_command("setup_storage", "--no-probe", stdout=out)
    call_command("setup_storage", "--check", stdout=out)

    assert [line.split(" (")[0] for line in out.getvalue().splitlines()] == [
        f"bucket {settings.UPLOADS_BUCKET}: created",
        "CORS: created",
        "lifecycle: created",
        f"bucket {settings.UPLOADS_BUCKET}: ok",
        "CORS: ok",
        "lifecycle: ok",
        f"bucket {settings.UPLOADS_BUCKET}: ok",
        "CORS: ok",
        "lifecycle: ok",
        f"storage at {real_s3.client.meta.endpoint_url} is set up.",
    ]
    # What a browser asks before PUTting a part: allowed, and the ETag will be readable.
    preflight = requests.options(
        f"{real_s3.client.meta.endpoint_url}/{settings.UPLOADS_BUCKET}/uploads/x",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-amz-checksum-sha256",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "etag" in preflight.headers["Access-Control-Expose-Headers"].lower()
    rules = real_s3.client.get_bucket_lifecycle_configuration(Bucket=settings.UPLOADS_BUCKET)
    assert [rule["AbortIncompleteMultipartUpload"] for rule in rules["Rules"]] == [
        {"DaysAfterInitiation": 8}
    ]


# --- rundev --------------------------------------------------------------------------------------
@pytest.fixture
def dev_env(tmp_path) -> dict[str, str]:
    return dev_environment(tmp_path / "var")


@pytest.fixture
def start_stack(dev_env) -> Iterator:
    started: list[DevStack] = []

    def start(terminal: bool = False) -> DevStack:
        stack = DevStack(dev_env, free_port(), terminal=terminal)
        started.append(stack)
        stack.wait_for("Press Ctrl+C to stop everything.")
        return stack

    yield start
    for stack in started:
        stack.kill()  # only if a test failed half-way


def test_rundev_serves_everything_stops_on_ctrl_c_and_keeps_its_data_across_restarts(
    start_stack, dev_env
):
    s3_port = int(dev_env["AWS_S3_ENDPOINT_URL"].rsplit(":", 1)[1])
    stack = start_stack()
    token = stack.value("API token")
    assert stack.value("login") == "dev"
    auth = {"Authorization": f"Token {token}"}

    assert requests.get(f"{stack.web}/api/docs/", timeout=10).status_code == 200
    # An upload through the API into the embedded SeaweedFS: its bucket was set up on the way.
    data = os.urandom(MiB)
    upload = requests.post(
        f"{stack.web}/api/uploads/",
        json={"filename": "a.bin", "size": len(data)},
        headers=auth,
        timeout=30,
    ).json()
    signed = requests.post(
        f"{stack.web}/api/uploads/{upload['id']}/sign/",
        json={"parts": [{"number": 1}]},
        headers=auth,
        timeout=30,
    ).json()["parts"][0]
    etag = put_signed(signed, data)
    requests.post(
        f"{stack.web}/api/uploads/{upload['id']}/parts/",
        json={"parts": [{"number": 1, "etag": etag}]},
        headers=auth,
        timeout=30,
    ).raise_for_status()
    done = requests.post(
        f"{stack.web}/api/uploads/{upload['id']}/complete/", headers=auth, timeout=30
    )
    assert done.json()["status"] == "completed", done.json()

    assert stack.interrupt() == 0
    assert [line for line in stack.lines if "stopped" in line][-2:] == [
        "partwise | SeaweedFS stopped",
        "partwise | all stopped.",
    ]
    assert not port_in_use(s3_port)
    assert not port_in_use(int(stack.web.rsplit(":", 1)[1]))

    # Second run: same login, the upload and its bytes are still there.
    again = start_stack()
    assert again.value("API token") == token
    assert any("bucket" in line and ": ok (exists)" in line for line in again.lines)
    listed = requests.get(
        f"{again.web}/api/uploads/", params={"status": "completed"}, headers=auth, timeout=30
    )
    assert [item["id"] for item in listed.json()["results"]] == [upload["id"]]
    assert again.interrupt() == 0


def test_rundev_refuses_to_start_beside_a_running_instance(start_stack, dev_env):
    first = start_stack()

    second = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "rundev",
            "--embedded-s3=always",
            f"--addr=127.0.0.1:{free_port()}",
        ],
        cwd=BASE_DIR,
        env=dev_env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert second.returncode == 1
    assert "(S3 API) is already serving on 127.0.0.1" in second.stderr
    assert first.process.poll() is None  # the running one is untouched
    assert first.interrupt() == 0


def test_closing_the_terminal_stops_the_whole_stack_and_leaves_no_process(start_stack, dev_env):
    s3_port = int(dev_env["AWS_S3_ENDPOINT_URL"].rsplit(":", 1)[1])
    stack = start_stack(terminal=True)
    started = stack.descendants()
    names = {" ".join(process.cmdline()) for process in started}
    assert any("weed" in name for name in names), names
    assert any("worker" in name for name in names), names
    assert any("beat" in name for name in names), names
    assert any("runserver" in name for name in names), names

    stack.hang_up()

    assert stack.process.wait(90) == 0  # it stopped on purpose, as on Ctrl+C
    _, alive = psutil.wait_procs(started, timeout=30)
    assert alive == []
    assert not port_in_use(s3_port)
    assert not port_in_use(int(stack.web.rsplit(":", 1)[1]))


def test_a_worker_that_dies_is_restarted_and_the_stack_stays_up(start_stack):
    stack = start_stack()
    worker = stack.child("celery", "worker")

    worker.kill()

    stack.wait_for("worker exited with status -9; restarting it (1 of 5 restarts in 10 minutes)")
    stack.wait_for("ready.")
    assert stack.child("celery", "worker").pid != worker.pid
    assert requests.get(f"{stack.web}/api/docs/", timeout=10).status_code == 200
    assert stack.interrupt() == 0


def sign_in(web: str, username: str, password: str) -> requests.Session:
    """A browser-like session signed in through the page's own /login/ form."""
    browser = requests.Session()
    form = browser.get(f"{web}/login/", timeout=10).text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert csrf, form
    signed_in = browser.post(
        f"{web}/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf[1]},
        timeout=10,
    )
    assert signed_in.url == f"{web}/", "the login went through to the upload page"
    return browser


def test_rundev_on_another_port_lets_browsers_on_that_origin_upload(start_stack, dev_env):
    """`make run PORT=…`: the bucket's CORS and the page follow the address actually served."""
    stack = start_stack()
    port = int(stack.web.rsplit(":", 1)[1])
    assert port != 8000
    s3 = dev_env["AWS_S3_ENDPOINT_URL"]

    # The storage set-up's lines carry the prefix of every other line, and name the origins.
    cors_line = next(line for line in stack.lines if "CORS: " in line)
    assert cors_line.startswith("partwise | CORS: created (PUT from ")
    assert f"http://127.0.0.1:{port}" in cors_line
    # What a browser on either name of the server asks SeaweedFS before PUTting a part.
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        preflight = requests.options(
            f"{s3}/partwise/uploads/x",
            headers={"Origin": origin, "Access-Control-Request-Method": "PUT"},
            timeout=10,
        )
        assert preflight.status_code == 200, origin
        assert preflight.headers["Access-Control-Allow-Origin"] == origin
    # The web server read the same origins: its page has no CORS warning.
    login = next(line for line in stack.lines if "  login  " in line)
    username, password = login.split("login", 1)[1].split(" / ")
    page = sign_in(stack.web, username.strip(), password.strip()).get(f"{stack.web}/", timeout=10)
    assert page.status_code == 200
    assert 'id="cors-blocked"' not in page.text
    assert stack.interrupt() == 0
