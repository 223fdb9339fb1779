"""`manage.py check --deploy` passes with the production settings docs/deployment.md documents.

The environment file is read from the document itself, so the two cannot drift apart. Each
`<…>` placeholder is filled with a random value, as an operator would.
"""

import os
import re
import secrets
import subprocess
import sys

import pytest

from project.dev.embedded import BASE_DIR

pytestmark = pytest.mark.timeout(120)
DOC = BASE_DIR / "docs" / "deployment.md"
ENV_FILE_HEADER = "# partwise.env"
PLACEHOLDER = re.compile(r"<[^>]*>")


def documented_environment() -> dict[str, str]:
    """The KEY=VALUE lines of the doc's `# partwise.env` block, placeholders filled in."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    [block] = [b for b in blocks if b.startswith(ENV_FILE_HEADER)]
    env = {}
    for line in block.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        env[name] = PLACEHOLDER.sub(lambda _: secrets.token_urlsafe(40), value)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    # Only the documented variables: nothing from this machine's environment may help.
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_the_documented_environment_covers_the_settings_that_must_change():
    env = documented_environment()
    assert {
        "DJANGO_DEBUG",
        "DJANGO_SECRET_KEY",
        "DJANGO_ALLOWED_HOSTS",
        "DJANGO_CSRF_TRUSTED_ORIGINS",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CACHE_URL",
        "AWS_S3_ENDPOINT_URL",
        "UPLOADS_BUCKET",
        "UPLOADS_CORS_ORIGINS",
    } <= set(env)
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["CELERY_BROKER_URL"].startswith("redis://")
    assert env["AWS_S3_ENDPOINT_URL"] == ""  # AWS itself, not the embedded SeaweedFS


def test_check_deploy_passes_with_the_documented_production_settings():
    result = check_deploy(documented_environment())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        ({"DJANGO_DEBUG": "true"}, "security.W018"),
        ({"DJANGO_SECRET_KEY": "short"}, "security.W009"),
        ({"DJANGO_SILENCED_SYSTEM_CHECKS": ""}, "security.W021"),
    ],
    ids=["debug-on", "weak-secret-key", "hsts-preload-not-silenced"],
)
def test_check_deploy_fails_when_a_documented_setting_is_left_out(change, warning):
    result = check_deploy({**documented_environment(), **change})

    assert result.returncode != 0
    assert warning in result.stderr
