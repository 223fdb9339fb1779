"""How fast each part digest is computed, by both clients: SHA-256, MD5 and CRC32C.

The CLI's digests (partwise_client/digests.py: hashlib and google-crc32c) in this process, and
the browser's (frontend/client/digests.js: WebCrypto SHA-256, MD5 and CRC32C in plain
JavaScript) in headless Chromium, over the same in-memory parts, so only the hashing is timed:
no file reads, no network. Each round hashes every digest in turn; the medians of the rounds
and their ratio to SHA-256 (measured in the same run) are printed.

    .venv/bin/python tests/bench/bench_digests.py --size 256M --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from partwise_client.digests import part_digest  # noqa: E402
from tests.bench.bench_throughput import size_arg  # noqa: E402
from tests.bench.harness import MiB, machine  # noqa: E402
from tests.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

ALGORITHMS = ("SHA256", "MD5", "CRC32C")

# digests.js imported from a blob: URL; each round hashes `count` parts of `size` random bytes.
IN_PAGE = """async ([code, partSize, count, algorithms]) => {
  const { digestBase64 } = await import(
    URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
  const part = new Uint8Array(partSize);
  for (let i = 0; i < partSize; i += 65536) crypto.getRandomValues(part.subarray(i, i + 65536));
  const seconds = {};
  for (const algorithm of algorithms) {
    const started = performance.now();
    for (let i = 0; i < count; i++) await digestBase64(algorithm, part);
    seconds[algorithm] = (performance.now() - started) / 1000;
  }
  return seconds;
}"""


class BlankPage(BaseHTTPRequestHandler):
    """An empty page on loopback: WebCrypto exists only in a secure context (not about:blank)."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>digests</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # quiet
        pass


def python_round(part: bytes, count: int) -> dict[str, float]:
    seconds = {}
    for algorithm in ALGORITHMS:
        started = time.perf_counter()
        for _ in range(count):
            part_digest(algorithm, part)
        seconds[algorithm] = time.perf_counter() - started
    return seconds


def print_rounds(client: str, rounds: list[dict[str, float]], total: int) -> None:
    print(f"\n{client}: MiB/s per round (median; x SHA-256 of the median)")
    medians = {a: statistics.median(r[a] for r in rounds) for a in ALGORITHMS}
    for algorithm in ALGORITHMS:
        per_round = ", ".join(f"{total / MiB / r[algorithm]:.0f}" for r in rounds)
        rate = total / MiB / medians[algorithm]
        ratio = medians["SHA256"] / medians[algorithm]
        print(f"  {algorithm:7} {per_round}  (median {rate:.0f}; {ratio:.2f} x SHA-256)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=size_arg, default=256 * MiB, help="bytes per round")
    parser.add_argument("--part-size", type=size_arg, default=8 * MiB)
    parser.add_argument("--repeat", type=int, default=5, help="rounds")
    args = parser.parse_args()
    count = max(1, args.size // args.part_size)
    total = count * args.part_size
    print(f"machine: {machine()}")
    print(f"{count} parts of {args.part_size // MiB} MiB per round, {args.repeat} rounds")

    part = os.urandom(args.part_size)
    print_rounds("CLI (Python)", [python_round(part, count) for _ in range(args.repeat)], total)

    if not CHROMIUM.exists():
        print(f"\nskipping the browser: no Chromium at {CHROMIUM}")
        return
    from playwright.sync_api import sync_playwright

    code = (ROOT / "frontend" / "client" / "digests.js").read_text()
    server = ThreadingHTTPServer(("127.0.0.1", 0), BlankPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        rounds = [
            page.evaluate(IN_PAGE, [code, args.part_size, count, list(ALGORITHMS)])
            for _ in range(args.repeat)
        ]
        browser.close()
    server.shutdown()
    print_rounds("browser (Chromium, digests.js on the page thread)", rounds, total)
    print(f"\nmachine after: {machine()}")


if __name__ == "__main__":
    main()
