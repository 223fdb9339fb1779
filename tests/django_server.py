"""A real Partwise server in a subprocess, for tests whose clients are other processes.

`manage.py runserver --noreload` on a free loopback port, with its own SQLite file, its own
var dir and settings pointing at a test store (SeaweedFS, tests/s3server.py, or Ceph RGW), so a
CLI subprocess, Schemathesis or Chromium talk to it over real HTTP exactly as in production, and
nothing is shared with the pytest process (pytest-django's live_server shares an in-memory
database between threads, which concurrent clients do not tolerate). Users, tokens and sessions are
made by one `manage.py shell` script at start.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from project.dev.seaweedfs import SeaweedFS, free_port

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
PASSWORD = "correct horse battery staple"

_SETUP = """
import json, sys
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from uploads.storage import get_storage
from uploads.tokens.models import ApiToken

origin, password = sys.argv[1], sys.argv[2]
storage = get_storage()
storage.create_bucket()
storage.put_bucket_cors([origin])
users = {}
for name in ("alice", "mallory"):
    user = get_user_model().objects.create_user(name, password=password)
    token, key = ApiToken.issue(user, name="tests")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    users[name] = {"token": key, "session": session.session_key}
print("USERS=" + json.dumps(users))
"""


# Users without a password (no slow hashing), each with a token: for many-client tests.
_TOKENS = """
import json, sys
from django.contrib.auth import get_user_model
from uploads.tokens.models import ApiToken

prefix, count = sys.argv[1], int(sys.argv[2])
keys = []
for n in range(count):
    user = get_user_model().objects.create_user(f"{prefix}{n}")
    keys.append(ApiToken.issue(user, name=prefix)[1])
print("KEYS=" + json.dumps(keys))
"""


@dataclass
class User:
    username: str
    token: str
    session: str


@dataclass
class DjangoServer:
    workdir: Path
    s3: SeaweedFS  # or any store with endpoint, access_key and secret_key (a CephRGW)
    settings_module: str = "project.settings"
    port: int = field(default_factory=free_port)
    bucket: str = field(default_factory=lambda: f"pw-{uuid.uuid4().hex[:12]}")
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(40))
    users: dict[str, User] = field(default_factory=dict)
    # Settings on top of env(), e.g. AWS_S3_PUBLIC_ENDPOINT_URL of a fault proxy.
    extra_env: dict[str, str] = field(default_factory=dict)
    # Probe the store at start and record its profile (`manage.py probe_storage`), as
    # `setup_storage` does in production: uploads then carry the digest the store verifies.
    probe: bool = False
    # Empty: chosen at start, a SQLite file in workdir, or in the PostgreSQL pass a new
    # database on the test PostgreSQL server (tests/pg.py).
    database_url: str = ""
    process: subprocess.Popen | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "runserver.log"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            # One key for setup and server: sessions made at setup are signed with it.
            "DJANGO_SECRET_KEY": self.secret_key,
            "DJANGO_DEBUG": "true",
            "DATABASE_URL": self.database_url or f"sqlite:///{self.workdir / 'db.sqlite3'}",
            "PARTWISE_VAR_DIR": str(self.workdir / "var"),
            "AWS_S3_ENDPOINT_URL": self.s3.endpoint,
            "AWS_S3_PUBLIC_ENDPOINT_URL": self.s3.endpoint,
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_S3_REGION_NAME": "us-east-1",
            "UPLOADS_BUCKET": self.bucket,
            "UPLOADS_CORS_ORIGINS": self.url,
            "CELERY_BROKER_URL": "memory://",
            # Fuzzers and parallel parts make many calls; the login throttle stays as shipped.
            "API_THROTTLE_ANON": "100000/min",
            "API_THROTTLE_USER": "100000/min",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def tokens_for_new_users(self, count: int, prefix: str) -> list[str]:
        """Make `count` users named prefix0, prefix1, …; one API token key each."""
        argv = f"import sys; sys.argv[1:] = [{prefix!r}, {str(count)!r}]\n"
        out = self.manage("shell", "--no-imports", "-c", argv + _TOKENS)
        return list(json.loads(next(ln for ln in out.splitlines() if ln.startswith("KEYS="))[5:]))

    def start(self) -> DjangoServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            from tests.pg import server_database_url  # pytest's Django settings decide

            self.database_url = server_database_url(self.workdir)
        self.manage("migrate", "--no-input")
        argv = f"import sys; sys.argv[1:] = [{self.url!r}, {PASSWORD!r}]\n"
        out = self.manage("shell", "--no-imports", "-c", argv + _SETUP)
        line = next(line for line in out.splitlines() if line.startswith("USERS="))
        self.users = {name: User(name, **values) for name, values in json.loads(line[6:]).items()}
        if self.probe:
            self.manage("probe_storage")
        return self.launch()

    def restart(self) -> DjangoServer:
        """Stop the server and start it again on the same port and database (a deploy, a crash)."""
        self.stop()
        return self.launch()

    def another_node(self, workdir: Path) -> DjangoServer:
        """A second server process on this one's database, bucket, key and users (started):
        another node behind the same load balancer."""
        node = replace(self, workdir=workdir, port=free_port(), process=None, _log=None)
        node.workdir.mkdir(parents=True, exist_ok=True)
        return node.launch()

    def kill(self) -> None:
        """SIGKILL the server and every worker it forked, as when its machine dies."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the group is its own
            self.process.wait()
        self._close_log()

    def launch(self) -> DjangoServer:
        """Start runserver on the prepared database and wait until it answers."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (open for the server's lifetime)
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runserver exited; see {self.log_path}")
            if self.ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"runserver did not answer on {self.url}")

    def command(self) -> list[str]:
        """The server process (a subclass may run gunicorn instead)."""
        return [
            sys.executable,
            str(ROOT / "manage.py"),
            "runserver",
            "--noreload",
            "--skip-checks",
            f"127.0.0.1:{self.port}",
        ]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/api/", timeout=1):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True  # the JSON 404 of /api/ means Django answers
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, *, user: str = "alice", **kwargs: Any) -> Any:
        """One authenticated JSON call (for assertions), through `requests`."""
        import requests

        headers = {"Authorization": f"Token {self.users[user].token}"}
        response = requests.request(
            method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs
        )
        return response


@dataclass
class GunicornServer(DjangoServer):
    """The same server run as docs/deployment.md runs it: gunicorn gthread workers, DEBUG off.

    For the load test and the benchmarks, where DEBUG (which records every SQL query) and
    runserver's one thread per request would distort what is measured.
    """

    workers: int = 2
    threads: int = 4

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "DJANGO_DEBUG": "false",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "UPLOADS_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).parent / "gunicorn"),
            "project.wsgi:application",
            f"--bind=127.0.0.1:{self.port}",
            f"--workers={self.workers}",
            f"--threads={self.threads}",
            "--worker-class=gthread",
            f"--access-logfile={self.access_log}",
            # method, path, status, seconds taken
            "--access-logformat=%(m)s %(U)s %(s)s %(L)s",
            "--timeout=120",
            # Longer than a client stays idle between two calls (a slow PUT to S3): otherwise
            # gunicorn's 2 s default closes pooled connections just as a client reuses them,
            # as no proxy in front of it would.
            "--keep-alive=75",
        ]
