"""Load: 50 concurrent clients x 20 uploads each, through gunicorn, on PostgreSQL and SeaweedFS.

The server runs as in production: gunicorn (gthread workers), DEBUG off, a PostgreSQL database
of its own. Each client is a thread with its own user and token and does what an app does:
create, sign every part in one call, PUT the parts to S3, report them, complete. Files are
small (most one part of up to 64 KiB, some empty, one in two hundred of two parts over 5 MiB)
so the run measures the server, not the disk. Afterwards every object is read back from S3 and
its SHA-256 compared with the file's; each user must see exactly their own 20 uploads.

It prints the latency per endpoint (p50/p95/p99/max, as the clients saw it and as gunicorn's
access log timed it) and writes them to load-figures.json in the test's temp dir; the figures
in docs/reliability.md come from it. Only in the PostgreSQL pass (marker `load`).
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
from requests.adapters import HTTPAdapter

from tests.django_server import GunicornServer
from tests.pg import requires_postgresql
from tests.s3server import client_of, seaweedfs  # noqa: F401  (fixture)
from uploads.parts import MiB

pytestmark = [pytest.mark.load, requires_postgresql, pytest.mark.timeout(900)]

CLIENTS = 50
UPLOADS_PER_CLIENT = 20
ENDPOINTS = ("create", "sign", "put (S3)", "report", "complete")


@dataclass
class Tally:
    """What the clients saw: latencies per endpoint, every status, every finished upload."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    uploads: list[tuple[dict[str, Any], str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, endpoint: str, call: Any) -> requests.Response | None:
        started = time.perf_counter()
        try:
            response = call()
        except requests.RequestException as error:
            with self.lock:
                self.failures.append(f"{endpoint}: {error!r}")
            return None
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies[endpoint].append(elapsed)
            self.statuses[(endpoint, response.status_code)] += 1
        return response


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def file_for(client: int, number: int) -> bytes:
    rng = random.Random(client * 1000 + number)
    if number == 0 and client % 10 == 0:
        size = 5 * MiB + rng.randint(1, 64 * 1024)  # two parts
    elif number % 7 == 3:
        size = 0  # one empty part
    else:
        size = rng.randint(1, 64 * 1024)
    return rng.randbytes(size)


def run_client(server: str, key: str, client: int, tally: Tally) -> None:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=4))
    session.headers["Authorization"] = f"Token {key}"
    api = f"{server}/api/uploads/"

    def call(endpoint: str, method: str, url: str, **kwargs: Any) -> requests.Response | None:
        response = tally.timed(
            endpoint, lambda: session.request(method, url, timeout=120, **kwargs)
        )
        if response is None:
            return None
        if response.status_code >= 300:
            with tally.lock:
                tally.failures.append(f"{endpoint} {response.status_code} {response.text[:200]}")
            return None
        return response

    for number in range(UPLOADS_PER_CLIENT):
        data = file_for(client, number)
        body = {"filename": f"c{client}-{number}.bin", "size": len(data), "part_size": 5 * MiB}
        created = call("create", "POST", api, json=body)
        if created is None:
            continue
        upload = created.json()
        parts = [{"number": n} for n in range(1, upload["part_count"] + 1)]
        signed = call("sign", "POST", f"{api}{upload['id']}/sign/", json={"parts": parts})
        if signed is None:
            continue
        reported = []
        for part in signed.json()["parts"]:
            chunk = data[(part["number"] - 1) * 5 * MiB : part["number"] * 5 * MiB]
            put = tally.timed(
                "put (S3)",
                lambda part=part, chunk=chunk: requests.put(
                    part["url"], data=chunk, headers=part["headers"], timeout=120
                ),
            )
            if put is None:
                break
            if put.status_code != 200:
                with tally.lock:
                    tally.failures.append(f"put {put.status_code} {put.text[:200]}")
                break
            reported.append({"number": part["number"], "etag": put.headers["ETag"]})
        else:
            if call("report", "POST", f"{api}{upload['id']}/parts/", json={"parts": reported}):
                done = call("complete", "POST", f"{api}{upload['id']}/complete/")
                if done is not None:
                    with tally.lock:
                        tally.uploads.append(
                            (done.json(), hashlib.sha256(data).hexdigest(), client)
                        )


