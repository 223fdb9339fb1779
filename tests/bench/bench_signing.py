"""Signing throughput: part URLs per second per core through the HTTP API, by batch size.

    .venv/bin/python tests/bench/bench_signing.py [--seconds 5] [--batches 1,10,100,1000]

Starts SeaweedFS and Partwise under gunicorn (one worker: one core's worth of Django), creates
a 10,000-part upload with SHA-256 checksums (as the browser client does), and for each batch
size posts sign calls for --seconds. "URLs/s/core" is parts signed per second of the server's
own CPU time (user + system, from /proc), which holds on a busy machine where wall time does
not; wall-clock rates are printed too. First, in this process, the cost of one URL from
boto3's generate_presigned_url against Partwise's presign_upload_parts, same run.
"""

from __future__ import annotations

import argparse
import time

import requests
from harness import MiB, Stack, machine

CHECKSUM = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
PARTS = 10_000
MAX_REQUESTS = 20_000  # per batch size, whatever --seconds says


def in_process(stack: Stack, seconds: float) -> None:
    """us per URL: boto3's generate_presigned_url vs presign_upload_parts, batch of 100."""
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from uploads.storage import MultipartStorage, PartToSign

    client = stack.boto3_client()
    storage = MultipartStorage(client, "bench")
    key, upload_id = "uploads/bench/file.bin", "upload-id"
    parts = [PartToSign(n, size=8 * MiB, checksum=CHECKSUM) for n in range(1, 101)]

    def boto3_batch() -> None:
        for part in parts:
            storage._boto3_presign(key, upload_id, part, 900)

    def fast_batch() -> None:
        storage.presign_upload_parts(key, upload_id, parts, expires_in=900)

    print("in-process signing, batch of 100 URLs with length + checksum:")
    results = {}
    for name, run in (
        ("boto3 generate_presigned_url", boto3_batch),
        ("presign_upload_parts", fast_batch),
    ):
        run()  # warm up
        count, start = 0, time.process_time()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and count < 200_000:
            run()
            count += len(parts)
        cpu = time.process_time() - start
        results[name] = cpu / count * 1e6
        print(f"  {name:32} {results[name]:7.1f} us CPU/URL  {count / cpu:9.0f} URLs/s/core")
    ratio = results["boto3 generate_presigned_url"] / results["presign_upload_parts"]
    print(f"  speed-up: {ratio:.1f}x")


def through_http(stack: Stack, batches: list[int], seconds: float) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {stack.token}"
    api = f"{stack.django.url}/api/uploads/"
    created = session.post(
        api,
        json={
            "filename": "big.bin",
            "size": PARTS * 5 * MiB,
            "part_size": 5 * MiB,
            "checksum_algorithm": "SHA256",
        },
        timeout=30,
    )
    created.raise_for_status()
    sign_url = f"{api}{created.json()['id']}/sign/"
    print(f"\nHTTP API, gunicorn 1 worker (gthread), {PARTS}-part upload, SHA-256 checksums:")
    print(
        f"  {'batch':>5} {'calls':>6} {'URLs':>7} {'wall URLs/s':>12} {'URLs/s/core':>12} "
        f"{'CPU us/URL':>11} {'p50 ms/call':>12}"
    )
    for batch in batches:
        next_number = 1
        calls, urls, latencies = 0, 0, []
        # Warm-up call, not measured (first signer template of this upload, imports).
        session.post(sign_url, json={"parts": [{"number": 1, "checksum": CHECKSUM}]}, timeout=60)
        cpu_before, wall_before = stack.django.cpu_seconds(), time.monotonic()
        deadline = wall_before + seconds
        while time.monotonic() < deadline and calls < MAX_REQUESTS:
            numbers = [(next_number + i - 1) % PARTS + 1 for i in range(batch)]
            next_number = numbers[-1] % PARTS + 1
            body = {"parts": [{"number": n, "checksum": CHECKSUM} for n in numbers]}
            started = time.perf_counter()
            response = session.post(sign_url, json=body, timeout=60)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"sign failed: {response.status_code} {response.text[:300]}")
            calls += 1
            urls += len(response.json()["parts"])
        wall = time.monotonic() - wall_before
        cpu = stack.django.cpu_seconds() - cpu_before
        latencies.sort()
        print(
            f"  {batch:>5} {calls:>6} {urls:>7} {urls / wall:>12.0f} {urls / cpu:>12.0f} "
            f"{cpu / urls * 1e6:>11.1f} {latencies[len(latencies) // 2] * 1e3:>12.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per batch size (5)")
    parser.add_argument("--batches", default="1,10,100,1000")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    print(f"machine: {machine()}")
    with Stack(workers=1, threads=2) as stack:
        in_process(stack, min(args.seconds, 3))
        through_http(stack, batches, args.seconds)
        print(f"\nDjango worker peak RSS: {stack.django.peak_rss() / MiB:.0f} MiB")
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
