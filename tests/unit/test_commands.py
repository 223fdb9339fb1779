"""The management commands behind `make run`: setup_storage (against moto) and rundev's parts.

The same commands against a real SeaweedFS, and `rundev` as a whole, are in
tests/integration/test_commands.py.
"""

import itertools
import os
import re
import signal
import socket
import stat
from io import StringIO
from pathlib import Path

import psutil
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from project.dev import seaweedfs
from project.dev.management.commands import rundev
from project.dev.seaweedfs import PortClash, Ports, SeaweedFS, free_port
from tests.support.fake_stores import STORES, FakeStore
from uploads.management.commands import setup_storage as setup_storage_command
from uploads.management.commands.setup_storage import lifecycle_days
from uploads.storage import CORS_RULE_ID, LIFECYCLE_RULE_ID, cors_rule, get_storage
from uploads.storage.bucket import cors_rule_to_s3
from uploads.storage.probe import probe_store
from uploads.tokens.models import ApiToken

DAY = 24 * 3600
ORIGINS = ["http://127.0.0.1:8000", "http://localhost:8000"]


def run(*args: str) -> str:
    out = StringIO()
    # The store probe has its own tests (tests/unit/test_store_probe.py, on fakes of each store,
    # and tests/integration/test_store_probe.py on SeaweedFS and Ceph RGW).
    call_command("setup_storage", "--no-probe", *args, stdout=out)
    return out.getvalue()


def failed_check() -> list[str]:
    """`setup_storage --check`, which must fail: each line of its report, up to " (…"."""
    out = StringIO()
    with pytest.raises(CommandError, match="not set up"):
        call_command("setup_storage", "--check", stdout=out)
    return [line.split(" (")[0] for line in out.getvalue().splitlines()]


@pytest.fixture
def fresh_bucket(s3, settings) -> str:
    """Settings naming a bucket that does not exist yet."""
    settings.UPLOADS_BUCKET = "partwise-fresh"
    settings.UPLOADS_CORS_ORIGINS = ORIGINS
    settings.UPLOADS_KEY_PREFIX = "uploads/"
    settings.UPLOADS_STALE_AFTER = 7 * DAY
    return "partwise-fresh"


def rules_of(storage) -> tuple[list, list]:
    """The bucket's CORS and lifecycle rules exactly as S3 holds them."""
    client, bucket = storage.client, storage.bucket
    return (
        client.get_bucket_cors(Bucket=bucket)["CORSRules"],
        client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
    )


# --- setup_storage -------------------------------------------------------------------------
def test_setup_storage_creates_the_bucket_its_cors_and_its_lifecycle_rule(fresh_bucket):
    output = run()

    assert output.splitlines() == [
        "bucket partwise-fresh: created (new bucket)",
        "CORS: created (PUT from http://127.0.0.1:8000, http://localhost:8000; exposes ETag)",
        "lifecycle: created (S3 aborts incomplete multipart uploads under uploads/ after 8 days)",
    ]
    cors, lifecycle = rules_of(get_storage())
    assert cors == [
        {
            "ID": CORS_RULE_ID,
            "AllowedOrigins": ORIGINS,
            "AllowedMethods": ["PUT", "GET", "HEAD"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag", "x-amz-checksum-sha256", "x-amz-checksum-crc32c"],
            "MaxAgeSeconds": 3600,
        }
    ]
    assert lifecycle == [
        {
            "ID": LIFECYCLE_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": "uploads/"},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 8},
        }
    ]


def test_setup_storage_run_twice_changes_nothing_the_second_time(fresh_bucket, monkeypatch):
    run()
    storage = get_storage()
    before = rules_of(storage)
    writes = []
    monkeypatch.setattr(storage, "put_bucket_cors", lambda *a, **k: writes.append("cors"))
    monkeypatch.setattr(
        storage, "put_bucket_lifecycle_configuration", lambda *a, **k: writes.append("lc")
    )

    output = run()

    assert writes == []
    assert [line.split(" (")[0] for line in output.splitlines()] == [
        "bucket partwise-fresh: ok",
        "CORS: ok",
        "lifecycle: ok",
    ]
    assert rules_of(storage) == before


def test_setup_storage_keeps_the_buckets_other_cors_and_lifecycle_rules(fresh_bucket):
    storage = get_storage()
    storage.create_bucket()
    theirs_cors = {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}
    theirs_rule = {
        "ID": "expire-logs",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 30},
    }
    storage.client.put_bucket_cors(
        Bucket=storage.bucket, CORSConfiguration={"CORSRules": [theirs_cors]}
    )
    storage.client.put_bucket_lifecycle_configuration(
        Bucket=storage.bucket, LifecycleConfiguration={"Rules": [theirs_rule]}
    )

    run()
    run()  # and a second run does not pile up copies

    cors, lifecycle = rules_of(storage)
    assert [rule.get("ID") for rule in cors] == [CORS_RULE_ID, None]
    assert cors[1] == theirs_cors
    assert [rule["ID"] for rule in lifecycle] == [LIFECYCLE_RULE_ID, "expire-logs"]
    assert lifecycle[1] == theirs_rule


