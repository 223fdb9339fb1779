"""The production layout under load, with a Django node and a volume server killed mid-run.

docs/deployment.md's reference layout on loopback (tests/support/topology.py): a SeaweedFS
cluster (master, two volume servers with replication 001, filer, S3 gateway), two gunicorn
nodes on one PostgreSQL database, Redis as broker and cache, a Celery worker and beat, and a
round-robin front, so one client's consecutive calls (create, sign, report, complete) land on
alternate nodes. Twenty clients (partwise_client, the CLI's engine, SHA-256 per part) upload
files of mixed sizes. When ten uploads have completed, node 1 is SIGKILLed, and restarted once
three more have completed on node 0 alone; when twenty-five have completed, a volume server is
SIGKILLed and restarted a few seconds later (the master notices at once; writes wait for it).

Every upload must end completed with its object's SHA-256 equal to the file's (or, if a client
gave up, with nothing left in S3 and the client told so); no API answer is a 5xx other than a
502/503 carrying a JSON `code`; the worker verifies every completed upload. The figures (uploads,
bytes, answers by kind, p50/p99 per endpoint, what the kills cost) are printed like the
benchmarks' and written to topology-figures.json; docs/scaling.md quotes them. Only in the
PostgreSQL pass, with Redis (both set by CI).
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from partwise_client import PartwiseApi, PartwiseError, Uploader
from tests import pg
from tests.s3server import client_of
from tests.support.front import Served
from tests.support.topology import Topology
from uploads.parts import MiB

pytestmark = [pg.requires_postgresql, pg.requires_redis, pytest.mark.timeout(900)]

CLIENTS = 20
UPLOADS_PER_CLIENT = 3
PART_SIZE = 5 * MiB
KILL_NODE_AFTER = 10  # completed uploads before node 1 is killed
NODE_ALONE_FOR = 3  # uploads completed on node 0 alone before node 1 comes back
KILL_VOLUME_AFTER = 25  # completed uploads before volume server 2 is killed
VOLUME_DOWN_SECONDS = 3.0  # how long it stays down: writes wait for its replica meanwhile
CHAOS_TIMEOUT = 300.0  # no step of the scenario waits longer for its event
VERIFY_TIMEOUT = 180.0

_SWEEP = """
from uploads.tasks import reconcile_orphans
print("TASK=" + reconcile_orphans.delay().id)
"""
_VERIFICATIONS = """
import json
from uploads.models import Upload
print("V=" + json.dumps({str(u.pk): [u.status, u.verification] for u in Upload.objects.all()}))
"""


def file_size(client: int, number: int) -> int:
    """Mixed sizes: two in five under 64 KiB, two in five 1-3 MiB, one in five 6-11 MiB."""
    rng = random.Random(client * 100 + number)
    kind = (client + number) % 5
    if kind in (0, 1):
        return rng.randint(0, 64 * 1024)
    if kind in (2, 3):
        return rng.randint(1 * MiB, 3 * MiB)
    return rng.randint(6 * MiB, 11 * MiB)


@dataclass
class Run:
    """What the clients did, and when the scenario's events happened."""

    completed: list[tuple[dict[str, Any], str, int]] = field(default_factory=list)
    gave_up: list[tuple[str, str]] = field(default_factory=list)  # (file, error kind)
    events: dict[str, float] = field(default_factory=dict)
    chaos_error: str = ""
    started: float = field(default_factory=time.perf_counter)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def mark(self, event: str) -> None:
        self.events[event] = round(time.perf_counter() - self.started, 2)

    def wait_for_completed(self, count: int) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.completed) >= count, CHAOS_TIMEOUT):
                raise TimeoutError(f"{count} uploads did not complete in {CHAOS_TIMEOUT} s")


def run_client(front: str, key: str, client: int, folder: Path, run: Run) -> None:
    uploader = Uploader(PartwiseApi(front, key), concurrency=2, part_size=PART_SIZE)
    for number in range(UPLOADS_PER_CLIENT):
        data = random.Random(f"{client}/{number}").randbytes(file_size(client, number))
        path = folder / f"client{client}-{number}.bin"
        path.write_bytes(data)
        try:
            upload = uploader.upload(path, resume="never").upload
        except PartwiseError as error:  # told so: the client gave up on this file
            with run.changed:
                run.gave_up.append((path.name, type(error).__name__))
                run.changed.notify_all()
            continue
        with run.changed:
            run.completed.append((upload, hashlib.sha256(data).hexdigest(), len(data)))
            run.changed.notify_all()


