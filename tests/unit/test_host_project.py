"""Partwise inside an existing Django project (README's "Add Partwise to your Django project").

tests/host_project/ is such a project: its own settings and custom user model, Partwise
mounted under /files/ with `include("uploads.urls")`, a model that refers to finished uploads.
It runs in subprocesses (a process has one settings module), against moto's S3.
"""

import json
import os
import secrets
import subprocess
import sys

import pytest

from project.dev.embedded import BASE_DIR

pytestmark = pytest.mark.timeout(180)
HOST_MANAGE = BASE_DIR / "tests" / "host_project" / "manage.py"


def host_environment(**extra: str) -> dict[str, str]:
    # Only what the host's settings read: nothing of Partwise's own settings may help.
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "tests.host_project.settings",
        "HOST_SECRET_KEY": secrets.token_urlsafe(50),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **extra,
    }


def run(args: list[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=host_environment(**extra),
        capture_output=True,
        text=True,
        timeout=150,
    )


@pytest.fixture(scope="module")
def full_upload() -> dict:
    result = run(["-m", "tests.host_project.full_upload"])
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_app_mounts_under_the_prefix_the_host_chooses(full_upload):
    assert full_upload["routes"] == {
        "api": "/files/api/uploads/",
        "uppy": "/files/s3/multipart",
        "page": "/files/",
        "login": "/files/login/",
    }
    # The page takes its endpoint from the server, so it calls the mounted API.
    assert full_upload["page"] == {"status": 200, "endpoint": "/files/api/uploads/"}
    assert full_upload["login_page"] == [200, "text/html; charset=utf-8"]
    # The page's templates, scripts and styles come with the app (package data): the host
    # names no template or static folder of this repository.
    assets = full_upload["page_assets"]
    assert {"partwise/page.js", "partwise/page.css", "partwise/client.js"} <= set(assets)
    assert "partwise/client/handle.js" in assets
    assert all(assets.values()), assets
    # The API's own errors keep their JSON shape under the prefix, also those answered outside
    # its views (a locked-out login, through django-axes' middleware).
    assert full_upload["unknown_api_route"] == {"status": 404, "keys": ["code", "detail"]}
    assert full_upload["json_paths"] == ["/files/api/", "/files/s3/"]
    assert full_upload["locked_out"] == {
        "status": 429,
        "content_type": "application/json",
        "code": "login_locked",
    }


def test_a_file_goes_to_s3_in_parts_through_the_hosts_urls(full_upload):
    assert full_upload["user_model"] == "library.Member"  # the host's AUTH_USER_MODEL
    assert (full_upload["create"], full_upload["sign"], full_upload["put"]) == (201, 200, 200)
    assert full_upload["report"] == [200, 5 * 1024 * 1024 + len(b"the last part")]
    assert full_upload["complete"] == [200, "completed"]
    assert full_upload["stored_sha256_matches"]


def test_partwises_api_keeps_its_own_policy_whatever_the_hosts_rest_framework_says(full_upload):
    # The host's REST_FRAMEWORK: Basic authentication, AllowAny, a browsable renderer, DRF's
    # error bodies, no throttles. None of it applies under Partwise's routes.
    policy = full_upload["api_policy"]
    assert policy["anonymous"] == {"status": 401, "code": "not_authenticated"}
    assert policy["basic_auth"] == {"status": 401, "code": "not_authenticated"}
    assert policy["malformed_json"] == {
        "status": 400,
        "code": "parse_error",
        "content_type": "application/json",
    }
    assert policy["anonymous_61"] == [401, 429]  # refused, then throttled once over the rate
    assert policy["monotonic"]
    assert policy["throttled"] == {"status": 429, "code": "throttled"}


def test_the_host_runs_without_partwises_own_site_package(full_upload):
    assert full_upload["project_imported"] == []


def test_the_host_reacts_to_upload_completed_with_its_own_model(full_upload):
    # library/receivers.py files a Document (a ForeignKey to completed uploads) for each file.
    assert full_upload["document"] == {"title": "report.pdf", "owner": "ada"}


def test_the_uppy_routes_answer_under_the_prefix(full_upload):
    assert full_upload["uppy_create"] == {"status": 200, "keys": ["bucket", "key", "uploadId"]}


def test_check_deploy_passes_for_the_host_with_production_settings():
    result = run([str(HOST_MANAGE), "check", "--deploy", "--fail-level", "WARNING"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_partwises_own_checks_run_in_the_host():
    # The check above is not vacuous: Partwise's checks are part of it.
    result = run(
        [str(HOST_MANAGE), "check", "--deploy", "--fail-level", "WARNING"],
        HOST_WEBHOOK_URL="https://receiver.example/hooks",
    )

    assert result.returncode != 0
    assert "uploads.W002" in result.stdout + result.stderr
