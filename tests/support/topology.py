"""The reference production layout of docs/deployment.md, on loopback, for the topology tier.

A SeaweedFS cluster (tests/support/seaweedfs_cluster.py), two Django nodes (gunicorn, DEBUG
off) on one PostgreSQL database with Redis as Celery broker and cache, a round-robin front
(tests/support/front.py), one Celery worker and one beat. Every process gets only environment
variables, as in production; `Topology.start()` returns once each of them answers.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.django_server import ROOT, DjangoServer, GunicornServer
from tests.support.front import RoundRobinFront
from tests.support.seaweedfs_cluster import SeaweedFSCluster, wait_until

START_TIMEOUT = 90.0


def redis_database(url: str, number: int) -> str:
    """`url` (redis://host:port/n) with database `number`: broker and cache apart from the other
    tests' Redis database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{number}"))


@dataclass
class CeleryProcess:
    """`celery worker` or `celery beat` with a node's environment; `ready_sign` in its log says
    it is up."""

    kind: str
    env: dict[str, str]
    log_path: Path
    arguments: list[str]
    ready_sign: str
    process: subprocess.Popen | None = None

    def start(self) -> CeleryProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "--app=project", self.kind, *self.arguments],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_for(self.ready_sign)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, sign: str, timeout: float = START_TIMEOUT) -> None:
        """Until `sign` (e.g. " ready.") is in its log."""
        wait_until(lambda: sign in self.log(), timeout, sign, alive=self.running, log=self.log)

    def result_of(self, task_id: str, timeout: float = START_TIMEOUT) -> str:
        """What a task returned, once the worker logs that it succeeded."""
        pattern = re.compile(rf"\[{re.escape(task_id)}\] succeeded in [\d.]+s: (.*)")
        self.wait_for(f"[{task_id}] succeeded", timeout)
        found = pattern.search(self.log())
        assert found is not None
        return found.group(1).strip()

    def stop(self) -> None:
        if self.running():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGTERM)  # a warm shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass
class Topology:
    """Everything of the layout, started in dependency order and stopped in reverse."""

    root: Path
    redis_url: str
    cluster: SeaweedFSCluster = field(init=False)
    nodes: list[DjangoServer] = field(default_factory=list)
    front: RoundRobinFront | None = None
    worker: CeleryProcess | None = None
    beat: CeleryProcess | None = None

    def __post_init__(self) -> None:
        self.cluster = SeaweedFSCluster(
            self.root / "seaweedfs",
            access_key="pw" + secrets.token_hex(6),
            secret_key=secrets.token_urlsafe(24),
        )

    def start(self) -> Topology:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.cluster.start()
        broker, cache = redis_database(self.redis_url, 2), redis_database(self.redis_url, 3)
        import redis

        for url in (broker, cache):
            redis.Redis.from_url(url).flushdb()  # nothing of an earlier run
        shared = {
            "CELERY_BROKER_URL": broker,
            "CACHE_URL": cache,
            # The clients' many calls stay under the throttles; the login throttle as shipped.
            "API_THROTTLE_USER": "100000/min",
            # A node killed between S3's CreateMultipartUpload and the row's commit leaves an
            # orphan; the test runs the sweep once the clients are done, with a short grace.
            "UPLOADS_ORPHAN_GRACE": "5",
            # A node killed between a completion's commit and its announcement leaves the
            # upload unverified; the test runs the resend sweep with a short delay too.
            "UPLOADS_VERIFY_OVERDUE_AFTER": "5",
        }
        # Node 0 prepares the database (migrate, users, bucket, CORS, the store's probe), as
        # the release step of docs/deployment.md does once; node 1 only starts on it.
        first = GunicornServer(
            self.root / "node0", self.cluster, extra_env=shared, probe=True, workers=2, threads=4
        ).start()
        self.nodes = [first, first.another_node(self.root / "node1")]
        self.front = RoundRobinFront([node.url for node in self.nodes]).start()
        env = first.env()
        self.worker = CeleryProcess(
            "worker",
            env,
            self.root / "worker.log",
            ["--pool=solo", "--loglevel=INFO", f"--hostname=topology-{secrets.token_hex(4)}@%h"],
            " ready.",
        ).start()
        self.beat = CeleryProcess(
            "beat",
            env,
            self.root / "beat.log",
            ["--loglevel=INFO", f"--schedule={self.root / 'celerybeat-schedule'}"],
            "beat: Starting...",
        ).start()

    def send_as_beat(self, task: str) -> str:
        """Send the periodic task `task` (of uploads.tasks) through the broker, as beat does on
        its schedule; what the worker says it returned."""
        script = f"from uploads import tasks; print('TASK=' + tasks.{task}.delay().id)"
        out = self.nodes[0].manage("shell", "--no-imports", "-c", script)
        task_id = next(line for line in out.splitlines() if line.startswith("TASK="))[5:]
        assert self.worker is not None
        return self.worker.result_of(task_id)

    def stop(self) -> None:
        for process in (self.beat, self.worker):
            if process is not None:
                process.stop()
        if self.front is not None:
            self.front.stop()
        for node in self.nodes:
            node.stop()
        self.cluster.stop(graceful=False)  # its data is the test's, thrown away

    def logs(self) -> str:
        """Every process's log tail, for an assertion's message."""
        parts = [self.cluster.logs()]
        parts += [f"--- node {n}\n{node.log()[-2000:]}" for n, node in enumerate(self.nodes)]
        for process in (self.worker, self.beat):
            if process is not None:
                parts.append(f"--- celery {process.kind}\n{process.log()[-2000:]}")
        return "\n".join(parts)
