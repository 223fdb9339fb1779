"""What every benchmark starts: SeaweedFS and Partwise under gunicorn, on free loopback ports.

`Stack` starts both (each with its own temp dir, stopped on exit), creates a user with an API
token and a bucket whose CORS lets the server's own origin PUT parts, and measures the Django
processes: requests served (gunicorn's access log), CPU time and peak RSS (/proc), so that
each script prints figures measured in the same run. Not a test module: scripts import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.django_server import _SETUP, PASSWORD, DjangoServer, User  # noqa: E402
from uploads.embedded_s3 import Ports, SeaweedFS  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
CLK_TCK = os.sysconf("SC_CLK_TCK")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
START_TIMEOUT = 60.0


@dataclass
class GunicornServer(DjangoServer):
    """tests/django_server.py's server, served by gunicorn with DEBUG off, as in production."""

    workers: int = 2
    threads: int = 4
    access_log: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            # DEBUG on would record every SQL query in memory and distort RSS and CPU time.
            "DJANGO_DEBUG": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "UPLOADS_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }

    def start(self) -> GunicornServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.access_log = self.workdir / "access.log"
        self.manage("migrate", "--no-input")
        argv = f"import sys; sys.argv[1:] = [{self.url!r}, {PASSWORD!r}]\n"
        out = self.manage("shell", "--no-imports", "-c", argv + _SETUP)
        line = next(line for line in out.splitlines() if line.startswith("USERS="))
        self.users = {name: User(name, **values) for name, values in json.loads(line[6:]).items()}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (open for the server's lifetime)
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "project.wsgi:application",
                f"--bind=127.0.0.1:{self.port}",
                f"--workers={self.workers}",
                f"--threads={self.threads}",
                "--worker-class=gthread",
                f"--access-logfile={self.access_log}",
                "--access-logformat=%(m)s %(U)s %(s)s %(L)s",
                "--timeout=120",
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log_path}")
            if self.ready() and len(self.worker_pids()) >= self.workers:
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"gunicorn did not answer on {self.url}")

    # --- measuring the Django processes ---------------------------------------------------
    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU time of the master and its workers so far."""
        total = 0
        for pid in [self.process.pid, *self.worker_pids()]:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLK_TCK

    def peak_rss(self) -> int:
        """The largest peak resident set (VmHWM, bytes) of any gunicorn worker."""
        peaks = [0]
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) * 1024)
        return max(peaks)

    def access_lines(self) -> list[str]:
        if self.access_log is None or not self.access_log.exists():
            return []
        return self.access_log.read_text().splitlines()

    def requests_since(self, mark: int) -> Counter[str]:
        """Requests served since access_lines()[mark:], by route ("POST /api/uploads/:id/sign/")."""
        routes: Counter[str] = Counter()
        for line in self.access_lines()[mark:]:
            method, path = line.split(" ")[:2]
            path = re.sub(r"/\d+$", "/:n", _UUID.sub(":id", path))
            routes[f"{method} {path}"] += 1
        return routes


@dataclass
class Stack:
    """SeaweedFS + gunicorn Partwise, for the length of a `with` block."""

    workers: int = 2
    threads: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    keep: bool = False

    def __enter__(self) -> Stack:
        self.tmp = Path(tempfile.mkdtemp(prefix="partwise-bench-"))
        self.s3 = SeaweedFS(
            data_dir=self.tmp / "seaweedfs",
            access_key="bench" + secrets.token_hex(6),
            secret_key=secrets.token_urlsafe(24),
            ports=Ports.free(),
        ).start()
        try:
            self.django = GunicornServer(
                workdir=self.tmp / "django",
                s3=self.s3,
                workers=self.workers,
                threads=self.threads,
                extra_env=self.extra_env,
            ).start()
        except BaseException:
            self.s3.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.django.stop()
        self.s3.stop()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def token(self) -> str:
        return self.django.users["alice"].token

    def boto3_client(self):
        """A boto3 client on the bench's SeaweedFS, configured like uploads.storage's."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.s3.endpoint,
            aws_access_key_id=self.s3.access_key,
            aws_secret_access_key=self.s3.secret_key,
            config=Config(
                region_name="us-east-1",
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                max_pool_connections=32,
            ),
        )


def write_random_file(path: Path, size: int) -> Path:
    """`size` bytes that no layer can compress, written in 8 MiB blocks."""
    block = os.urandom(8 * MiB)
    with path.open("wb") as stream:
        remaining = size
        while remaining:
            # Vary each block cheaply so parts differ (identical parts could be deduplicated).
            chunk = (remaining.to_bytes(8, "big") + block)[: min(remaining, len(block))]
            stream.write(chunk)
            remaining -= len(chunk)
    return path


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    """One line about where the figures come from."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return f"{os.cpu_count()} cores ({cpu}); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)
