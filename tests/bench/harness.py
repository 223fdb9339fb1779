"""What every benchmark starts: SeaweedFS and Partwise under gunicorn, on free loopback ports.

`Stack` starts both (each with its own temp dir, stopped on exit), creates a user with an API
token and a bucket whose CORS lets the server's own origin PUT parts, and measures the Django
processes: requests served (gunicorn's access log), CPU time and peak RSS (/proc), so that
each script prints figures measured in the same run. Not a test module: scripts import it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from project.dev.seaweedfs import SeaweedFS  # noqa: E402
from tests.django_server import GunicornServer  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
CLK_TCK = os.sysconf("SC_CLK_TCK")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class MeasuredServer(GunicornServer):
    """The tests' gunicorn server, plus what the benchmarks measure of its processes."""

    def ready(self) -> bool:
        # Measure from the first request on: every worker up, not only the first.
        return super().ready() and len(self.worker_pids()) >= self.workers

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
        if not self.access_log.exists():
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
        self.s3 = SeaweedFS.on_free_ports(
            data_dir=self.tmp / "seaweedfs",
            access_key="bench" + secrets.token_hex(6),
            secret_key=secrets.token_urlsafe(24),
        )
        try:
            self.django = MeasuredServer(
                workdir=self.tmp / "django",
                s3=self.s3,
                database_url=f"sqlite:///{self.tmp / 'django' / 'db.sqlite3'}",
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
