"""System checks refuse settings that would fail later, and warn about risky ones."""

import pytest
from django.core.checks import Error, Warning

from uploads.checks import check_upload_settings


def ids(problems):
    return [problem.id for problem in problems]


def test_the_test_settings_pass(settings):
    assert check_upload_settings() == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"UPLOADS_BUCKET": ""}, "uploads.E001"),
        ({"UPLOADS_PART_SIZE": 5 * 1024 * 1024 - 1}, "uploads.E002"),
        ({"UPLOADS_PART_SIZE": 5 * 1024**3 + 1}, "uploads.E002"),
        ({"UPLOADS_KEY_PREFIX": ""}, "uploads.E003"),
        ({"UPLOADS_KEY_PREFIX": "uploads"}, "uploads.E003"),
        ({"UPLOADS_STALE_AFTERR": 3600}, "uploads.W001"),
        ({"UPLOADS_SIGN_BATCH_MAX": 99}, "uploads.W003"),
        (
            {"UPLOADS_WEBHOOK_URL": "https://app.example/hooks", "UPLOADS_WEBHOOK_SECRET": ""},
            "uploads.W002",
        ),
    ],
)
def test_a_bad_or_risky_setting_is_reported(settings, overrides, expected):
    for name, value in overrides.items():
        setattr(settings, name, value)
    problems = check_upload_settings()
    assert ids(problems) == [expected]
    kind = Error if expected.split(".")[1].startswith("E") else Warning
    assert isinstance(problems[0], kind)


def test_a_webhook_with_a_secret_passes(settings):
    settings.UPLOADS_WEBHOOK_URL = "https://app.example/hooks"
    settings.UPLOADS_WEBHOOK_SECRET = "s3cret-for-tests"
    assert check_upload_settings() == []