def test_setup_storage_updates_its_rules_when_the_settings_change(fresh_bucket, settings):
    run()
    settings.UPLOADS_CORS_ORIGINS = ["https://app.example.com"]
    settings.UPLOADS_STALE_AFTER = 2 * DAY

    output = run()

    assert "CORS: updated (PUT from https://app.example.com; exposes ETag)" in output
    assert (
        "lifecycle: updated (S3 aborts incomplete multipart uploads under uploads/ after 3 days)"
        in output
    )
    cors, lifecycle = rules_of(get_storage())
    assert [rule["AllowedOrigins"] for rule in cors] == [["https://app.example.com"]]
    assert [rule["AbortIncompleteMultipartUpload"] for rule in lifecycle] == [
        {"DaysAfterInitiation": 3}
    ]


def test_setup_storage_recognises_its_rule_on_a_server_that_drops_rule_ids(fresh_bucket):
    storage = get_storage()
    storage.create_bucket()
    anonymous = {
        key: value for key, value in cors_rule_to_s3(cors_rule(ORIGINS)).items() if key != "ID"
    }
    storage.client.put_bucket_cors(
        Bucket=storage.bucket, CORSConfiguration={"CORSRules": [anonymous]}
    )

    assert "CORS: ok" in run()
    assert len(storage.get_bucket_cors()) == 1


def test_setup_storage_skips_cors_when_no_origin_is_configured(fresh_bucket, settings):
    settings.UPLOADS_CORS_ORIGINS = []

    output = run()

    assert "CORS: skipped (UPLOADS_CORS_ORIGINS is empty: no browser may upload)" in output
    assert get_storage().get_bucket_cors() == []


def test_setup_storage_check_reports_a_missing_bucket_and_creates_nothing(fresh_bucket):
    out = StringIO()
    with pytest.raises(CommandError, match=r"is not set up: run `manage\.py setup_storage`"):
        call_command("setup_storage", "--check", stdout=out)

    assert out.getvalue().splitlines() == ["bucket partwise-fresh: missing (does not exist)"]
    assert get_storage().head_bucket() is False


def test_setup_storage_check_reports_missing_rules_and_changes_nothing(fresh_bucket):
    get_storage().create_bucket()

    assert failed_check() == [
        "bucket partwise-fresh: ok",
        "CORS: missing",
        "lifecycle: missing",
    ]
    storage = get_storage()
    assert (storage.get_bucket_cors(), storage.get_bucket_lifecycle_configuration()) == ([], [])


def test_setup_storage_check_reports_rules_that_differ(fresh_bucket, settings):
    run()
    settings.UPLOADS_CORS_ORIGINS = ["https://app.example.com"]
    settings.UPLOADS_STALE_AFTER = DAY

    assert failed_check() == [
        "bucket partwise-fresh: ok",
        "CORS: differs",
        "lifecycle: differs",
    ]


def test_setup_storage_check_passes_on_a_bucket_that_is_set_up(fresh_bucket):
    run()

    output = run("--check")

    assert output.splitlines()[-1] == "storage at AWS S3 is set up."


def test_setup_storage_names_the_endpoint_when_storage_fails(fresh_bucket, monkeypatch, settings):
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(CommandError, match=r"HeadBucket\. Is http://127\.0\.0\.1:9 reachable"):
        run()


@pytest.mark.parametrize(
    ("stale_after", "days"),
    [(0, 1), (3600, 2), (DAY, 2), (DAY + 1, 3), (7 * DAY, 8)],
    ids=["zero", "an-hour", "a-day", "a-day-and-a-second", "a-week"],
)
def test_lifecycle_days_are_one_more_than_the_stale_period_rounded_up(stale_after, days):
    assert lifecycle_days(stale_after) == days


