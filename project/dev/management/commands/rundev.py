"""`manage.py rundev` (what `make run` runs): the whole development stack in one terminal.

In order: migrate, a dev user with a generated password and a named API token, the embedded
SeaweedFS (data under var/seaweedfs, fixed ports, S3 on 8333), `setup_storage` (with the origins
of the address served added to the bucket's CORS, so that `--addr 127.0.0.1:8001` uploads from
the browser too), a Celery worker and beat, and Django's development server. Ctrl+C, SIGTERM
or SIGHUP (closing the terminal) stops them in reverse order, SeaweedFS last, so that no process
loses its storage while it still works. A child that dies is started again, at most
RESTART_LIMIT times in RESTART_WINDOW, so one crash of the worker does not take the whole stack
down and a crash loop still ends.

Why a command and not honcho (a Procfile): honcho starts every process at once and stops them
all at once. Here the order matters both ways: the bucket set-up needs SeaweedFS to answer
first, and SeaweedFS must outlive the server and worker that write to it (it takes up to ~15 s
to flush and stop). A command also reuses project.dev.seaweedfs and settings directly, so the
ports and credentials it starts SeaweedFS with are exactly the ones Django will use.
"""

from __future__ import annotations

import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psutil
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test.utils import override_settings

from uploads.exceptions import UploadError
from uploads.tokens.models import ApiToken
from uploads.tokens.services import issue_token

from ...embedded import BASE_DIR, EMBEDDED_S3_ENDPOINT, VAR_DIR
from ...seaweedfs import Ports, SeaweedFS

if TYPE_CHECKING:
    from uploads.services import User

DEV_USERNAME = "dev"
DEV_LOGIN_FILE = "dev-user-password"
# The dev user's key, so that every start prints the same one (names, not secrets).
DEV_TOKEN_FILE = "dev-api-token"  # noqa: S105
DEV_TOKEN_NAME = "make run"  # noqa: S105
START_TIMEOUT = 60.0
# SIGHUP is what a closing terminal sends: the children run in sessions of their own (so that
# Ctrl+C reaches only this command), so without it they would outlive the window.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RESTART_LIMIT = 5
RESTART_WINDOW = 600.0  # seconds
STOP_TIMEOUT = 15.0  # per process; SeaweedFS has its own (seaweedfs.STOP_TIMEOUT)
SEAWEEDFS_PORT_NAMES = {
    "s3": "S3 API",
    "master": "SeaweedFS master",
    "volume": "SeaweedFS volume",
    "filer": "SeaweedFS filer",
    "webdav": "SeaweedFS WebDAV",
    "admin": "SeaweedFS admin",
}


@dataclass(frozen=True)
class DevLogin:
    """What the banner prints. `password` is None once the user changed it (it is theirs now)."""

    username: str
    password: str | None
    token: str


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)  # also when it existed with other bits
    path.write_text(text)


def ensure_dev_user(var_dir: Path = VAR_DIR) -> DevLogin:
    """The dev superuser, its password (generated once, kept under var/) and its API token.

    Dev-only: the password and the token's key are stored in clear under var/ (mode 0600) so
    that `make run` can print them every time; the database keeps only the key's digest, like
    any named token's. The generated password is set only on a user that has none (a new or
    reset database): a password the user changed is theirs and is kept, and the login then
    says so instead of printing the generated one. A key that no longer authenticates as the
    dev user (revoked, or a new database) is replaced by a newly issued token.
    """
    path = var_dir / DEV_LOGIN_FILE
    password = _read(path)
    if not password:
        password = secrets.token_urlsafe(12)
        _write_private(path, password)
    user, _ = get_user_model().objects.get_or_create(
        username=DEV_USERNAME,
        defaults={"email": "dev@localhost", "is_staff": True, "is_superuser": True},
    )
    if not user.password or not user.has_usable_password():  # new, or never given one
        user.set_password(password)
        user.save(update_fields=["password"])
    shown = password if user.check_password(password) else None
    return DevLogin(username=user.get_username(), password=shown, token=_dev_key(user, var_dir))


