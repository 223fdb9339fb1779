"""A one-node Ceph RGW (Debian's radosgw 16.2, Pacific) on loopback: a second real S3 server.

`CephRGW` starts, in a folder of its own, one ceph-mon (mkfs from a generated fsid and a
monmaptool map), one ceph-osd on memstore (objects in memory, up to `memstore_bytes`) and one
radosgw (beast on a free port), then makes an S3 user with radosgw-admin. Everything binds
127.0.0.1, runs in the foreground as our children (a process group each), without auth between
the daemons, and reads one generated ceph.conf (`-c` everywhere): run dir, admin sockets, pid
and log files all live in the folder, so two clusters can run side by side and nothing is
written under /etc or /var. Readiness is asked, never waited out: the mon's admin socket says
"leader", the OSD's says "active", the S3 port answers HTTP. It takes ~1-2.5 s here, most of
it only because `paxos propose interval` is cut from 1 s to 10 ms (with the default, each of
radosgw's dozen pool commands waits a second: ~12 s). Install: apt-get install
--no-install-recommends radosgw ceph-mon ceph-osd (63 packages, 269 MB).

What this RGW does (pinned by tests/integration/test_ceph_rgw.py), presigned UploadPart URLs
sent with `requests`:
  a. signed Content-MD5: right -> 200 (ETag = hex MD5); wrong, same length -> 400 BadDigest,
     and the part is not stored.
  b. x-amz-checksum-sha256 / -crc32c (upload created with ChecksumAlgorithm): NOT verified,
     right or wrong -> 200, the part is stored. No checksum is echoed, stored or listed.
     Sending another value than the signed one, or none, -> 403 SignatureDoesNotMatch.
  c. body (and so the Content-Length sent) longer, shorter or empty against the signed
     Content-Length -> 403 SignatureDoesNotMatch; nothing stored.
  d. ListParts: ETag = quoted hex MD5 of the part's bytes; no Checksum* fields at all.
  e. CompleteMultipartUpload answers ETag "" (empty); HeadObject then has the usual
     "md5-of-md5s-N"; completing again answers 200 with that ETag unquoted. After an abort
     (or a complete): ListParts -> 404 NoSuchKey (not NoSuchUpload), HeadObject -> 404,
     AbortMultipartUpload -> 404 NoSuchUpload, UploadPart -> 404 NoSuchUpload,
     CompleteMultipartUpload -> 500 InternalError ("This multipart completion is already in
     progress"); the same for an upload id that never existed.
  f. unequal non-final parts (5 MiB, 5 MiB + 1, tail) -> accepted; a non-final part under
     5 MiB -> 400 EntityTooSmall; an unknown part ETag -> 400 InvalidPart.
  g. bucket CORS: put/get work; preflight of an allowed origin -> 200 with the
     Access-Control-* headers (requested headers echoed); other origin, or no CORS -> 403
     AccessDenied. Lifecycle with AbortIncompleteMultipartUpload: stored (read back with a
     top-level Prefix instead of Filter) and carried out (`rgw lc debug interval` makes a
     "day" that many seconds).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from project.dev.seaweedfs import FREE_PORTS_FLOOR, _bindable, _ephemeral_floor

START_TIMEOUT = 90.0  # ~1-2.5 s here; a loaded CI machine can be much slower
STOP_TIMEOUT = 5.0
SOCKET_ROOT_MAX = 60  # + "/try0/run/client.admin.<pid>.asok" stays under sun_path's 108 bytes
COMMAND_TIMEOUT = 30.0
MEMSTORE_BYTES = 1 << 30  # the OSD keeps every object in memory, up to this much

# ceph-osd binds its own ports, the first free ones from `ms bind port min`..`max`
# (6800-7300): the ports we pick stay out of that range so an OSD (ours or another
# instance's) can never take them.
OSD_PORT_RANGE = range(6800, 7301)
DAEMONS = ("radosgw", "ceph-mon", "ceph-osd", "radosgw-admin", "monmaptool", "ceph")


def missing_binaries() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None]


@dataclass
class RGWPorts:
    mon: int
    rgw: int

    @classmethod
    def free(cls) -> RGWPorts:
        """Two free loopback ports below the ephemeral range and outside the OSD's range.

        As in project/dev/seaweedfs.py: a port below the kernel's ephemeral range is only ever
        taken by an explicit bind, never by some outgoing connection in between.
        """
        rng = random.SystemRandom()
        ceiling = _ephemeral_floor()
        values: list[int] = []
        while len(values) < 2:
            port = rng.randrange(FREE_PORTS_FLOOR, ceiling)
            if port in OSD_PORT_RANGE or port in values:
                continue
            if _bindable(port):
                values.append(port)
        return cls(*values)


# What the daemons log when a port they were given is taken.
PORT_CLASH_SIGNS = ("Address already in use", "address already in use", "unable to bind")


class PortClash(RuntimeError):
    """A daemon exited at start because its port was taken."""


def ceph_conf(
    root: Path,
    fsid: str,
    ports: RGWPorts,
    memstore_bytes: int = MEMSTORE_BYTES,
    rgw_options: dict[str, str] | None = None,
) -> str:
    """The cluster's whole configuration: loopback only, no auth, every path under `root`."""
    extra = "".join(f"{name} = {value}\n" for name, value in (rgw_options or {}).items())
    return f"""\
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{ports.mon}
mon initial members = a
public addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind msgr1 = false
ms bind ipv6 = false
ms mon client mode = crc
ms bind retry count = 1
ms bind retry delay = 1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
run dir = {root}/run
admin socket = {root}/run/$name.$pid.asok
pid file = {root}/run/$name.pid
log file = {root}/log/$name.log
mon cluster log file = {root}/log/$cluster.$channel.log
log to stderr = false
err to stderr = true
crash dir = {root}/crash
keyring = {root}/keyring
mon data = {root}/mon/$id
osd data = {root}/osd/$id
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd crush update on start = true
paxos propose interval = 0.01
paxos min wait = 0.001
mon osd report timeout = 900
osd heartbeat grace = 60

[mon]
admin socket = {root}/run/$name.asok

[osd]
admin socket = {root}/run/$name.asok

[client.rgw]
admin socket = {root}/run/$name.asok
rgw frontends = beast endpoint=127.0.0.1:{ports.rgw}
rgw data = {root}/rgw
rgw enable usage log = false
{extra}"""


