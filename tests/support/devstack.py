"""`manage.py rundev` (what `make run` runs) as a subprocess: its output line by line, the
processes it started, and optionally a terminal of its own to close. The rundev tests and the
dev-stack load script (tests/bench/bench_dev_stack.py) share it.
"""

import contextlib
import fcntl
import os
import pty
import queue
import secrets
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import psutil

from project.dev.embedded import BASE_DIR
from project.dev.seaweedfs import free_port


def dev_environment(var_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment for a rundev of its own: state under `var_dir`, S3 on a
    free port with fresh credentials, and none of the outer AWS_/UPLOADS_/… settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "UPLOADS_", "DJANGO_", "DATABASE_", "CELERY_"))
    }
    env.update(
        PARTWISE_VAR_DIR=str(var_dir),
        AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        AWS_ACCESS_KEY_ID="dev" + secrets.token_hex(6),
        AWS_SECRET_ACCESS_KEY=secrets.token_urlsafe(24),
        **extra,
    )
    return env


def _take_terminal() -> None:
    """In the child: make the pty on stdin its controlling terminal, as a shell's window is."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class DevStack:
    """One `manage.py rundev` subprocess whose output is collected line by line.

    With `terminal=True` it runs on a pseudo-terminal of its own, as in a terminal window:
    `hang_up()` then closes the window (the kernel sends SIGHUP to it).
    """

    def __init__(self, env: dict[str, str], web_port: int, terminal: bool = False) -> None:
        self.web = f"http://127.0.0.1:{web_port}"
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._terminal: int | None = None
        self._hang_up = threading.Event()
        streams: dict = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        if terminal:
            self._terminal, window = pty.openpty()
            streams = {"stdin": window, "stdout": window, "stderr": window}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "rundev",
                "--embedded-s3=always",
                f"--addr=127.0.0.1:{web_port}",
            ],
            cwd=BASE_DIR,
            env=env,
            start_new_session=True,
            preexec_fn=_take_terminal if terminal else None,
            **streams,
        )
        if terminal:
            os.close(window)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        if self._terminal is None:
            for line in self.process.stdout:
                self._queue.put(line.rstrip("\n"))
            return
        pending = b""
        while True:
            # Closing the terminal must happen on this thread: a read blocked on it would keep
            # it open (and the hang-up would never come).
            if self._hang_up.is_set():
                os.close(self._terminal)
                return
            ready, _, _ = select.select([self._terminal], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self._terminal, 65536)
            except OSError:  # EIO: the process exited and nobody holds the terminal
                chunk = b""
            if not chunk:
                self._hang_up.wait()
                os.close(self._terminal)
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._queue.put(line.decode(errors="replace").rstrip("\r"))

    def hang_up(self) -> None:
        """Close the terminal window: the kernel sends SIGHUP to the command in it."""
        assert self._terminal is not None
        self._hang_up.set()

    def descendants(self) -> list[psutil.Process]:
        """Every process this stack started (worker, beat, web and its reloader, SeaweedFS)."""
        return psutil.Process(self.process.pid).children(recursive=True)

    def child(self, *words: str) -> psutil.Process:
        """The one started process whose command line holds all the words."""
        (found,) = [
            process
            for process in self.descendants()
            if all(word in process.cmdline() for word in words)
        ]
        return found

    def wait_for(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None and self._queue.empty():
                    break
                continue
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never came; output:\n" + "\n".join(self.lines))

    def drain(self) -> None:
        """Take every line that has come so far into `lines`."""
        while True:
            try:
                self.lines.append(self._queue.get_nowait())
            except queue.Empty:
                return

    def wait_for_any(self, timeout: float) -> None:
        """Wait until one more line comes (or `timeout` seconds pass) and take it."""
        try:
            self.lines.append(self._queue.get(timeout=timeout))
        except queue.Empty:
            return

    def value(self, label: str) -> str:
        line = next(line for line in self.lines if f"  {label}" in line)
        return line.split(label, 1)[1].split()[0]

    def interrupt(self, timeout: float = 90) -> int:
        """Ctrl+C, as a terminal sends it; returns the exit status."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        self.wait_for("all stopped.", timeout=5)
        return code

    def kill(self) -> None:
        """SIGKILL the stack and everything it started (only when a test failed half-way)."""
        if self.process.poll() is None:
            started = self.descendants()
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            for process in started:  # in sessions of their own: killpg did not reach them
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
        self._hang_up.set()
