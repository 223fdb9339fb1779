"""A SeaweedFS cluster as separate processes, on loopback: the topology tier's S3.

One `weed master` (default replication `001`: every file is written to two volume servers of
the same rack), two `weed volume` servers, one `weed filer` and the `weed s3` gateway, each its
own process with its own port, data folder and log, as docs/deployment.md lays them out. Unlike
`weed mini` (project/dev/seaweedfs.py), one piece can be killed and restarted while the others
run: `kill_volume(n)` SIGKILLs a volume server, `restart_volume(n)` starts it again on its
folder and port. It exposes `endpoint`, `access_key` and `secret_key`, as any test store does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from project.dev.seaweedfs import GRPC_OFFSET, free_http_ports, weed_binary

START_TIMEOUT = 90.0
REPLICATION = "001"  # two copies, on two volume servers of one rack


def _answers(url: str) -> bool:
    """True once `url` answers HTTP at all (an unsigned S3 request gets a 403)."""
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback)
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
        return json.load(response)


@dataclass
class WeedProcess:
    """One `weed` subcommand: started, waited for until `ready()` says so, killed, restarted."""

    name: str
    arguments: list[str]
    log_path: Path
    ready: Callable[[], bool]
    process: subprocess.Popen | None = None
    _log: IO[bytes] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (open for the process's lifetime)
        self.process = subprocess.Popen(
            [weed_binary(), *self.arguments],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self.ready, timeout, f"weed {self.name}", alive=self.running, log=self.log)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye to the master, as when a machine dies."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self._close_log()

    def stop(self, timeout: float = 5.0) -> None:
        if self.running():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    alive: Callable[[], bool] = lambda: True,
    log: Callable[[], str] = lambda: "",
) -> None:
    """Poll `condition` until it holds; fail at once if the process it waits for died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if not alive():
            raise RuntimeError(f"{what} exited:\n{log()[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready within {timeout} s:\n{log()[-3000:]}")


@dataclass
class SeaweedFSCluster:
    """Master, two volume servers, filer and S3 gateway on free loopback ports under `root`."""

    root: Path
    access_key: str
    secret_key: str
    ports: list[int] = field(default_factory=lambda: free_http_ports(5))
    processes: dict[str, WeedProcess] = field(default_factory=dict)

    @property
    def master_port(self) -> int:
        return self.ports[0]

    @property
    def filer_port(self) -> int:
        return self.ports[3]

    @property
    def s3_port(self) -> int:
        return self.ports[4]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def master(self) -> str:
        return f"127.0.0.1:{self.master_port}"

    def volume_name(self, number: int) -> str:
        return f"volume{number}"

    def start(self) -> SeaweedFSCluster:
        """Start every piece in dependency order; return once S3 can store a replicated file."""
        self.root.mkdir(parents=True, exist_ok=True)
        common = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        self._add(
            "master",
            [
                "master",
                *common,
                f"-port={self.master_port}",
                f"-port.grpc={self.master_port + GRPC_OFFSET}",
                f"-mdir={self._folder('master')}",
                f"-defaultReplication={REPLICATION}",
                # Small volumes: the master grows new ones (on both servers) as they fill.
                "-volumeSizeLimitMB=256",
                "-telemetry=false",
            ],
            lambda: _answers(f"http://{self.master}/cluster/status"),
        )
        for number in (1, 2):
            port = self.ports[number]
            self._add(
                self.volume_name(number),
                [
                    "volume",
                    *common,
                    f"-port={port}",
                    f"-port.grpc={port + GRPC_OFFSET}",
                    f"-dir={self._folder(self.volume_name(number))}",
                    f"-mserver={self.master}",
                    "-dataCenter=dc1",
                    "-rack=rack1",
                    "-max=0",  # as many volumes as the disk holds
                    "-minFreeSpace=1GiB",
                    "-preStopSeconds=0",
                ],
                lambda port=port: _answers(f"http://127.0.0.1:{port}/status"),
            )
        self._add(
            "filer",
            [
                "filer",
                *common,
                f"-port={self.filer_port}",
                f"-port.grpc={self.filer_port + GRPC_OFFSET}",
                f"-master={self.master}",
                f"-defaultReplicaPlacement={REPLICATION}",
                f"-defaultStoreDir={self._folder('filer')}",  # not the working directory
                "-dataCenter=dc1",
                "-rack=rack1",
            ],
            lambda: _answers(f"http://127.0.0.1:{self.filer_port}/"),
        )
        identities = self.root / "s3.json"
        identities.write_text(json.dumps(self._identities()))
        self._add(
            "s3",
            [
                "s3",
                "-ip.bind=127.0.0.1",
                f"-port={self.s3_port}",
                f"-port.grpc={self.s3_port + GRPC_OFFSET}",
                f"-filer=127.0.0.1:{self.filer_port}",
                f"-config={identities}",
                "-port.iceberg=0",
                "-port.lance=0",
            ],
            lambda: _answers(self.endpoint + "/"),
        )
        try:
            for process in self.processes.values():
                process.start()
            wait_until(self._both_volumes_counted, START_TIMEOUT, "both volume servers")
            wait_until(self.writable, START_TIMEOUT, "a replicated volume")
        except BaseException:
            self.stop()
            raise
        return self

    def kill_volume(self, number: int) -> None:
        """SIGKILL volume server `number` (1 or 2)."""
        self.processes[self.volume_name(number)].kill()

    def restart_volume(self, number: int) -> None:
        """Start volume server `number` again on its folder and port; wait until the master
        counts it again."""
        self.processes[self.volume_name(number)].start()
        wait_until(self._both_volumes_counted, START_TIMEOUT, "both volume servers")

    def stop(self, *, graceful: bool = True) -> None:
        """Stop every piece, S3 gateway first; `graceful=False` kills them (data thrown away)."""
        for process in reversed(list(self.processes.values())):
            if graceful:
                process.stop()
            else:
                process.kill()

    def logs(self) -> str:
        """The tail of every piece's log, for a failing test's message."""
        return "\n".join(
            f"--- weed {name}\n{process.log()[-1500:]}" for name, process in self.processes.items()
        )

    def volume_servers(self) -> int:
        """How many volume servers the master counts now."""
        try:
            topology = _json(f"http://{self.master}/dir/status")["Topology"]
        except (OSError, ValueError, KeyError):
            return 0
        return sum(
            len(rack.get("DataNodes") or [])
            for center in topology.get("DataCenters") or []
            for rack in center.get("Racks") or []
        )

    def writable(self) -> bool:
        """True once the master can assign a file id with two replicas."""
        try:
            answer = _json(f"http://{self.master}/dir/assign?replication={REPLICATION}")
        except (OSError, ValueError):
            return False
        return bool(answer.get("fid"))

    def _both_volumes_counted(self) -> bool:
        return self.volume_servers() == 2

    def _identities(self) -> dict[str, Any]:
        return {
            "identities": [
                {
                    "name": "partwise",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }

    def _folder(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _add(self, name: str, arguments: list[str], ready: Callable[[], bool]) -> None:
        self.processes[name] = WeedProcess(name, arguments, self.root / f"{name}.log", ready)
