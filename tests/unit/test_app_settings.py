"""The app's UPLOADS_* settings have defaults (uploads/conf.py), so a host project sets only
those it wants changed; this site's own settings start from the same values."""

import os

import pytest

from project import settings as site_settings
from uploads.conf import DEFAULTS, upload_settings


def test_a_project_that_sets_no_uploads_setting_gets_the_defaults(settings):
    for name in DEFAULTS:
        if hasattr(settings, name):
            delattr(settings, name)

    conf = upload_settings()

    assert conf.bucket == "partwise"
    assert conf.max_size == 5 * 1024**4
    assert conf.cors_origins == ()  # a host names its own origins
    assert conf.webhook_url == conf.webhook_secret == ""


@pytest.mark.parametrize("name", sorted(set(DEFAULTS) - {"UPLOADS_CORS_ORIGINS"}))
def test_the_sites_defaults_are_the_apps(name):
    # project/settings.py reads the environment; without the variable it says the same.
    if name in os.environ:
        pytest.skip(f"{name} is set in this environment")
    assert getattr(site_settings, name) == DEFAULTS[name]