def _dev_key(user: User, var_dir: Path) -> str:
    path = var_dir / DEV_TOKEN_FILE
    key = _read(path)
    token = ApiToken.find(key) if key else None
    if token is not None and token.user_id == user.pk:
        return key
    try:
        _, key = issue_token(user, name=DEV_TOKEN_NAME)
    except UploadError as error:  # TooManyTokens
        raise CommandError(f"No API token for {user.get_username()}: {error.detail}") from error
    _write_private(path, key)
    return key


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def port_holder(port: int) -> str:
    """Who listens on the TCP port, e.g. "pid 4242 (weed mini …)", or "" when unknown."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:  # AccessDenied on systems that hide other users' sockets
        return ""
    for connection in connections:
        address = connection.laddr
        if connection.status == psutil.CONN_LISTEN and address and address.port == port:
            if connection.pid is None:
                return ""
            try:
                command = " ".join(psutil.Process(connection.pid).cmdline())
            except psutil.Error:
                command = ""
            if len(command) > 80:
                command = command[:77] + "..."
            return f"pid {connection.pid} ({command})" if command else f"pid {connection.pid}"
    return ""


def require_free(port: int, what: str, hint: str) -> None:
    """Refuse to start on a taken port, naming what holds it and how to stop it."""
    if not port_in_use(port):
        return
    message = f"Port {port} ({what}) is already serving on 127.0.0.1"
    holder = port_holder(port)
    if not holder:
        raise CommandError(f"{message}. {hint}")
    pid = holder.split()[1]
    raise CommandError(
        f"{message}: {holder} holds it. {hint} To stop it: kill {pid} (or Ctrl+C in its terminal)."
    )


def served_origins(host: str, port: int) -> list[str]:
    """The origins a browser has on the page rundev serves at host:port.

    127.0.0.1 and localhost are two origins of one server, and README links both; a wildcard
    bind (0.0.0.0, ::) adds them too, since its other names (a LAN address) cannot be known.
    """
    origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    if host not in {"127.0.0.1", "localhost", "0.0.0.0", "::", "[::]"}:  # noqa: S104
        origins.append(f"http://{host}:{port}")
    return origins


def dev_cors_origins(configured: list[str] | tuple[str, ...], host: str, port: int) -> list[str]:
    """UPLOADS_CORS_ORIGINS plus the origins of the address served, in order, each once."""
    return list(dict.fromkeys([*configured, *served_origins(host, port)]))


def cli_path() -> str:
    """Where the `partwise` CLI of this interpreter lives, relative to the checkout if in it."""
    path = Path(sys.executable).parent / "partwise"
    try:
        return str(path.relative_to(BASE_DIR))
    except ValueError:
        return str(path)


class _Prefixed(io.TextIOBase):
    """A stream that hands each whole line to `say`: a called command's output gets the
    `partwise |` prefix of every other line rundev prints."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__()
        self._say = say
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._say(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._say(self._pending)
            self._pending = ""


def parse_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"--addr must be HOST:PORT, not {addr!r}.")
    return host, int(port)