def chaos(topology: Topology, run: Run) -> None:
    """Kill and restart node 1, then volume server 2, each when its event comes."""
    try:
        run.wait_for_completed(KILL_NODE_AFTER)
        topology.nodes[1].kill()
        run.mark("node 1 killed")
        run.wait_for_completed(len(run.completed) + NODE_ALONE_FOR)
        topology.nodes[1].launch()
        run.mark("node 1 back")
        run.wait_for_completed(KILL_VOLUME_AFTER)
        topology.cluster.kill_volume(2)
        run.mark("volume 2 killed")
        deadline = time.monotonic() + CHAOS_TIMEOUT
        while topology.cluster.volume_servers() != 1:  # the master has noticed
            assert time.monotonic() < deadline, "the master never noticed volume 2's death"
            time.sleep(0.1)
        run.mark("master saw 1 volume server")
        time.sleep(VOLUME_DOWN_SECONDS)
        topology.cluster.restart_volume(2)
        run.mark("volume 2 back")
    except Exception as error:  # the test asserts it stayed empty
        run.chaos_error = repr(error)


def endpoint_of(served: Served) -> str:
    path = served.path.split("?", 1)[0].rstrip("/")
    tail = path.rsplit("/", 1)[-1]
    if served.method == "POST" and path == "/api/uploads":
        return "create"
    if served.method == "POST" and tail in ("sign", "complete", "abort"):
        return tail
    if served.method == "POST" and tail == "parts":
        return "report"
    if served.method == "GET" and path == "/api/uploads":
        return "list"
    return f"{served.method} other"