def admin_socket_command(path: Path, prefix: str, timeout: float = 2.0) -> dict:
    """One command on a daemon's admin socket (what `ceph daemon …` does), without the CLI."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps({"prefix": prefix, "format": "json"}).encode() + b"\0")
        head = b""
        while len(head) < 4:
            chunk = sock.recv(4 - len(head))
            if not chunk:
                raise ConnectionError(f"{path} closed the connection")
            head += chunk
        (length,) = struct.unpack(">I", head)
        body = b""
        while len(body) < length:
            chunk = sock.recv(length - len(body))
            if not chunk:
                raise ConnectionError(f"{path} closed the connection")
            body += chunk
    return json.loads(body)


@dataclass
class CephRGW:
    """One ceph-mon, one memstore ceph-osd and one radosgw, all children of this process.

    start() returns once the S3 endpoint answers and the user exists; stop() ends the three
    (each in a process group of its own) and leaves the folder (logs, config) for diagnosis.
    """

    root: Path
    access_key: str
    secret_key: str
    ports: RGWPorts = field(default_factory=RGWPorts.free)
    memstore_bytes: int = MEMSTORE_BYTES
    uid: str = "partwise"
    rgw_options: dict[str, str] = field(default_factory=dict)  # more lines for [client.rgw]
    fsid: str = field(default_factory=lambda: str(uuid.uuid4()))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    started_in: float | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.rgw}"

    @property
    def conf(self) -> Path:
        return self.root / "ceph.conf"

    def log(self, name: str) -> Path:
        return self.root / "log" / name

    def asok(self, name: str) -> Path:
        return self.root / "run" / f"{name}.asok"

    # --- start --------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> CephRGW:
        began = time.monotonic()
        deadline = began + timeout
        try:
            self._start(deadline)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def _start(self, deadline: float) -> None:
        for sub in ("run", "log", "mon", "osd/0", "rgw", "crash"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            ceph_conf(self.root, self.fsid, self.ports, self.memstore_bytes, self.rgw_options)
        )
        monmap = self.root / "monmap"
        self._run(
            "monmaptool", "--create", "--clobber", "--fsid", self.fsid,
            "--addv", "a", f"[v2:127.0.0.1:{self.ports.mon}]", str(monmap),
        )  # fmt: skip
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(monmap))
        self._spawn("mon.a", "ceph-mon", "-f", "-i", "a")
        self._wait("mon.a", deadline, lambda: self._asok_state("mon.a") == "leader")

        osd_uuid = str(uuid.uuid4())
        osd_id = self._run("ceph", "osd", "new", osd_uuid).strip()
        if osd_id != "0":
            raise RuntimeError(f"`ceph osd new` gave id {osd_id!r}, expected 0")
        self._run("ceph-osd", "--mkfs", "-i", "0", "--osd-uuid", osd_uuid)
        self._spawn("osd.0", "ceph-osd", "-f", "-i", "0")
        self._wait("osd.0", deadline, lambda: self._asok_state("osd.0") == "active")

        self._spawn("client.rgw", "radosgw", "-f", "-n", "client.rgw")
        self._wait("client.rgw", deadline, self.ready)
        self._run(
            "radosgw-admin", "user", "create", f"--uid={self.uid}", f"--display-name={self.uid}",
            f"--access-key={self.access_key}", f"--secret={self.secret_key}",
        )  # fmt: skip

    def _command(self, binary: str, *args: str) -> list[str]:
        # Without --setuser the daemons keep the caller's user (root in CI); say so anyway, so
        # a packaged default of `ceph` could never make them drop to a user lacking the folder.
        user = ["--setuser", "root", "--setgroup", "root"] if os.geteuid() == 0 else []
        daemon = binary in {"ceph-mon", "ceph-osd", "radosgw"}
        return [binary, "-c", str(self.conf), *(user if daemon else []), *args]

    def _run(self, binary: str, *args: str) -> str:
        command = self._command(binary, *args)
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            cwd=self.root,
            check=False,
        )
        if done.returncode != 0:
            said = (done.stderr or done.stdout).decode(errors="replace").strip()
            last = "\n".join(said.splitlines()[-10:])
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{last}")
        return done.stdout.decode(errors="replace")

    def _spawn(self, name: str, binary: str, *args: str) -> None:
        out = open(self.log(f"{name}.out"), "ab")  # noqa: SIM115 (open for the process's lifetime)
        self._logs.append(out)
        self.processes[name] = subprocess.Popen(
            self._command(binary, *args),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,  # a group of its own: Ctrl+C must not reach it first
        )

    def _asok_state(self, name: str) -> str | None:
        prefix = "mon_status" if name.startswith("mon.") else "status"
        try:
            return admin_socket_command(self.asok(name), prefix).get("state")
        except (OSError, ValueError):
            return None

    def _wait(self, name: str, deadline: float, ready: Callable[[], bool]) -> None:
        process = self.processes[name]
        delay = 0.02
        while time.monotonic() < deadline:
            if process.poll() is not None:
                said = self._last_lines(name)
                clash = any(sign in said for sign in PORT_CLASH_SIGNS)
                error = PortClash if clash else RuntimeError
                raise error(
                    f"{name} exited with {process.returncode} while starting; "
                    f"logs in {self.root / 'log'}:\n{said}"
                )
            if ready():
                return
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        raise TimeoutError(
            f"{name} not ready in time; logs in {self.root / 'log'}:\n{self._last_lines(name)}"
        )

    def _last_lines(self, name: str, count: int = 12) -> str:
        lines: list[str] = []
        for path in (self.log(f"{name}.out"), self.log(f"{name}.log")):
            try:
                text = path.read_bytes()[-20000:].decode(errors="replace")
            except OSError:
                continue
            tail = [line for line in text.splitlines() if line.strip()][-count:]
            if tail:
                lines += [f"--- {path.name}", *tail]
        return "\n".join(lines)

    def ready(self) -> bool:
        """True once the S3 API answers (any HTTP status)."""
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=1) as answer:  # noqa: S310
                answer.read()  # read to the end: radosgw logs an error for a dropped answer
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    @classmethod
    def on_free_ports(
        cls, root: Path, access_key: str, secret_key: str, attempts: int = 3, **options: Any
    ) -> CephRGW:
        """A started cluster on free ports, picking again if another process took one."""
        for attempt in range(attempts):
            folder = root / f"try{attempt}"
            server = cls(folder, access_key, secret_key, ports=RGWPorts.free(), **options)
            try:
                return server.start()
            except PortClash:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    # --- stop ---------------------------------------------------------------------------

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """End radosgw, then the OSD, then the monitor: SIGTERM to each group, SIGKILL late.

        The data lives in the OSD's memory and is thrown away; the folder stays.
        """
        for name in ("client.rgw", "osd.0", "mon.a"):
            process = self.processes.pop(name, None)
            if process is None:
                continue
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(process, signal.SIGKILL)
                    process.wait()
            _signal_group(process, signal.SIGKILL)  # anything left in its group
        for out in self._logs:
            out.close()
        self._logs.clear()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)  # its own session: the group id is its pid


# --- the pytest fixture -----------------------------------------------------------------------

_shared: CephRGW | None = None


@pytest.fixture(scope="session")
def ceph_rgw(tmp_path_factory) -> Iterator[CephRGW]:
    """The session's one Ceph RGW (shared by every module that imports this fixture)."""
    global _shared
    missing = missing_binaries()
    if missing:
        pytest.skip(
            f"Ceph RGW not installed (missing {', '.join(missing)}): "
            "apt-get install --no-install-recommends radosgw ceph-mon ceph-osd"
        )
    if _shared is not None and all(p.poll() is None for p in _shared.processes.values()):
        yield _shared
        return
    root = tmp_path_factory.mktemp("ceph-rgw")
    if len(str(root)) > SOCKET_ROOT_MAX:  # an admin socket's path must fit in 107 bytes
        root = Path(tempfile.mkdtemp(prefix="partwise-rgw-"))
    server = CephRGW.on_free_ports(
        root, access_key="rgw" + secrets.token_hex(8), secret_key=secrets.token_urlsafe(30)
    )
    _shared = server
    try:
        yield server
    finally:
        _shared = None
        server.stop(timeout=2)
