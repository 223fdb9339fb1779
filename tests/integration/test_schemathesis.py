"""Schemathesis against the live API: every operation, authenticated, generated inputs.

The server is a real `runserver` process over a real SeaweedFS (tests/django_server.py); the
schema is the one the server publishes at /api/schema/. Checks: no 5xx, every status code and
content type documented, every response body valid against its schema. Bounded by
MAX_EXAMPLES per operation and a time budget, so it runs in about a minute.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests import pg
from tests.django_server import DjangoServer

pytestmark = pytest.mark.timeout(400)
# The full run is the SQLite pass's. The schema and the handlers are the same on either engine;
# what PostgreSQL can change is how a handler's queries end (a constraint, a range, a 5xx where
# SQLite answers), so the PostgreSQL pass runs every phase on every operation again with a
# smaller budget: ~30 s instead of ~77 s.
if pg.on_postgresql():
    MAX_EXAMPLES = 5
    TIME_BUDGET = 30  # seconds; the coverage phase alone takes ~15 s
else:
    MAX_EXAMPLES = 10
    TIME_BUDGET = 75
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]
ST = shutil.which("st", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def server(seaweedfs, tmp_path_factory):
    server = DjangoServer(tmp_path_factory.mktemp("django"), seaweedfs).start()
    yield server
    server.stop()


@pytest.mark.skipif(ST is None, reason="schemathesis is not installed (pip install -e '.[dev]')")
def test_every_operation_answers_within_its_schema_and_never_with_a_5xx(server, tmp_path):
    result = subprocess.run(
        [
            ST,
            "run",
            f"{server.url}/api/schema/",
            "--header",
            f"Authorization: Token {server.users['alice'].token}",
            "--checks",
            ",".join(CHECKS),
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--max-time",
            str(TIME_BUDGET),
            "--seed",
            "20261121",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=tmp_path,  # schemathesis keeps a cache of past failures in ./.schemathesis
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    output = result.stdout[-20000:] + result.stderr[-5000:]
    assert result.returncode == 0, output + "\n--- server log ---\n" + server.log()[-5000:]
    # Every operation was exercised (a schema that lost its paths would pass vacuously).
    schema = requests.get(f"{server.url}/api/schema/?format=json", timeout=30).json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    assert re.search(rf"Tested:\s+{operations}\b", output), output
    assert " 500 " not in server.log()
