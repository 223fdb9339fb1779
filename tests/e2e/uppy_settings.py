"""Settings for tests/e2e/test_uppy.py: the project's, plus a test-only page with Uppy on it."""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "tests.e2e.uppy_urls"
