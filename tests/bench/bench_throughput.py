"""End-to-end upload throughput: Partwise's clients against boto3 and a raw PUT, same run.

    .venv/bin/python tests/bench/bench_throughput.py [--size 1G] [--part-size 8M]
        [--concurrency 4] [--repeat 1]
        [--clients boto3,boto3-sha256,curl,cli,browser,browser-nosha,xhr,uppy]

One file of --size random bytes, one SeaweedFS and one Partwise under gunicorn (2 workers),
all on free loopback ports, started and stopped here. Each client uploads the same file in
turn (objects are deleted between runs):

  boto3    boto3 upload_file, same part size and concurrency: the baseline (no checksums)
  boto3-sha256  the same with a SHA-256 per part that S3 checks, as Partwise's clients send
  curl     one presigned PUT of the whole file: the ceiling of this S3 server
  cli      the `partwise` CLI
  browser  frontend/client.js in headless Chromium (a harness page on Django's origin)
  browser-nosha  the same with `checksums: false` (no SHA-256; S3 checks sizes only)
  xhr      raw XHR PUTs of boto3-presigned part URLs in the same Chromium, no Partwise code:
           the ceiling of the browser on this machine
  uppy     @uppy/core + @uppy/aws-s3 in the same Chromium, via Partwise's /s3/ endpoints

Printed per client: seconds, MB/s, the ratio to boto3, requests served by Django (per GiB and
by route) and the Django workers' peak RSS after that run. Run it at two sizes to see that
the server's memory does not grow with the file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from harness import ROOT, GiB, MiB, Stack, machine, write_random_file

from tests.chromium import CHROMIUM, CHROMIUM_ARGS

UPPY_MODULES = ROOT / "tests" / "e2e" / "uppy" / "node_modules"
RUN_TIMEOUT = 1800  # seconds per client run, whatever the size
HARNESS = """<!doctype html><meta charset="utf-8"><title>bench</title>
<link rel="icon" href="data:,">
<input type="file" id="file">
"""

# Raw browser PUTs of presigned URLs, no Partwise code: the ceiling of this Chromium and S3.
RAW_PUTS = """async ([urls, partSize, concurrency]) => {
  const file = document.getElementById("file").files[0];
  const etags = new Array(urls.length);
  let next = 0;
  const put = (i) => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", urls[i]);
    xhr.upload.onprogress = () => {};
    xhr.onload = () => xhr.status < 300
      ? resolve(xhr.getResponseHeader("ETag"))
      : reject(new Error(`part ${i + 1}: HTTP ${xhr.status}`));
    xhr.onerror = () => reject(new Error(`part ${i + 1}: network error`));
    xhr.send(file.slice(i * partSize, Math.min(file.size, (i + 1) * partSize)));
  });
  const worker = async () => {
    while (next < urls.length) {
      const i = next++;
      etags[i] = await put(i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return etags;
}"""

# The scripts are imported from blob: URLs, not served through Playwright's request routing:
# once a context routes any URL, Chromium hands every request to Playwright first, and uploads
# then crawl (31 MiB/s against 180-280 MiB/s for the same XHR PUTs without it, on this VM).
# client.js is an entry over ES modules (frontend/client/*.js): each module gets a blob: URL
# and the relative specifiers that name it are rewritten to it, dependencies first.
# runPartwise answers, besides the upload, the client's `partwise:*` performance measures
# (count and total ms per name: where the browser's time goes) and the page's peak JS heap.
LOAD_SCRIPTS = r"""async ([modules, uppyCode]) => {
  const load = (code) =>
    import(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
  const urls = {};
  const resolve = (from, spec) => {
    const parts = from.split("/").slice(0, -1);
    for (const piece of spec.split("/")) {
      if (piece === "..") parts.pop();
      else if (piece !== ".") parts.push(piece);
    }
    return parts.join("/");
  };
  const urlOf = (path) => {
    if (urls[path]) return urls[path];
    const code = modules[path].replace(/(from\s*|import\s*\()\s*"(\.{1,2}\/[^"]+)"/g,
      (_, head, spec) => `${head}"${urlOf(resolve(path, spec))}"`);
    urls[path] = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
    return urls[path];
  };
  const { upload } = await import(urlOf("client.js"));
  window.runPartwise = async ({ token, ...options }) => {
    const file = document.getElementById("file").files[0];
    performance.clearMeasures();
    let heap = performance.memory?.usedJSHeapSize ?? 0;
    const sampler = setInterval(() => {
      heap = Math.max(heap, performance.memory?.usedJSHeapSize ?? 0);
    }, 100);
    const handle = upload(file, { ...options, headers: { Authorization: `Token ${token}` } });
    try {
      const done = await handle.promise;
      const breakdown = {};
      for (const entry of performance.getEntriesByType("measure")) {
        if (!entry.name.startsWith("partwise:")) continue;
        const item = (breakdown[entry.name.slice(9)] ??= { count: 0, ms: 0 });
        item.count++;
        item.ms += entry.duration;
      }
      return { status: done.status, id: done.id, size: done.size, breakdown, heap };
    } finally {
      clearInterval(sampler);
    }
  };
  // A one-byte upload before a timed one: the page learns which digest the server chooses
  // (UPLOADS_PART_INTEGRITY), so the timed upload hashes its first parts with it at once.
  window.warmPartwise = async ({ token, ...options }) => {
    const file = new File([new Uint8Array([1])], "warm.bin");
    const handle = upload(file, { ...options, headers: { Authorization: `Token ${token}` } });
    return (await handle.promise).status;
  };
  await load(uppyCode);
  window.partwiseReady = true;
}"""


CONTENDERS = ("boto3", "boto3-sha256", "curl", "cli", "browser", "browser-nosha", "xhr", "uppy")
# The clients again with the server choosing MD5 or CRC32C for every part (UPLOADS_PART_INTEGRITY,
# gunicorn restarted between clients, outside the timing): what each digest costs beside SHA-256.
BY_DIGEST = {
    f"{client}-{digest}": (client, digest)
    for client in ("cli", "browser")
    for digest in ("md5", "crc32c")
}
IN_CHROMIUM = ("browser", "browser-nosha", "xhr", "uppy", "browser-md5", "browser-crc32c")


def size_arg(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": GiB}
    text = text.strip().upper().rstrip("IB").rstrip("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


class Bench:
    def __init__(self, stack: Stack, path: Path, args: argparse.Namespace) -> None:
        self.stack, self.path, self.args = stack, path, args
        self.size = path.stat().st_size
        self.s3 = stack.boto3_client()
        self.bucket = stack.django.bucket
        self.results: list[dict] = []
        self._browser = None
        self._playwright = None
        self._integrity = "auto"
        self._warm_page = None

    # --- one measured run ------------------------------------------------------------------
    def run(self, name: str, upload) -> None:
        mark = len(self.stack.django.access_lines())
        started = time.perf_counter()
        note = ""
        try:
            # Browser clients time their own upload call: opening the page is not uploading.
            seconds = upload()
        except Exception as error:  # a failing client is a result too, not the end of the bench
            note = f"FAILED: {str(error).splitlines()[0]}"[:200]
            seconds = None
        seconds = seconds or time.perf_counter() - started
        time.sleep(0.5)  # let gunicorn flush its access log
        routes = self.stack.django.requests_since(mark)
        routes.pop("GET /api/", None)  # the browser harness's own page load
        for route in [route for route in routes if route.split()[1].startswith("/static/")]:
            del routes[route]  # the icon Chromium asks for with it (/favicon.ico redirects)
        routes.pop("GET /favicon.ico", None)
        self.results.append(
            {
                "client": name,
                "seconds": seconds,
                "routes": routes,
                "rss": self.stack.django.peak_rss(),
                "note": note,
            }
        )
        self.empty_bucket()

    def prepare(self, name: str) -> None:
        """Before a client's timed run: the server's part digest for it, a page that knows it."""
        client, integrity = BY_DIGEST.get(name, (name, "auto"))
        if integrity != self._integrity:
            self.stack.django.extra_env["UPLOADS_PART_INTEGRITY"] = integrity
            self.stack.django.restart()
            self._integrity = integrity
        if client == "browser" and integrity != "auto":
            self._warm_page = self.page()
            options = {"token": self.stack.token, **json.loads(self.args.browser_options)}
            status = self._warm_page.evaluate("options => window.warmPartwise(options)", options)
            if status != "completed":
                raise RuntimeError(f"the warm-up upload ended {status}")
            self.empty_bucket()
        if client == "cli" and integrity != "auto":
            warm = self.stack.tmp / "warm.bin"
            warm.write_bytes(b"\x01")
            self.cli(warm)
            self.empty_bucket()

    def empty_bucket(self) -> None:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                self.s3.delete_object(Bucket=self.bucket, Key=item["Key"])

    # --- the clients -----------------------------------------------------------------------
    def boto3(self, extra_args: dict[str, str] | None = None) -> float | None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=self.args.part_size,
            multipart_chunksize=self.args.part_size,
            max_concurrency=self.args.concurrency,
            use_threads=True,
        )
        self.s3.upload_file(
            str(self.path), self.bucket, "bench/boto3.bin", Config=config, ExtraArgs=extra_args
        )
        self.check("bench/boto3.bin")
        return None

    def boto3_sha256(self) -> float | None:
        # Like for like: every part carries its SHA-256 and S3 checks it, as Partwise's do.
        return self.boto3({"ChecksumAlgorithm": "SHA256"})

    def curl(self) -> float | None:
        if not shutil.which("curl"):
            raise RuntimeError("curl is not installed")
        url = self.s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": "bench/curl.bin"}, ExpiresIn=3600
        )
        result = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Expect:",
                "-T",
                str(self.path),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        if result.stdout != "200":
            raise RuntimeError(f"curl: HTTP {result.stdout} {result.stderr[:200]}")
        self.check("bench/curl.bin")
        return None

    def cli(self, path: Path | None = None) -> float | None:
        # Its own state directory per digest: the CLI asks each server for the digest it
        # chose last (partwise_client/sessions.py), so each variant hashes its way at once.
        state = self.stack.tmp / f"cli-state-{self._integrity}"
        command = [
            str(Path(sys.executable).parent / "partwise"),
            "upload",
            str(path or self.path),
            "--server",
            self.stack.django.url,
            "--token",
            self.stack.token,
            "--concurrency",
            str(self.args.concurrency),
            "--part-size",
            str(self.args.part_size),
            "--no-resume",
            "--again",  # every round sends the same file: the CLI would say it is uploaded
            "--quiet",
        ]
        result = subprocess.run(
            command,
            env={**os.environ, "PARTWISE_STATE_DIR": str(state)},
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"partwise exited {result.returncode}: {result.stderr[-300:]}")
        self.check_uploads(path)
        return None

    def browser(self, extra: dict | None = None) -> float | None:
        page, self._warm_page = self._warm_page or self.page(), None
        started = time.perf_counter()
        outcome = page.evaluate(
            "options => window.runPartwise(options)",
            {
                "token": self.stack.token,
                "concurrency": self.args.concurrency,
                "partSize": self.args.part_size,
                **({"signBatchSize": self.args.sign_batch} if self.args.sign_batch else {}),
                **json.loads(self.args.browser_options),
                **(extra or {}),
            },
        )
        seconds = time.perf_counter() - started
        page.close()
        if outcome["status"] != "completed":
            raise RuntimeError(f"browser upload ended {outcome['status']}")
        self.check_uploads()
        self.print_breakdown(outcome, seconds)
        return seconds

    def print_breakdown(self, outcome: dict, seconds: float) -> None:
        """Where the browser client's time went: summed spans (they overlap: parts run in
        parallel, so a sum is busy time across the pool, not wall time) and the peak JS heap."""
        spans = ", ".join(
            f"{name} x{item['count']} {item['ms'] / 1000:.1f}s"
            for name, item in sorted(outcome.get("breakdown", {}).items())
        )
        print(
            f"  browser {seconds:.1f}s wall; spans: {spans or 'none'}; "
            f"peak JS heap {outcome.get('heap', 0) / MiB:.0f} MiB"
        )

    def xhr(self) -> float | None:
        key = "bench/xhr.bin"
        upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        count = max(1, -(-self.size // self.args.part_size))
        urls = [
            self.s3.generate_presigned_url(
                "upload_part",
                Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": n},
                ExpiresIn=3600,
            )
            for n in range(1, count + 1)
        ]
        page = self.page()
        started = time.perf_counter()
        etags = page.evaluate(RAW_PUTS, [urls, self.args.part_size, self.args.concurrency])
        self.s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, 1)]
            },
        )
        seconds = time.perf_counter() - started
        page.close()
        self.check(key)
        return seconds

    def uppy(self) -> float | None:
        page = self.page()
        page.wait_for_function("window.uppyReady === true", timeout=30_000)
        started = time.perf_counter()
        outcome = page.evaluate(
            "partSize => window.uploadWithUppy(document.getElementById('file').files[0], partSize)",
            self.args.part_size,
        )
        seconds = time.perf_counter() - started
        page.close()
        if outcome["failed"] or outcome["successful"] != 1:
            raise RuntimeError(f"uppy: {outcome}")
        self.check_uploads()
        return seconds

    # --- checks ------------------------------------------------------------------------------
    def check(self, key: str, size: int | None = None) -> None:
        size = self.size if size is None else size
        stored = self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        if stored != size:
            raise RuntimeError(f"{key} holds {stored} bytes, not {size}")

    def check_uploads(self, path: Path | None = None) -> None:
        keys = [
            item["Key"]
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix="uploads/"
            )
            for item in page.get("Contents", [])
        ]
        if len(keys) != 1:
            raise RuntimeError(f"expected one completed object, found {keys}")
        self.check(keys[0], (path or self.path).stat().st_size)

    # --- Chromium ----------------------------------------------------------------------------
    def page(self):
        if self._browser is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            self._context = self._browser.new_context()
            origin = self.stack.django.url
            self._context.add_cookies(
                [
                    {
                        "name": "sessionid",
                        "value": self.stack.django.users["alice"].session,
                        "url": origin,
                    }
                ]
            )
            frontend = ROOT / "frontend"
            modules = {"client.js": (frontend / "client.js").read_text()}
            for path in sorted((frontend / "client").glob("*.js")):
                modules[f"client/{path.name}"] = path.read_text()
            self._scripts = [modules, self.uppy_bundle()]
        page = self._context.new_page()
        page.on("pageerror", lambda error: print(f"  page error: {error}"))
        # A real loopback response first: Chromium places a document it did not get from an
        # address in the public space, and then refuses its requests to loopback (S3 here).
        page.goto(f"{self.stack.django.url}/api/")
        page.set_content(HARNESS)
        page.evaluate(LOAD_SCRIPTS, self._scripts)
        page.set_input_files("#file", str(self.path))
        return page

    def uppy_bundle(self) -> str:
        esbuild = UPPY_MODULES / ".bin" / "esbuild"
        if not esbuild.exists():
            return "window.uppyMissing = true;"
        out = self.stack.tmp / "uppy.js"
        subprocess.run(
            [
                str(esbuild),
                str(Path(__file__).with_name("uppy_entry.js")),
                "--bundle",
                "--format=esm",
                "--target=es2022",
                f"--outfile={out}",
                "--log-level=warning",
            ],
            env={**os.environ, "NODE_PATH": str(UPPY_MODULES)},
            check=True,
            timeout=120,
        )
        return out.read_text()

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._playwright.stop()


def report(bench: Bench) -> None:
    size = bench.size
    baseline = next((r["seconds"] for r in bench.results if r["client"] == "boto3"), None)
    print(
        f"\n{size / MiB:.0f} MiB file, part size {bench.args.part_size // MiB} MiB, "
        f"concurrency {bench.args.concurrency}"
    )
    print(
        f"{'client':12} {'seconds':>8} {'MB/s':>7} {'x boto3':>8} {'Django req':>10} "
        f"{'req/GiB':>8} {'besides reports/GiB':>19} {'Django RSS':>10}  note"
    )
    for result in bench.results:
        routes: Counter[str] = result["routes"]
        total = sum(routes.values())
        reports = sum(n for route, n in routes.items() if route.endswith("/parts/"))
        per_gib = GiB / size
        ratio = f"{baseline / result['seconds']:.2f}" if baseline else "-"
        rate = size / 1e6 / result["seconds"]
        print(
            f"{result['client']:12} {result['seconds']:>8.1f} {rate:>7.0f} "
            f"{ratio:>8} {total:>10} {total * per_gib:>8.0f} {(total - reports) * per_gib:>19.1f} "
            f"{result['rss'] / MiB:>8.0f}MiB  {result['note']}"
        )
    rounds = Counter(result["client"] for result in bench.results)
    if max(rounds.values(), default=0) > 1:
        # Rounds alternate the clients, so each median meets the same drifts of the machine.
        medians = {
            name: statistics.median(r["seconds"] for r in bench.results if r["client"] == name)
            for name in rounds
        }
        base = medians.get("boto3")
        print(f"\nmedian of {max(rounds.values())} rounds:")
        for name, seconds in medians.items():
            ratio = f"{base / seconds:.2f}" if base else "-"
            line = f"{name:14} {seconds:>8.1f} {size / 1e6 / seconds:>7.0f} {ratio:>8}"
            if name in BY_DIGEST and BY_DIGEST[name][0] in medians:
                # The same client hashing SHA-256 (the server's choice on SeaweedFS), this run.
                line += f"   {medians[BY_DIGEST[name][0]] / seconds:.2f} x the SHA-256 run"
            print(line)
    print("\nDjango requests by route:")
    for result in bench.results:
        if result["routes"]:
            routes = ", ".join(f"{route} x{n}" for route, n in sorted(result["routes"].items()))
            print(f"  {result['client']:12} {routes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=size_arg, default=GiB, help="file size, e.g. 1G, 256M")
    parser.add_argument("--part-size", type=size_arg, default=8 * MiB)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--clients", default=",".join(CONTENDERS), help=f"of {', '.join([*CONTENDERS, *BY_DIGEST])}"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds over all clients")
    parser.add_argument("--sign-batch", type=int, default=0, help="browser signBatchSize")
    parser.add_argument(
        "--browser-options",
        default="{}",
        help='more client.js options as JSON, e.g. \'{"hashAhead": "buffer", "lookahead": 8}\'',
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where the file goes")
    args = parser.parse_args()
    clients = args.clients.split(",")
    print(f"machine: {machine()}")
    with Stack(workers=2, threads=4) as stack:
        workdir = args.workdir or stack.tmp
        path = write_random_file(workdir / "bench.bin", args.size)
        bench = Bench(stack, path, args)
        available = {
            "boto3": bench.boto3,
            "boto3-sha256": bench.boto3_sha256,
            "curl": bench.curl,
            "cli": bench.cli,
            "browser": bench.browser,
            "browser-nosha": lambda: bench.browser({"checksums": False}),
            "xhr": bench.xhr,
            "uppy": bench.uppy,
        }
        for name, (client, _) in BY_DIGEST.items():
            available[name] = available[client]
        try:
            for _ in range(args.repeat):
                for name in clients:
                    if name in IN_CHROMIUM and not CHROMIUM.exists():
                        print(f"skipping {name}: no Chromium at {CHROMIUM}")
                        continue
                    bench.prepare(name)
                    bench.run(name, available[name])
                    last = bench.results[-1]
                    print(f"  {name}: {last['seconds']:.1f} s {last['note']}", flush=True)
        finally:
            bench.close()
            if args.workdir:
                path.unlink(missing_ok=True)
        report(bench)
    print(f"\nmachine after: {machine()}")


if __name__ == "__main__":
    main()