# --- rundev: the pieces that do not start processes ------------------------------------------
def test_dev_user_is_a_superuser_whose_password_is_generated_once(db, tmp_path):
    first = rundev.ensure_dev_user(tmp_path)
    second = rundev.ensure_dev_user(tmp_path)

    assert first == second
    assert len(first.password) >= 16
    assert (tmp_path / rundev.DEV_LOGIN_FILE).read_text() == first.password
    assert stat.S_IMODE((tmp_path / rundev.DEV_LOGIN_FILE).stat().st_mode) == 0o600
    user = get_user_model().objects.get(username="dev")
    assert user.is_superuser
    assert user.is_staff
    assert user.check_password(first.password)


def test_dev_user_gets_one_named_token_whose_key_is_kept_under_var(db, tmp_path):
    first = rundev.ensure_dev_user(tmp_path)
    second = rundev.ensure_dev_user(tmp_path)

    assert first.token == second.token
    assert first.token.startswith("pw_")
    path = tmp_path / rundev.DEV_TOKEN_FILE
    assert path.read_text() == first.token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = ApiToken.find(first.token)
    assert token is not None
    assert (token.user.username, token.name) == ("dev", rundev.DEV_TOKEN_NAME)
    assert ApiToken.objects.count() == 1  # the database holds its digest only
    assert first.token not in {token.digest, token.prefix}


def test_a_revoked_dev_token_is_replaced_by_a_new_one(db, tmp_path):
    old = rundev.ensure_dev_user(tmp_path).token
    ApiToken.objects.all().delete()  # revoked (admin, API), or a new database

    new = rundev.ensure_dev_user(tmp_path).token

    assert new != old
    assert ApiToken.find(old) is None
    assert ApiToken.find(new).user.username == "dev"
    assert (tmp_path / rundev.DEV_TOKEN_FILE).read_text() == new


def test_a_dev_token_file_naming_another_users_token_is_replaced(db, tmp_path, user):
    _, theirs = ApiToken.issue(user, name="alice's")
    (tmp_path / rundev.DEV_TOKEN_FILE).write_text(theirs)

    login = rundev.ensure_dev_user(tmp_path)

    assert login.token != theirs
    assert ApiToken.find(login.token).user.username == "dev"


def test_a_password_the_dev_user_changed_survives_every_start(db, tmp_path):
    generated = rundev.ensure_dev_user(tmp_path).password
    user = get_user_model().objects.get(username="dev")
    user.set_password("my own password")
    user.save()

    again = rundev.ensure_dev_user(tmp_path)
    once_more = rundev.ensure_dev_user(tmp_path)

    user.refresh_from_db()
    assert user.check_password("my own password")
    # The banner no longer prints the generated password, which would not work.
    assert again.password is None
    assert once_more.password is None
    assert (tmp_path / rundev.DEV_LOGIN_FILE).read_text() == generated


def test_a_new_database_gives_the_dev_user_the_kept_password_again(db, tmp_path):
    generated = rundev.ensure_dev_user(tmp_path).password
    get_user_model().objects.filter(username="dev").delete()  # `rm var/partwise.sqlite3`

    login = rundev.ensure_dev_user(tmp_path)

    assert login.password == generated
    assert get_user_model().objects.get(username="dev").check_password(generated)


def test_the_banner_says_the_password_is_the_users_own_once_changed(capsys):
    command = rundev.Command()
    command._banner("http://127.0.0.1:8001", rundev.DevLogin("dev", None, "pw_key"))

    out = capsys.readouterr().out
    assert "partwise |   login      dev (your own password; to set another: " in out
    assert "manage.py changepassword dev)" in out


def test_the_banner_prints_the_cli_path_and_how_to_put_it_on_path(capsys, monkeypatch):
    monkeypatch.setattr(rundev.sys, "executable", str(rundev.BASE_DIR / ".venv/bin/python"))
    command = rundev.Command()
    command._banner("http://127.0.0.1:8000", rundev.DevLogin("dev", "secret", "pw_key"))

    out = capsys.readouterr().out
    assert "partwise |   login      dev / secret\n" in out
    assert (
        "partwise |   CLI        .venv/bin/partwise   "
        f'(on PATH: export PATH="{rundev.BASE_DIR}/.venv/bin:$PATH")'
    ) in out


