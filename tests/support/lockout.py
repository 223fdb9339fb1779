"""Login lockout out of the way by default (a plugin), as throttling is (tests/conftest.py).

django-axes stays installed and counts every failed login, but tests that guess passwords to
exercise another layer (the token login's throttle, ten guesses) are not locked out after
five: the lockout has its own tests (tests/unit/test_login_lockout.py), which set the shipped
limit back. Attempts are rows in the database, so each test's rollback forgets them.
"""

import pytest


@pytest.fixture(autouse=True)
def _no_login_lockout_by_default(settings) -> None:
    settings.AXES_FAILURE_LIMIT = 1000
