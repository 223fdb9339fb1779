"""API latency under load: N concurrent clients doing full uploads of small files.

    .venv/bin/python tests/bench/bench_latency.py [--clients 32] [--uploads 5]
        [--parts 3] [--part-size 5M] [--seconds 300] [--workers 2 --threads 8]

Each client (a thread with its own token session) uploads --uploads files of --parts parts,
the way the Partwise clients do: create, sign all parts in one call, PUT each part to
SeaweedFS, report all parts in one call, complete. Per endpoint it prints p50/p95/p99 latency
and the number of errors, which must be zero. Bounded: at most --uploads per client and
--seconds overall. SeaweedFS and gunicorn are started and stopped here, on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import threading
import time
from collections import defaultdict

import requests
from harness import MiB, Stack, machine, percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--uploads", type=int, default=5, help="per client")
    parser.add_argument("--parts", type=int, default=3, help="per upload")
    parser.add_argument("--part-size", type=int, default=5 * MiB)
    parser.add_argument("--last-part", type=int, default=64 * 1024, help="bytes in the last part")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    size = (args.parts - 1) * args.part_size + args.last_part
    body = os.urandom(args.part_size)
    last = body[: args.last_part]
    checksums = {
        n: base64.b64encode(hashlib.sha256(last if n == args.parts else body).digest()).decode()
        for n in range(1, args.parts + 1)
    }
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()
    print(f"machine: {machine()}")

    with Stack(workers=args.workers, threads=args.threads) as stack:
        deadline = time.monotonic() + args.seconds
        api = f"{stack.django.url}/api/uploads/"

        def timed(name: str, call, *a, **kw) -> requests.Response | None:
            started = time.perf_counter()
            try:
                response = call(*a, timeout=120, **kw)
            except requests.RequestException as error:
                with lock:
                    errors[name].append(str(error)[:200])
                return None
            elapsed = time.perf_counter() - started
            with lock:
                latencies[name].append(elapsed)
                if response.status_code >= 300:
                    errors[name].append(f"{response.status_code} {response.text[:200]}")
            return response if response.status_code < 300 else None

        def client(index: int) -> None:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {stack.token}"
            s3 = requests.Session()
            for number in range(args.uploads):
                if time.monotonic() > deadline:
                    return
                created = timed(
                    "POST /api/uploads/",
                    session.post,
                    api,
                    json={
                        "filename": f"c{index}-{number}.bin",
                        "size": size,
                        "part_size": args.part_size,
                        "checksum_algorithm": "SHA256",
                    },
                )
                if created is None:
                    continue
                upload = created.json()["id"]
                parts = [{"number": n, "checksum": checksums[n]} for n in checksums]
                signed = timed(
                    "POST …/sign/", session.post, f"{api}{upload}/sign/", json={"parts": parts}
                )
                if signed is None:
                    continue
                reported = []
                for part in signed.json()["parts"]:
                    data = last if part["number"] == args.parts else body
                    put = timed(
                        "PUT part (S3)", s3.put, part["url"], data=data, headers=part["headers"]
                    )
                    if put is None:
                        break
                    reported.append(
                        {
                            "number": part["number"],
                            "etag": put.headers["ETag"],
                            "checksum": checksums[part["number"]],
                        }
                    )
                else:
                    if timed(
                        "POST …/parts/",
                        session.post,
                        f"{api}{upload}/parts/",
                        json={"parts": reported},
                    ):
                        timed("POST …/complete/", session.post, f"{api}{upload}/complete/")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        started = time.perf_counter()
        cpu_before = stack.django.cpu_seconds()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(args.seconds + 120)
        wall = time.perf_counter() - started
        cpu = stack.django.cpu_seconds() - cpu_before
        rss = stack.django.peak_rss()

    total_uploads = len(latencies["POST …/complete/"])
    print(
        f"\n{args.clients} clients x {args.uploads} uploads of {args.parts} parts "
        f"({size / MiB:.1f} MiB each); gunicorn {args.workers} workers x {args.threads} threads"
    )
    print(
        f"{'endpoint':22} {'calls':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'errors':>6}"
    )
    for name in (
        "POST /api/uploads/",
        "POST …/sign/",
        "PUT part (S3)",
        "POST …/parts/",
        "POST …/complete/",
    ):
        values = latencies.get(name, [])
        print(
            f"{name:22} {len(values):>6} {percentile(values, 50) * 1e3:>8.1f} "
            f"{percentile(values, 95) * 1e3:>8.1f} {percentile(values, 99) * 1e3:>8.1f} "
            f"{max(values, default=float('nan')) * 1e3:>8.1f} {len(errors.get(name, [])):>6}"
        )
    print(
        f"\nuploads completed: {total_uploads} in {wall:.1f} s; Django CPU {cpu:.1f} s; "
        f"worker peak RSS {rss / MiB:.0f} MiB"
    )
    all_errors = [f"{name}: {e}" for name, items in errors.items() for e in items]
    print(f"errors: {len(all_errors)}")
    for line in all_errors[:10]:
        print(f"  {line}")
    print(f"machine after: {machine()}")
    if all_errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