# --- rundev: the bucket's CORS follows the address served ---------------------------------------
@pytest.mark.parametrize(
    ("configured", "addr", "expected"),
    [
        (
            ORIGINS,
            "127.0.0.1:8001",
            [*ORIGINS, "http://127.0.0.1:8001", "http://localhost:8001"],
        ),
        (ORIGINS, "127.0.0.1:8000", ORIGINS),
        (ORIGINS, "localhost:8000", ORIGINS),
        (
            ["https://app.example.com"],
            "0.0.0.0:9000",
            ["https://app.example.com", "http://127.0.0.1:9000", "http://localhost:9000"],
        ),
        (
            [],
            "192.168.1.5:8001",
            ["http://127.0.0.1:8001", "http://localhost:8001", "http://192.168.1.5:8001"],
        ),
    ],
    ids=["another-port", "default-port", "localhost", "all-interfaces", "lan-address"],
)
def test_rundev_allows_the_origins_of_the_address_it_serves(configured, addr, expected):
    host, port = rundev.parse_addr(addr)

    assert rundev.dev_cors_origins(configured, host, port) == expected


def test_rundev_writes_the_buckets_cors_for_the_served_port_and_prefixes_the_lines(
    fresh_bucket, settings, monkeypatch
):
    fake = FakeStore(STORES["aws"])
    probed = probe_store(fake, key_prefix="uploads/", send=fake.send)
    monkeypatch.setattr(setup_storage_command, "probe_and_record_store", lambda: probed)
    out = StringIO()
    command = rundev.Command(stdout=out)
    origins = rundev.dev_cors_origins(settings.UPLOADS_CORS_ORIGINS, "127.0.0.1", 8001)

    command.setup_storage(origins)

    cors, _ = rules_of(get_storage())
    assert cors[0]["AllowedOrigins"] == [*ORIGINS, "http://127.0.0.1:8001", "http://localhost:8001"]
    assert settings.UPLOADS_CORS_ORIGINS == ORIGINS  # only the set-up saw the extra origins
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines[:3]] == [
        f"partwise | bucket {fresh_bucket}: created",
        "partwise | CORS: created",
        "partwise | lifecycle: created",
    ]
    # Then what the store probe found, prefixed as well.
    assert "partwise | store profile: verifies: SHA256, CRC32C, MD5" in lines
    assert all(line.startswith("partwise | ") for line in lines)


def already_serving(port: int) -> str:
    return re.escape(f"Port {port} (S3 API) is already serving on 127.0.0.1")


@pytest.fixture
def listening_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_require_free_refuses_a_port_that_is_already_serving(listening_port):
    with pytest.raises(CommandError, match=already_serving(listening_port)):
        rundev.require_free(listening_port, "S3 API", "Stop it.")


def test_require_free_accepts_a_free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rundev.require_free(port, "S3 API", "Stop it.")


def test_rundev_fails_clearly_when_the_s3_port_is_already_serving(
    db, settings, listening_port, tmp_path
):
    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{listening_port}"
    settings.AWS_ACCESS_KEY_ID = "k"
    settings.AWS_SECRET_ACCESS_KEY = "s"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        web = sock.getsockname()[1]

    with pytest.raises(CommandError, match=already_serving(listening_port)):
        call_command("rundev", "--embedded-s3=always", f"--addr=127.0.0.1:{web}")


def test_rundev_refuses_an_embedded_s3_that_is_not_on_loopback(db, settings):
    settings.AWS_S3_ENDPOINT_URL = "https://s3.example.com"

    with pytest.raises(CommandError, match=re.escape("runs on http://127.0.0.1:<port>")):
        call_command("rundev", "--embedded-s3=always")


@pytest.mark.parametrize("addr", ["8000", "localhost", "127.0.0.1:http"], ids=str)
def test_rundev_refuses_a_malformed_address(addr):
    with pytest.raises(CommandError, match="--addr must be HOST:PORT"):
        rundev.parse_addr(addr)


def test_seaweedfs_keeps_its_documented_ports_next_to_s3_on_8333():
    assert rundev.seaweedfs_ports(8333) == Ports()


def test_seaweedfs_takes_free_ports_next_to_any_other_s3_port():
    ports = rundev.seaweedfs_ports(41234)

    assert ports.s3 == 41234
    fixed = {Ports().master, Ports().volume, Ports().filer, Ports().webdav, Ports().admin}
    assert not fixed & {ports.master, ports.volume, ports.filer, ports.webdav, ports.admin}


def test_free_seaweedfs_ports_and_their_grpc_twins_lie_below_the_ephemeral_range():
    # An outgoing connection takes its local port from the ephemeral range at any moment, so a
    # port picked there can be gone before `weed` binds it.
    floor = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])

    for _ in range(20):
        ports = [*vars(Ports.free()).values()]
        every = ports + [port + seaweedfs.GRPC_OFFSET for port in ports]
        assert len(set(every)) == 12
        assert all(1024 < port < floor for port in every)


