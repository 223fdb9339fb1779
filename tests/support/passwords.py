"""Fast password hashing for every test (a plugin; the users' password is factories.PASSWORD)."""

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # PBKDF2 takes a quarter of a second per user on a small machine (logins, factories that
    # give 50 owners a password); tests need no strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
