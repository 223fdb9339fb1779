"""The production layout under load, with a Django node and a volume server killed mid-run.

docs/deployment.md's reference layout on loopback (tests/support/topology.py): a SeaweedFS
cluster (master, two volume servers with replication 001, filer, S3 gateway), two gunicorn
nodes on one PostgreSQL database, Redis as broker and cache, a Celery worker and beat, and a
round-robin front, so one client's consecutive calls (create, sign, report, complete) land on
alternate nodes. Twenty clients (partwise_client, the CLI's engine, SHA-256 per part) upload
files of mixed sizes, in two rounds. The first is calm: the figures' baseline. In the second,
when ten uploads have completed, node 1 is SIGKILLed, and restarted once three more have
completed on node 0 alone; when twenty-five have completed, a volume server is SIGKILLed and
restarted a few seconds later (the master notices at once; writes wait for it).

Every upload must end completed with its object's SHA-256 equal to the file's (or, if a client
gave up, with nothing left in S3 and the client told so); no API answer is a 5xx other than a
502/503 carrying a JSON `code`, and none at all in the calm round; the worker verifies every
completed upload. The figures of both rounds (uploads, bytes, answers by kind, p50/p99 per
endpoint, the wall time with failures over the calm one) are printed like the benchmarks' and
written to topology-figures.json; docs/scaling.md quotes them. Only in the
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
    """One round: what the clients did, what the front served, when the chaos's events came."""

    label: str
    completed: list[tuple[dict[str, Any], str, int]] = field(default_factory=list)
    gave_up: list[tuple[str, str]] = field(default_factory=list)  # (file, error kind)
    s3_puts: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds)
    events: dict[str, float] = field(default_factory=dict)
    chaos_error: str = ""
    started: float = field(default_factory=time.perf_counter)
    changed: threading.Condition = field(default_factory=threading.Condition)
    served: list[Served] = field(default_factory=list)
    wall: float = 0.0

    def figures(self) -> dict[str, Any]:
        """Uploads, bytes, answers by kind and latency per endpoint, as the benches print."""
        endpoints = {
            name: percentiles(seconds)
            for name, seconds in sorted(_by_endpoint(self.served).items())
        }
        endpoints["put (S3)"] = percentiles([seconds for _, seconds in self.s3_puts])
        return {
            "completed": len(self.completed),
            "gave_up": Counter(kind for _, kind in self.gave_up),
            "bytes": sum(size for _, _, size in self.completed),
            "wall_seconds": round(self.wall, 1),
            "events_at_seconds": self.events,
            "answers": Counter(f"{s.status} {s.code}".strip() for s in self.served),
            "s3_put_answers": Counter(str(status) for status, _ in self.s3_puts),
            "by_node": Counter(str(s.node) for s in self.served),
            "endpoints": endpoints,
        }

    def mark(self, event: str) -> None:
        self.events[event] = round(time.perf_counter() - self.started, 2)

    def wait_for_completed(self, count: int) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.completed) >= count, CHAOS_TIMEOUT):
                raise TimeoutError(f"{count} uploads did not complete in {CHAOS_TIMEOUT} s")