def seaweedfs_ports(s3_port: int) -> Ports:
    """SeaweedFS's documented fixed ports for S3 on 8333; free ones around any other S3 port.

    A non-default S3 port only happens in tests, which must never take fixed ports.
    """
    if s3_port == Ports.s3:
        return Ports()
    ports = Ports.free()
    ports.s3 = s3_port
    return ports


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen
    restarts: deque[float] = field(default_factory=deque)  # monotonic times, in the window

    def may_restart(self, now: float) -> bool:
        """Record a restart at `now` unless RESTART_LIMIT were already used in the window."""
        while self.restarts and now - self.restarts[0] > RESTART_WINDOW:
            self.restarts.popleft()
        if len(self.restarts) >= RESTART_LIMIT:
            return False
        self.restarts.append(now)
        return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM its whole process group (runserver's reloader has a child), then SIGKILL."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


class Command(BaseCommand):
    help = "Run Partwise for development: SeaweedFS, bucket set-up, Celery, the web server."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()  # output lines of the children must not interleave
        self._stop = threading.Event()
        self._children: list[Child] = []
        self._env: dict[str, str] = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="where Django listens")
        parser.add_argument(
            "--embedded-s3",
            choices=["auto", "always", "never"],
            default="auto",
            help="start SeaweedFS on AWS_S3_ENDPOINT_URL's port; auto: only when it is the "
            f"embedded default {EMBEDDED_S3_ENDPOINT}",
        )

    def handle(self, *args: Any, addr: str, embedded_s3: str, **options: Any) -> None:
        host, port = parse_addr(addr)
        endpoint = settings.AWS_S3_ENDPOINT_URL or ""
        embedded = embedded_s3 == "always" or (
            embedded_s3 == "auto" and endpoint == EMBEDDED_S3_ENDPOINT
        )
        seaweed = self._seaweedfs(endpoint) if embedded else None
        if seaweed is not None:
            for name, what in SEAWEEDFS_PORT_NAMES.items():
                require_free(
                    getattr(seaweed.ports, name),
                    what,
                    "Another `make run` (or a SeaweedFS left behind by one) may be running: "
                    "stop it first (`ps aux | grep 'weed mini'`).",
                )
        require_free(
            port, "Django", "Stop the other server, or use another port: make run PORT=8001."
        )
        VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite broker's file lives there

        call_command("migrate", interactive=False, verbosity=0)
        login = ensure_dev_user(VAR_DIR)

        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        failed = ""
        try:
            if seaweed is not None:
                self.say(f"starting SeaweedFS on {seaweed.endpoint} (data in {seaweed.data_dir}) …")
                try:
                    seaweed.start(timeout=START_TIMEOUT)
                except (OSError, RuntimeError) as error:  # TimeoutError is an OSError
                    raise CommandError(f"SeaweedFS did not start: {error}") from error
            origins = dev_cors_origins(settings.UPLOADS_CORS_ORIGINS, host, port)
            if not self._stop.is_set():
                self.setup_storage(origins)
            if not self._stop.is_set():
                failed = self._run(host, port, login, origins)
        finally:
            self.say("stopping …")
            for child in reversed(self._children):
                child.stop()
                self.say(f"{child.name} stopped")
            if seaweed is not None:
                self.say("stopping SeaweedFS (up to ~15 s) …")
                seaweed.stop()
                self.say("SeaweedFS stopped")
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failed:
            raise CommandError(failed)
        self.say("all stopped.")

    def _seaweedfs(self, endpoint: str) -> SeaweedFS:
        url = urlsplit(endpoint)
        if url.scheme != "http" or url.hostname not in {"127.0.0.1", "localhost"} or not url.port:
            raise CommandError(
                f"The embedded SeaweedFS runs on http://127.0.0.1:<port>, not {endpoint!r}."
            )
        if not (settings.AWS_ACCESS_KEY_ID and settings.AWS_SECRET_ACCESS_KEY):
            raise CommandError("The embedded SeaweedFS needs AWS_ACCESS_KEY_ID/SECRET_ACCESS_KEY.")
        data_dir = VAR_DIR / "seaweedfs"
        return SeaweedFS(
            data_dir=data_dir,
            access_key=settings.AWS_ACCESS_KEY_ID,
            secret_key=settings.AWS_SECRET_ACCESS_KEY,
            ports=seaweedfs_ports(url.port),
            log_path=VAR_DIR / "seaweedfs.log",
        )

    def setup_storage(self, origins: list[str]) -> None:
        """`setup_storage` with the bucket's CORS allowing `origins`, its lines prefixed."""
        out = _Prefixed(self.say)
        try:
            with override_settings(UPLOADS_CORS_ORIGINS=origins):
                call_command("setup_storage", stdout=out, stderr=out)
        finally:
            out.flush()

    def _run(self, host: str, port: int, login: DevLogin, origins: list[str]) -> str:
        """Start worker, beat and web; wait for Ctrl+C. Returns why it ended if not asked to."""
        # The children read the same origins, so that the page's CORS warning (uploads/pages.py)
        # agrees with the rule just written.
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._env["UPLOADS_CORS_ORIGINS"] = ",".join(origins)
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "project"]
        # A solo pool: the tasks are short database/S3 calls, and this keeps a laptop (and
        # this 2-core CI machine) from forking one worker process per core.
        self._spawn("worker", [*celery, "worker", "--pool=solo", "--loglevel=INFO"])
        schedule = str(settings.CELERY_BEAT_SCHEDULE_FILENAME)
        self._spawn("beat", [*celery, "beat", f"--schedule={schedule}", "--loglevel=INFO"])
        self._spawn("web", [python, str(BASE_DIR / "manage.py"), "runserver", f"{host}:{port}"])

        deadline = time.monotonic() + START_TIMEOUT
        while not port_in_use(port, host) and not self._stop.is_set():
            if time.monotonic() > deadline:
                return f"the web server did not listen on {host}:{port} within {START_TIMEOUT} s"
            if exited := self._restart_exited():
                return exited
            time.sleep(0.2)
        if not self._stop.is_set():
            self._banner(f"http://{host}:{port}", login)
        while not self._stop.wait(0.5):
            if exited := self._restart_exited():
                return exited
        return ""

    def _restart_exited(self) -> str:
        """Start again each child that died; why to stop everything when one dies too often."""
        for child in self._children:
            code = child.process.poll()
            if code is None or self._stop.is_set():
                continue
            if not child.may_restart(time.monotonic()):
                return (
                    f"{child.name} exited with status {code} {RESTART_LIMIT + 1} times within "
                    f"{RESTART_WINDOW / 60:.0f} minutes; see its output above."
                )
            self.say(
                f"{child.name} exited with status {code}; restarting it "
                f"({len(child.restarts)} of {RESTART_LIMIT} restarts in "
                f"{RESTART_WINDOW / 60:.0f} minutes)"
            )
            child.process = self._popen(child.name, child.command)
        return ""

    def _spawn(self, name: str, command: list[str]) -> None:
        self._children.append(Child(name, command, self._popen(name, command)))

    def _popen(self, name: str, command: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and fixed arguments)
            command,
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env,
            # Its own process group: Ctrl+C reaches only this command, which stops the children
            # in order, and the runserver reloader's child goes with its parent.
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(name, process.stdout), daemon=True).start()
        return process

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self.say(line.decode(errors="replace").rstrip(), prefix=name)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop.is_set():
            self.say("still stopping, please wait …")
        self._stop.set()

    def say(self, text: str, prefix: str = "partwise") -> None:
        with self._lock:
            try:
                self.stdout.write(f"{prefix:<8} | {text}")
                self.stdout.flush()
            except OSError:
                # The terminal is gone (SIGHUP: writes fail with EIO or EPIPE); stopping the
                # children in order matters more than telling a closed window about it.
                pass

    def _banner(self, url: str, login: DevLogin) -> None:
        cli_dir = Path(sys.executable).parent
        lines = [
            "",
            f"Partwise is running at {url}/",
            f"  API docs   {url}/api/docs/",
            f"  admin      {url}/admin/",
            f"  login      {login.username} / {login.password}"
            if login.password
            else f"  login      {login.username} (your own password; to set another: "
            f".venv/bin/python manage.py changepassword {login.username})",
            f"  API token  {login.token}   (send: Authorization: Token {login.token})",
            f"  S3         {settings.AWS_S3_ENDPOINT_URL}  bucket {settings.UPLOADS_BUCKET}",
            f'  CLI        {cli_path()}   (on PATH: export PATH="{cli_dir}:$PATH")',
            "Press Ctrl+C to stop everything.",
            "",
        ]
        for line in lines:
            self.say(line)