def server_side_latencies(access_log: Path) -> dict[str, dict[str, float]]:
    """gunicorn's own timing of each API call, from its access log."""
    by_endpoint: dict[str, list[float]] = defaultdict(list)
    for line in access_log.read_text().splitlines():
        method, path, _status, seconds = line.split()
        if not path.startswith("/api/uploads/"):
            continue
        tail = path.rstrip("/").rsplit("/", 1)[-1]
        endpoint = tail if tail in {"sign", "complete"} else "report" if tail == "parts" else ""
        if method == "POST" and path == "/api/uploads/":
            endpoint = "create"
        if endpoint:
            by_endpoint[endpoint].append(float(seconds))
    return {name: percentiles(values) for name, values in sorted(by_endpoint.items())}


def test_fifty_clients_upload_a_thousand_files_with_no_5xx_and_every_byte_intact(
    seaweedfs,  # noqa: F811
    tmp_path,
):
    server = GunicornServer(tmp_path / "server", seaweedfs, workers=3, threads=8).start()
    try:
        keys = server.tokens_for_new_users(CLIENTS, prefix="load")
        tally = Tally()

        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            for future in [
                pool.submit(run_client, server.url, key, n, tally) for n, key in enumerate(keys)
            ]:
                future.result()
        wall = time.perf_counter() - started

        # Every object, read back from S3, is the file that was sent.
        s3 = client_of(server.s3)
        corrupted = []
        for upload, sha256, _client in tally.uploads:
            body = s3.get_object(Bucket=server.bucket, Key=upload["key"])["Body"].read()
            if hashlib.sha256(body).hexdigest() != sha256 or upload["status"] != "completed":
                corrupted.append(upload["id"])
        # Each user sees exactly their own twenty uploads, all completed.
        seen = []
        for key in keys:
            page = requests.get(
                f"{server.url}/api/uploads/?page_size=100",
                headers={"Authorization": f"Token {key}"},
                timeout=60,
            ).json()["results"]
            seen.append(sorted(u["status"] for u in page))
        five_xx = {k: v for k, v in tally.statuses.items() if k[1] >= 500}
        figures = {
            "clients": CLIENTS,
            "uploads": CLIENTS * UPLOADS_PER_CLIENT,
            "wall_seconds": round(wall, 1),
            "api_calls_per_second": round(
                sum(len(tally.latencies[e]) for e in ENDPOINTS if e != "put (S3)") / wall, 1
            ),
            "client_side": {e: percentiles(tally.latencies[e]) for e in ENDPOINTS},
            "server_side": server_side_latencies(server.access_log),
        }
        (tmp_path / "load-figures.json").write_text(json.dumps(figures, indent=2))
        print_figures(figures)
    finally:
        server.stop()

    assert five_xx == {}, five_xx
    assert tally.failures == []
    assert len(tally.uploads) == CLIENTS * UPLOADS_PER_CLIENT
    assert corrupted == []
    assert seen == [["completed"] * UPLOADS_PER_CLIENT] * CLIENTS
    assert "Traceback" not in server.log()


def print_figures(figures: dict[str, Any]) -> None:
    print(
        f"\nload: {figures['uploads']} uploads by {figures['clients']} clients in "
        f"{figures['wall_seconds']} s ({figures['api_calls_per_second']} API calls/s)"
    )
    for side in ("client_side", "server_side"):
        print(f"{side:12} {'endpoint':10} {'n':>5} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
        for name, row in figures[side].items():
            print(
                f"{'':12} {name:10} {row['n']:5} {row['p50_ms']:6.1f}ms {row['p95_ms']:6.1f}ms "
                f"{row['p99_ms']:6.1f}ms {row['max_ms']:6.1f}ms"
            )