def run_client(front: str, key: str, client: int, folder: Path, run: Run) -> None:
    uploader = Uploader(PartwiseApi(front, key), concurrency=2, part_size=PART_SIZE)

    def timed(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.request.method == "PUT":  # a part, straight to the S3 gateway
            with run.changed:
                run.s3_puts.append((response.status_code, response.elapsed.total_seconds()))

    uploader.api.session.hooks["response"].append(timed)
    for number in range(UPLOADS_PER_CLIENT):
        seed = f"{run.label}/{client}/{number}"  # each round's files differ
        data = random.Random(seed).randbytes(file_size(client, number))
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


def upload_round(topology: Topology, keys: list[str], folder: Path, *, failing: bool) -> Run:
    """Every client uploads its files through the front; with `failing`, the chaos runs too."""
    assert topology.front is not None
    folder.mkdir()
    run = Run(label="with failures" if failing else "calm")
    first = len(topology.front.served)
    chaos_thread = threading.Thread(target=chaos, args=(topology, run), daemon=True)
    if failing:
        chaos_thread.start()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [
            pool.submit(run_client, topology.front.url, key, n, folder, run)
            for n, key in enumerate(keys)
        ]:
            future.result()
    run.mark("clients done")
    if failing:
        chaos_thread.join(CHAOS_TIMEOUT)
    run.wall = time.perf_counter() - run.started
    run.served = topology.front.served[first:]
    return run


def test_uploads_survive_a_dead_django_node_and_a_dead_volume_server_with_every_byte_intact(
    topology: Topology, tmp_path
):
    assert topology.front is not None
    assert topology.worker is not None
    node = topology.nodes[0]
    keys = node.tokens_for_new_users(CLIENTS, prefix="topology")
    # The same clients and sizes twice: first with nothing failing (the baseline of the
    # figures), then with a Django node and a volume server killed and restarted mid-run.
    calm = upload_round(topology, keys, tmp_path / "calm", failing=False)
    failing = upload_round(topology, keys, tmp_path / "failing", failing=True)
    rounds = [calm, failing]
    everything = [upload for run in rounds for upload in run.completed]

    # Every completed object, read back from the cluster, is the file that was sent.
    s3 = client_of(topology.cluster)  # type: ignore[arg-type]
    corrupted = []
    for upload, sha256, size in everything:
        body = s3.get_object(Bucket=node.bucket, Key=upload["key"])["Body"].read()
        if hashlib.sha256(body).hexdigest() != sha256 or len(body) != size:
            corrupted.append(upload["id"])

    # The worker verifies every completed upload: most at once (each completion announces
    # itself), and those whose announcement died with node 1 (killed between the commit and
    # the publish) through the resend sweep beat sends hourly (sent here until none is left).
    completed_ids = {upload["id"] for upload, _, _ in everything}
    resent = 0
    deadline = time.monotonic() + VERIFY_TIMEOUT
    while True:
        rows = verifications(topology)
        pending = [i for i in completed_ids if rows.get(i, ["", ""])[1] == ""]
        if not pending or time.monotonic() > deadline:
            break
        resent += int(topology.send_as_beat("resend_lost_completions"))
        time.sleep(1)

    # A node killed after S3 created a multipart upload but before its row committed
    # leaves an orphan: no row knows it. The orphan sweep (hourly from beat) aborts it.
    def in_s3() -> list[str]:
        listed = s3.list_multipart_uploads(Bucket=node.bucket).get("Uploads", [])
        return [item["Key"] for item in listed]

    orphans = in_s3()
    known = [key for key in orphans if key.split("/")[1] in rows]
    deadline = time.monotonic() + VERIFY_TIMEOUT
    while in_s3() and time.monotonic() < deadline:
        topology.send_as_beat("reconcile_orphans")
        time.sleep(1)
    left_in_s3 = in_s3()

    figures = {
        "clients": CLIENTS,
        "uploads_per_round": CLIENTS * UPLOADS_PER_CLIENT,
        "rounds": {run.label: run.figures() for run in rounds},
        "refused_connections_passed_on": len(topology.front.skipped),
        "orphaned_multipart_uploads_swept": len(orphans),
        "lost_announcements_resent": resent,
    }
    (tmp_path / "topology-figures.json").write_text(json.dumps(figures, indent=2))
    print_figures(figures)
    health = [healthy(node.url) for node in topology.nodes]
    logs = topology.logs()

    assert failing.chaos_error == "", failing.chaos_error
    assert health == [True, True], "a node did not come back healthy"
    assert set(failing.events) >= {
        "node 1 killed",
        "node 1 back",
        "volume 2 killed",
        "volume 2 back",
    }
    assert topology.front.skipped, "node 1's death was never met: the scenario proved nothing"
    assert corrupted == []
    assert all(upload["checksum_algorithm"] == "SHA256" for upload, _, _ in everything)
    for run in rounds:
        assert len(run.completed) + len(run.gave_up) == CLIENTS * UPLOADS_PER_CLIENT, run.label
    assert calm.gave_up == [], "nothing failed, yet a client gave up"
    assert known == [], f"multipart uploads a row still holds: {known}"
    assert left_in_s3 == [], "the sweep left orphaned parts in S3"
    unexplained = [
        served
        for run in rounds
        for served in run.served
        if served.status >= 500 and (served.status not in (502, 503) or not served.code)
    ]
    assert unexplained == [], unexplained
    assert [s for s in calm.served if s.status >= 500] == [], "5xx with nothing failing"
    assert pending == [], f"never verified: {pending}\n{logs}"
    assert {tuple(rows[i]) for i in completed_ids} == {("completed", "ok")}, logs


def _by_endpoint(served: list[Served]) -> dict[str, list[float]]:
    by_endpoint: dict[str, list[float]] = defaultdict(list)
    for request in served:
        by_endpoint[endpoint_of(request)].append(request.seconds)
    return by_endpoint


def print_figures(figures: dict[str, Any]) -> None:
    calm, failing = figures["rounds"]["calm"], figures["rounds"]["with failures"]
    print(
        f"\ntopology: {figures['clients']} clients, {figures['uploads_per_round']} uploads a round"
    )
    for label, row in figures["rounds"].items():
        print(
            f"{label:14} {row['completed']} completed ({row['bytes'] / MiB:.0f} MiB) in "
            f"{row['wall_seconds']} s; gave up: {dict(row['gave_up']) or 'none'}; "
            f"answers {dict(row['answers'])}; S3 PUTs {dict(row['s3_put_answers'])}"
        )
    print(f"events (s): {failing['events_at_seconds']}")
    print(
        f"refused connections passed on: {figures['refused_connections_passed_on']}; "
        f"orphans swept: {figures['orphaned_multipart_uploads_swept']}; "
        f"lost announcements resent: {figures['lost_announcements_resent']}; "
        f"wall with failures / calm: {failing['wall_seconds'] / calm['wall_seconds']:.2f}"
    )
    print(
        f"{'endpoint':10} {'n':>4} {'p50 calm':>9} {'p99 calm':>9} {'p50 fail':>9} {'p99 fail':>9}"
    )
    for name, row in failing["endpoints"].items():
        base = calm["endpoints"].get(name, {"n": 0, "p50_ms": 0.0, "p99_ms": 0.0})
        print(
            f"{name:10} {row['n']:4} {base['p50_ms']:7.0f}ms {base['p99_ms']:7.0f}ms "
            f"{row['p50_ms']:7.0f}ms {row['p99_ms']:7.0f}ms"
        )