def percentiles(seconds: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(sorted(seconds), n=100, method="inclusive")
    return {
        "n": len(seconds),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


def healthy(node_url: str) -> bool:
    """What a load balancer's health check sees (GET /health/, docs/deployment.md)."""
    try:
        return requests.get(f"{node_url}/health/", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def verifications(topology: Topology) -> dict[str, list[str]]:
    out = topology.nodes[0].manage("shell", "--no-imports", "-c", _VERIFICATIONS)
    values: dict[str, list[str]] = json.loads(
        next(line for line in out.splitlines() if line.startswith("V="))[2:]
    )
    return values


def test_uploads_survive_a_dead_django_node_and_a_dead_volume_server_with_every_byte_intact(
    topology: Topology, tmp_path
):
    assert topology.front is not None
    assert topology.worker is not None
    node = topology.nodes[0]
    keys = node.tokens_for_new_users(CLIENTS, prefix="topology")
    files = tmp_path / "files"
    files.mkdir()
    run = Run()
    chaos_thread = threading.Thread(target=chaos, args=(topology, run), daemon=True)
    chaos_thread.start()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [
            pool.submit(run_client, topology.front.url, key, n, files, run)
            for n, key in enumerate(keys)
        ]:
            future.result()
    run.mark("clients done")
    chaos_thread.join(CHAOS_TIMEOUT)
    wall = time.perf_counter() - run.started

    # Every completed object, read back from the cluster, is the file that was sent.
    s3 = client_of(topology.cluster)  # type: ignore[arg-type]
    corrupted = []
    for upload, sha256, size in run.completed:
        body = s3.get_object(Bucket=node.bucket, Key=upload["key"])["Body"].read()
        if hashlib.sha256(body).hexdigest() != sha256 or len(body) != size:
            corrupted.append(upload["id"])

    # The worker verifies every completed upload (an event per upload: its row says so).
    completed_ids = {upload["id"] for upload, _, _ in run.completed}
    deadline = time.monotonic() + VERIFY_TIMEOUT
    while True:
        rows = verifications(topology)
        pending = [i for i in completed_ids if rows.get(i, ["", ""])[1] == ""]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    run.mark("every upload verified")

    # A node killed after S3 created a multipart upload but before its row committed
    # leaves an orphan: no row knows it. The sweep beat sends hourly aborts it (sent here
    # through the broker as beat does, until S3 holds no multipart upload).
    def in_s3() -> list[str]:
        listed = s3.list_multipart_uploads(Bucket=node.bucket).get("Uploads", [])
        return [item["Key"] for item in listed]

    orphans = in_s3()
    known = [key for key in orphans if key.split("/")[1] in rows]
    deadline = time.monotonic() + VERIFY_TIMEOUT
    while in_s3() and time.monotonic() < deadline:
        out = node.manage("shell", "--no-imports", "-c", _SWEEP)
        task = next(line for line in out.splitlines() if line.startswith("TASK="))[5:]
        topology.worker.wait_for(f"[{task}] succeeded")
    left_in_s3 = in_s3()
    run.mark("orphans swept")

    served = list(topology.front.served)
    figures = {
        "clients": CLIENTS,
        "uploads": CLIENTS * UPLOADS_PER_CLIENT,
        "completed": len(run.completed),
        "gave_up": Counter(kind for _, kind in run.gave_up),
        "bytes": sum(size for _, _, size in run.completed),
        "wall_seconds": round(wall, 1),
        "events_at_seconds": run.events,
        "answers": Counter(f"{s.status} {s.code}".strip() for s in served),
        "by_node": Counter(str(s.node) for s in served),
        "refused_connections_passed_on": len(topology.front.skipped),
        "orphaned_multipart_uploads_swept": len(orphans),
        "endpoints": {
            name: percentiles(values) for name, values in sorted(_by_endpoint(served).items())
        },
    }
    (tmp_path / "topology-figures.json").write_text(json.dumps(figures, indent=2))
    print_figures(figures)
    health = [healthy(node.url) for node in topology.nodes]
    logs = topology.logs()

    assert run.chaos_error == "", run.chaos_error
    assert health == [True, True], "a node did not come back healthy"
    assert set(run.events) >= {"node 1 killed", "node 1 back", "volume 2 killed", "volume 2 back"}
    assert topology.front.skipped, "node 1's death was never met: the scenario proved nothing"
    assert corrupted == []
    assert all(upload["checksum_algorithm"] == "SHA256" for upload, _, _ in run.completed)
    assert len(run.completed) + len(run.gave_up) == CLIENTS * UPLOADS_PER_CLIENT
    assert known == [], f"multipart uploads a row still holds: {known}"
    assert left_in_s3 == [], "the sweep left orphaned parts in S3"
    unexplained = [
        s for s in served if s.status >= 500 and (s.status not in (502, 503) or not s.code)
    ]
    assert unexplained == [], unexplained
    assert pending == [], f"never verified: {pending}\n{logs}"
    assert {tuple(rows[i]) for i in completed_ids} == {("completed", "ok")}, logs


def _by_endpoint(served: list[Served]) -> dict[str, list[float]]:
    by_endpoint: dict[str, list[float]] = defaultdict(list)
    for request in served:
        by_endpoint[endpoint_of(request)].append(request.seconds)
    return by_endpoint


def print_figures(figures: dict[str, Any]) -> None:
    print(
        f"\ntopology: {figures['completed']} of {figures['uploads']} uploads completed "
        f"({figures['bytes'] / MiB:.0f} MiB) by {figures['clients']} clients in "
        f"{figures['wall_seconds']} s; gave up: {dict(figures['gave_up']) or 'none'}"
    )
    print(f"events (s): {figures['events_at_seconds']}")
    print(
        f"answers: {dict(figures['answers'])}; by node: {dict(figures['by_node'])}; "
        f"refused connections passed on: {figures['refused_connections_passed_on']}; "
        f"orphans swept: {figures['orphaned_multipart_uploads_swept']}"
    )
    print(f"{'endpoint':10} {'n':>5} {'p50':>9} {'p99':>9} {'max':>9}")
    for name, row in figures["endpoints"].items():
        print(
            f"{name:10} {row['n']:5} {row['p50_ms']:7.1f}ms {row['p99_ms']:7.1f}ms "
            f"{row['max_ms']:7.1f}ms"
        )
