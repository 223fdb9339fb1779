"""What one upload and one part cost the server: the figures behind docs/scaling.md.

    .venv/bin/python tests/bench/bench_capacity.py \\
        --database-url postgres://partwise:partwise@127.0.0.1:55432/partwise \\
        --redis-url redis://127.0.0.1:56379/0 [--uploads 200] [--parts 2000] [--repeat 3]

Starts SeaweedFS and Partwise under gunicorn (production settings, a fresh PostgreSQL database
made on the given server and dropped at the end, Celery's broker and the cache on the given
Redis, no Celery worker: the queued messages are counted, not run) and measures, per round:

- **per upload**: `--uploads` whole uploads of a one-part file (4 KiB, SHA-256 on), one after
  another as a client does them: create (which signs the part), PUT to S3, report, complete.
  Django CPU (user + system of gunicorn's processes, /proc), SQL rows and bytes added (per
  table, `pg_total_relation_size`), Redis commands (`INFO commandstats`) and Celery messages
  queued.
- **per part**: one planned upload of `--parts` parts of 5 MiB (nothing is sent to S3), signed
  in batches of 100 as the clients sign, then reported in batches of 64 as the CLI reports,
  then aborted: Django CPU per signed and per reported part, and the part rows' bytes.

Medians of the rounds are printed beside each round's figure. Everything is on loopback.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from partwise_client.digests import part_digest  # noqa: E402
from tests.bench.harness import MiB, Stack, machine  # noqa: E402

PART = 5 * MiB
SIGN_BATCH = 100  # parts per sign call (the browser's and the CLI's batches)
REPORT_BATCH = 64  # parts per report call (the CLI's batch)
TABLES = ("uploads_upload", "uploads_uploadpart", "uploads_uploadsession")


class Meters:
    """Before/after readings of the server's CPU, the database and Redis."""

    def __init__(self, stack: Stack, database_url: str, redis_url: str) -> None:
        self.stack, self.database_url = stack, database_url
        self.redis = redis.Redis.from_url(redis_url)

    def read(self) -> dict[str, float]:
        reading: dict[str, float] = {"cpu": self.stack.django.cpu_seconds()}
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            for table in TABLES:
                rows = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
                size = connection.execute("SELECT pg_total_relation_size(%s)", [table]).fetchone()
                reading[f"{table} rows"] = rows[0] if rows else 0
                reading[f"{table} bytes"] = size[0] if size else 0
        stats = self.redis.info("commandstats")
        reading["redis commands"] = sum(
            entry["calls"] for name, entry in stats.items() if name != "cmdstat_info"
        )
        reading["celery messages"] = self.redis.llen("celery")
        return reading

    def measure(self, work: Callable[[], None]) -> dict[str, float]:
        before = self.read()
        work()
        after = self.read()
        return {name: after[name] - before[name] for name in after}


