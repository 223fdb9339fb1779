"""`setup_storage` against a real SeaweedFS, and `rundev` (what `make run` runs) as a whole.

`rundev` runs in a subprocess with every port chosen at run time and all its state in a
temporary PARTWISE_VAR_DIR, so it never touches the developer's var/ or the fixed ports.
"""

import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from io import StringIO

import pytest
import requests
from django.core.management import call_command

from project.dev.embedded import BASE_DIR
from project.dev.management.commands.rundev import port_in_use
from project.dev.seaweedfs import free_port
from tests.support.presigned import put_signed

MiB = 1024 * 1024
ORIGIN = "http://127.0.0.1:8000"


# --- setup_storage -----------------------------------------------------------------------------
def test_setup_storage_prepares_a_real_bucket_for_browser_uploads(real_s3, settings):
    settings.UPLOADS_BUCKET = f"pw-new-{uuid.uuid4().hex[:8]}"
    settings.UPLOADS_CORS_ORIGINS = [ORIGIN]
    out = StringIO()

    call_command("setup_storage", stdout=out)
    call_command("setup_storage", stdout=out)
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
class DevStack:
    """One `manage.py rundev` subprocess whose output is collected line by line."""

    def __init__(self, env: dict[str, str], web_port: int) -> None:
        self.web = f"http://127.0.0.1:{web_port}"
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "rundev",
                "--embedded-s3=always",
                f"--addr=127.0.0.1:{web_port}",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None and self._queue.empty():
                    break
                continue
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never came; output:\n" + "\n".join(self.lines))

    def value(self, label: str) -> str:
        line = next(line for line in self.lines if f"  {label}" in line)
        return line.split(label, 1)[1].split()[0]

    def interrupt(self, timeout: float = 90) -> int:
        """Ctrl+C, as a terminal sends it; returns the exit status."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        self.wait_for("all stopped.", timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def dev_env(tmp_path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "UPLOADS_", "DJANGO_", "DATABASE_", "CELERY_"))
    }
    env.update(
        PARTWISE_VAR_DIR=str(tmp_path / "var"),
        AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        AWS_ACCESS_KEY_ID="dev" + secrets.token_hex(6),
        AWS_SECRET_ACCESS_KEY=secrets.token_urlsafe(24),
    )
    return env


@pytest.fixture
def start_stack(dev_env) -> Iterator:
    started: list[DevStack] = []

    def start() -> DevStack:
        stack = DevStack(dev_env, free_port())
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
