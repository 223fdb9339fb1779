"""`make run`'s stack under load: N clients doing small uploads for a while, on its own broker.

    .venv/bin/python tests/bench/bench_dev_stack.py [--clients 20] [--seconds 120] [--size 1M]
        [--broker URL]

It starts `manage.py rundev` exactly as `make run` does (runserver, a solo Celery worker and
beat, the embedded SeaweedFS, the embedded SQLite broker unless --broker names another), with
its state in a temp dir and S3 on a free port. Each client (a thread with the dev token) loops:
create, sign, PUT the bytes to SeaweedFS, report, complete. Every completion queues a
verification task, so the broker carries one message per upload while the web process writes
and the worker reads. Afterwards it waits for the worker to verify every completed upload and
prints: uploads completed and failed (by reason), uploads per second, p50/p95/max latency of a
whole upload, verification tasks run, and how often rundev had to restart a child. A healthy
stack shows no failure, every upload verified and no restart; it exits 1 otherwise. Not a test:
it takes minutes (issue 11 item 4 ran it with 20 clients for 2 minutes).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from harness import MiB, machine, percentile

from project.dev.seaweedfs import free_port
from tests.support.devstack import DevStack, dev_environment
from tests.support.presigned import put_signed

VERIFIED = re.compile(r"Task uploads\.tasks\.verify_upload\[[^\]]+\] succeeded")


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    if text[-1:].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def one_upload(session: requests.Session, api: str, body: bytes, name: str) -> None:
    """The REST calls of a one-part upload; raises on any answer that is not a success."""
    created = session.post(f"{api}/uploads/", json={"filename": name, "size": len(body)})
    created.raise_for_status()
    upload_id = created.json()["id"]
    signed = session.post(f"{api}/uploads/{upload_id}/sign/", json={"parts": [{"number": 1}]})
    signed.raise_for_status()
    etag = put_signed(signed.json()["parts"][0], body)
    reported = session.post(
        f"{api}/uploads/{upload_id}/parts/", json={"parts": [{"number": 1, "etag": etag}]}
    )
    reported.raise_for_status()
    done = session.post(f"{api}/uploads/{upload_id}/complete/")
    done.raise_for_status()
    if done.json()["status"] != "completed":
        raise RuntimeError(f"completion answered {done.json()['status']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--size", type=parse_size, default=MiB)
    parser.add_argument("--broker", default="", help="CELERY_BROKER_URL (default: make run's)")
    parser.add_argument("--drain-timeout", type=float, default=300)
    args = parser.parse_args()

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="pw-devstack-") as tmp:
        extra = {"CELERY_BROKER_URL": args.broker} if args.broker else {}
        stack = DevStack(dev_environment(Path(tmp) / "var", **extra), free_port())
        try:
            stack.wait_for("Press Ctrl+C to stop everything.", timeout=120)
            return run_load(stack, args)
        finally:
            code = stack.interrupt(timeout=120) if stack.process.poll() is None else None
            print(f"rundev exit status after Ctrl+C: {code}")
            stack.kill()


def run_load(stack: DevStack, args: argparse.Namespace) -> int:
    token = stack.value("API token")
    api = f"{stack.web}/api"
    body = os.urandom(args.size)
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def client(index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        count = 0
        while time.monotonic() < deadline:
            count += 1
            start = time.perf_counter()
            try:
                one_upload(session, api, body, f"load-{index}-{count}.bin")
            except (requests.RequestException, RuntimeError, KeyError, ValueError) as error:
                with lock:
                    failures[type(error).__name__ + ": " + str(error)[:100]] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    print(
        f"load: {args.clients} clients, {args.seconds:.0f} s, {args.size / MiB:g} MiB per upload,"
        f" broker {args.broker or 'make run default (SQLite)'}"
    )
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started

    completed = len(latencies)
    print(f"uploads completed: {completed}   failed: {sum(failures.values())}")
    for reason, count in failures.most_common(10):
        print(f"  {count:>6} x {reason}")
    print(f"uploads per second: {completed / elapsed:.1f} (over {elapsed:.1f} s)")
    print(
        "upload latency (create+sign+PUT+report+complete): "
        f"p50 {percentile(latencies, 50) * 1000:.0f} ms  p95 {percentile(latencies, 95) * 1000:.0f}"
        f" ms  max {max(latencies, default=float('nan')) * 1000:.0f} ms"
    )

    # Every completion queued one verification: wait for the worker to have run them all.
    drain_deadline = time.monotonic() + args.drain_timeout
    verified = 0
    while time.monotonic() < drain_deadline:
        stack.drain()
        verified = sum(1 for line in stack.lines if VERIFIED.search(line))
        if verified >= completed or stack.process.poll() is not None:
            break
        stack.wait_for_any(timeout=1.0)
    restarts = [line for line in stack.lines if "restarting it" in line]
    print(f"verification tasks run by the worker: {verified} of {completed}")
    print(f"children restarted by rundev: {len(restarts)}")
    for line in restarts:
        print(f"  {line}")
    healthy = not failures and verified >= completed and not restarts
    print("result: " + ("healthy" if healthy else "NOT healthy"))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