def fresh_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A new database on the PostgreSQL server of `server_url`; its URL and how to drop it."""
    name = f"partwise_capacity_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))

    def drop() -> None:
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


def whole_uploads(session: requests.Session, server: str, count: int) -> None:
    data = os.urandom(4096)
    checksum = part_digest("SHA256", data)
    for n in range(count):
        body = {
            "filename": f"small-{n}.bin",
            "size": len(data),
            "checksum_algorithm": "SHA256",
            "sign": {"parts": [{"number": 1, "checksum": checksum}]},
        }
        created = session.post(f"{server}/api/uploads/", json=body, timeout=60)
        created.raise_for_status()
        upload = created.json()
        [signed] = upload["signed"]
        put = requests.put(signed["url"], data=data, headers=signed["headers"], timeout=60)
        put.raise_for_status()
        report = {"parts": [{"number": 1, "etag": put.headers["ETag"], "checksum": checksum}]}
        session.post(
            f"{server}/api/uploads/{upload['id']}/parts/", json=report, timeout=60
        ).raise_for_status()
        session.post(
            f"{server}/api/uploads/{upload['id']}/complete/", json={}, timeout=60
        ).raise_for_status()


def planned_upload(session: requests.Session, server: str, parts: int) -> str:
    body = {
        "filename": "big.bin",
        "size": parts * PART,
        "part_size": PART,
        "checksum_algorithm": "SHA256",
    }
    created = session.post(f"{server}/api/uploads/", json=body, timeout=60)
    created.raise_for_status()
    return created.json()["id"]


def in_batches(numbers: range, size: int) -> list[list[int]]:
    return [list(numbers[i : i + size]) for i in range(0, len(numbers), size)]


def sign_all(session: requests.Session, server: str, upload_id: str, parts: int) -> None:
    checksum = part_digest("SHA256", b"")  # any well-formed digest: nothing is sent
    for batch in in_batches(range(1, parts + 1), SIGN_BATCH):
        body = {"parts": [{"number": n, "checksum": checksum} for n in batch]}
        session.post(
            f"{server}/api/uploads/{upload_id}/sign/", json=body, timeout=60
        ).raise_for_status()


def report_all(session: requests.Session, server: str, upload_id: str, parts: int) -> None:
    for batch in in_batches(range(1, parts + 1), REPORT_BATCH):
        body = {"parts": [{"number": n, "etag": f'"{n:032x}"'} for n in batch]}
        session.post(
            f"{server}/api/uploads/{upload_id}/parts/", json=body, timeout=60
        ).raise_for_status()


def print_figure(name: str, values: list[float], unit: str, digits: int = 1) -> None:
    rounds = ", ".join(f"{value:.{digits}f}" for value in values)
    print(f"  {name:44} {statistics.median(values):>10.{digits}f} {unit:8} ({rounds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", required=True, help="a PostgreSQL role that may CREATE DATABASE"
    )
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--uploads", type=int, default=200, help="whole uploads per round")
    parser.add_argument("--parts", type=int, default=2000, help="parts of the planned upload")
    parser.add_argument("--repeat", type=int, default=3, help="rounds")
    args = parser.parse_args()
    database_url, drop_database = fresh_database(args.database_url)
    redis.Redis.from_url(args.redis_url).flushdb()
    cache_url = args.redis_url.rsplit("/", 1)[0] + "/1"
    env = {
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": args.redis_url,
        "CACHE_URL": cache_url,
    }
    print(f"machine: {machine()}")
    per_upload: list[dict[str, float]] = []
    per_part_sign: list[dict[str, float]] = []
    per_part_report: list[dict[str, float]] = []
    try:
        with Stack(workers=2, threads=4, extra_env=env) as stack:
            meters = Meters(stack, database_url, args.redis_url)
            session = requests.Session()
            session.headers["Authorization"] = f"Token {stack.token}"
            server = stack.django.url
            whole_uploads(session, server, 5)  # warm up: imports, connections, caches
            for round_ in range(args.repeat):
                per_upload.append(
                    meters.measure(lambda: whole_uploads(session, server, args.uploads))
                )
                upload_id = planned_upload(session, server, args.parts)
                per_part_sign.append(
                    meters.measure(lambda u=upload_id: sign_all(session, server, u, args.parts))
                )
                per_part_report.append(
                    meters.measure(lambda u=upload_id: report_all(session, server, u, args.parts))
                )
                session.delete(f"{server}/api/uploads/{upload_id}/", timeout=60)
                print(f"  round {round_ + 1} done", flush=True)
    finally:
        drop_database()

    n, p = args.uploads, args.parts
    print(f"\nper whole upload (one 4 KiB part, SHA-256; {n} uploads per round):")
    print_figure("Django CPU", [r["cpu"] / n * 1000 for r in per_upload], "ms")
    for table in TABLES:
        print_figure(f"{table} rows", [r[f"{table} rows"] / n for r in per_upload], "rows", 2)
        print_figure(f"{table} bytes", [r[f"{table} bytes"] / n for r in per_upload], "bytes", 0)
    print_figure("Redis commands", [r["redis commands"] / n for r in per_upload], "commands")
    print_figure(
        "Celery messages queued", [r["celery messages"] / n for r in per_upload], "msgs", 2
    )
    print(
        f"\nper part of a {p}-part upload (sign calls of {SIGN_BATCH}, reports of {REPORT_BATCH}):"
    )
    print_figure("Django CPU per signed part", [r["cpu"] / p * 1e6 for r in per_part_sign], "us", 0)
    print_figure(
        "Django CPU per reported part", [r["cpu"] / p * 1e6 for r in per_part_report], "us", 0
    )
    part_bytes = [
        (s["uploads_uploadpart bytes"] + r["uploads_uploadpart bytes"]) / p
        for s, r in zip(per_part_sign, per_part_report, strict=True)
    ]
    print_figure("uploads_uploadpart bytes per part", part_bytes, "bytes", 0)
    print_figure(
        "Redis commands per signed part",
        [r["redis commands"] / p for r in per_part_sign],
        "cmds",
        3,
    )
    print(f"\nmachine after: {machine()}")


if __name__ == "__main__":
    main()