def test_free_seaweedfs_ports_pass_over_a_port_another_process_holds(monkeypatch):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        held = holder.getsockname()[1] - seaweedfs.GRPC_OFFSET  # its gRPC twin is taken
        # The held port first, then as many others as the pick needs (some may be taken).
        offered = itertools.chain([held], itertools.count(12001))

        class Offers:
            def randrange(self, start: int, stop: int) -> int:
                return next(offered)

        monkeypatch.setattr(seaweedfs.random, "SystemRandom", Offers)

        assert held not in vars(Ports.free()).values()


def test_a_seaweedfs_start_that_meets_a_taken_port_picks_new_ports(monkeypatch, tmp_path):
    tried: list[Ports] = []

    def start(self, timeout: float = 0) -> SeaweedFS:
        tried.append(self.ports)
        (self.data_dir / "weed.log").parent.mkdir(parents=True, exist_ok=True)
        if len(tried) == 1:
            raise PortClash("weed mini exited with 1: Port allocation failed")
        return self

    monkeypatch.setattr(SeaweedFS, "start", start)

    server = SeaweedFS.on_free_ports(tmp_path / "s3", "key", "secret")

    assert len(tried) == 2
    assert server.ports == tried[1] != tried[0]


def test_a_seaweedfs_start_that_fails_otherwise_is_not_retried(monkeypatch, tmp_path):
    tried = []

    def start(self, timeout: float = 0) -> SeaweedFS:
        tried.append(self.ports)
        raise RuntimeError("weed mini exited with 1: bad flag")

    monkeypatch.setattr(SeaweedFS, "start", start)

    with pytest.raises(RuntimeError, match="bad flag"):
        SeaweedFS.on_free_ports(tmp_path / "s3", "key", "secret")
    assert len(tried) == 1


def test_rundev_reports_a_seaweedfs_that_does_not_start_and_stops_it(
    db, settings, tmp_path, monkeypatch
):
    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    settings.AWS_ACCESS_KEY_ID = "k"
    settings.AWS_SECRET_ACCESS_KEY = "s"
    monkeypatch.setattr(rundev, "VAR_DIR", tmp_path)
    stopped = []

    def fail(self, timeout):
        raise RuntimeError("weed mini exited with 1; see weed.log")

    monkeypatch.setattr(rundev.SeaweedFS, "start", fail)
    monkeypatch.setattr(rundev.SeaweedFS, "stop", lambda self: stopped.append(self.data_dir))

    with pytest.raises(CommandError, match="SeaweedFS did not start: weed mini exited with 1"):
        call_command("rundev", "--embedded-s3=always", f"--addr=127.0.0.1:{free_port()}")

    assert stopped == [tmp_path / "seaweedfs"]
    assert (tmp_path / rundev.DEV_LOGIN_FILE).exists()


# --- rundev: ports, restarts --------------------------------------------------------------------
def test_a_taken_port_is_refused_naming_the_process_that_holds_it_and_how_to_stop_it():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(CommandError) as refused:
            rundev.require_free(port, "Django", "Or pass --addr.")

    message = str(refused.value)
    assert message.startswith(
        f"Port {port} (Django) is already serving on 127.0.0.1: pid {os.getpid()} ("
    )
    # This process's command line (pytest's, or an xdist worker's `python -c …`).
    assert f"({psutil.Process().cmdline()[0]} " in message
    assert message.endswith(
        f"Or pass --addr. To stop it: kill {os.getpid()} (or Ctrl+C in its terminal)."
    )


def test_a_free_port_is_not_refused():
    rundev.require_free(free_port(), "Django", "")


def test_a_child_is_restarted_at_most_the_limit_within_the_window_and_again_after_it():
    child = rundev.Child("worker", ["celery"], process=None)  # type: ignore[arg-type]
    start = 1000.0

    assert [child.may_restart(start + i) for i in range(rundev.RESTART_LIMIT + 1)] == [
        *[True] * rundev.RESTART_LIMIT,
        False,
    ]
    # Once the first restart is older than the window, there is room for one more.
    assert child.may_restart(start + rundev.RESTART_WINDOW + 0.5) is True
    assert child.may_restart(start + rundev.RESTART_WINDOW + 0.6) is False


def test_rundev_stops_on_sighup_like_on_ctrl_c():
    assert signal.SIGHUP in rundev.STOP_SIGNALS
    assert signal.SIGINT in rundev.STOP_SIGNALS
