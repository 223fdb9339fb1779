"""The `partwise` command as a user meets it, over the fake server (and, for "the server is
down", over a port nobody listens on): what it prints, where, and its exit codes.

tests/integration/test_cli.py runs the same command as a process against a real server.
"""

import os
import re
import socket
import time

import pytest

from partwise_client import cli
from partwise_client.fingerprint import MiB
from tests.support.fake_partwise import FakePartwise

ARGS = ["--server", "http://partwise.test", "--token", "t", "--part-size", "1M"]


@pytest.fixture
def server(monkeypatch):
    fake = FakePartwise()
    # Every PartwiseApi the command makes is another client of the one fake server.
    monkeypatch.setattr(cli, "PartwiseApi", lambda *args, **kwargs: fake.connect())
    return fake


def write(path, size=3 * MiB + 5):
    path.write_bytes(os.urandom(size))
    return path


def test_uploading_a_file_already_uploaded_says_so_and_uploads_nothing(server, tmp_path, capsys):
    path = write(tmp_path / "clip.bin")
    assert cli.main(["upload", str(path), "-q", *ARGS]) == cli.OK
    puts = len(server.puts)
    capsys.readouterr()

    assert cli.main(["upload", str(path), "-q", *ARGS]) == cli.OK
    out = capsys.readouterr().out
    assert f"{path}: already uploaded as new-0" in out
    assert "--again" in out
    assert (len(server.created), len(server.puts)) == (1, puts)


def test_again_uploads_an_uploaded_file_once_more(server, tmp_path, capsys):
    path = write(tmp_path / "clip.bin")
    assert cli.main(["upload", str(path), "-q", *ARGS]) == cli.OK
    assert cli.main(["upload", str(path), "-q", "--again", *ARGS]) == cli.OK
    assert len(server.created) == 2
    assert server.completed == server.created


def test_a_directory_uploads_the_files_directly_in_it_and_names_what_it_skips(
    server, tmp_path, capsys
):
    folder = tmp_path / "photos"
    (folder / "raw").mkdir(parents=True)
    write(folder / "b.bin", 10)
    write(folder / "a.bin", 2 * MiB)
    write(folder / "raw" / "c.bin", 10)
    assert cli.main(["upload", str(folder), "-q", *ARGS]) == cli.OK
    assert [server.uploads[u]["filename"] for u in server.created] == ["a.bin", "b.bin"]
    assert f"skipping {folder / 'raw'}/ (directories are not recursed into)" in (
        capsys.readouterr().err
    )


def test_a_missing_file_is_a_usage_error_before_anything_is_uploaded(server, tmp_path, capsys):
    path = write(tmp_path / "here.bin")
    code = cli.main(["upload", str(path), str(tmp_path / "gone.bin"), "-q", *ARGS])
    assert code == cli.USAGE
    assert "gone.bin: no such file" in capsys.readouterr().err
    assert server.created == []


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_list_with_the_server_down_fails_in_seconds_with_one_line(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code = cli.main(["list", "--server", url, "--token", "t"])
    took = time.monotonic() - started
    captured = capsys.readouterr()
    assert code == cli.FAILED
    assert took < 10
    assert captured.out == ""
    assert captured.err == f"partwise: cannot reach {url} (connection refused) (unreachable)\n"


def test_ctrl_c_names_the_file_to_resume(server, tmp_path, capsys):
    path = write(tmp_path / "movie.bin")

    def ctrl_c(fake, answer):
        raise KeyboardInterrupt

    server.on("report", ctrl_c)
    assert cli.main(["upload", str(path), "-q", *ARGS]) == cli.INTERRUPTED
    err = capsys.readouterr().err
    assert f"interrupted: {path} is not finished" in err
    assert f"`partwise resume {path}` continues" in err


def test_a_failed_login_prints_the_error_on_stderr_nothing_on_stdout_and_exits_non_zero(
    server, monkeypatch, capsys
):
    monkeypatch.setenv("PARTWISE_PASSWORD", "wrong")
    code = cli.main(["login", "alice", "--server", "http://partwise.test"])
    captured = capsys.readouterr()
    assert code == cli.AUTH
    assert captured.out == ""  # `export PARTWISE_TOKEN=$(partwise login …)` gets no text
    assert "Wrong username or password." in captured.err


def test_a_login_prints_the_token_alone(server, monkeypatch, capsys):
    monkeypatch.setenv("PARTWISE_PASSWORD", "right")
    assert cli.main(["login", "alice", "--server", "http://partwise.test"]) == cli.OK
    assert capsys.readouterr().out == "pw_new_secret\n"


def test_the_bar_and_the_summary_speak_mib(server, tmp_path, capsys):
    path = write(tmp_path / "clip.bin", 3 * MiB + MiB // 2)
    assert cli.main(["upload", str(path), *ARGS]) == cli.OK
    captured = capsys.readouterr()
    assert "3.5/3.5 MiB" in captured.err  # the bar's last state
    assert "(3.5 MiB, 4 parts sent, 0 already there)" in captured.out
    # No other unit family anywhere: no kB, MB, GB (SI) nor bare B/s.
    assert not re.search(r"\d\s?[kMG]B\b|\d\s?B/s", captured.err + captured.out)


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0.0 MiB"), (10, "0.000 MiB"), (MiB // 2, "0.5 MiB"), (1536 * MiB, "1,536.0 MiB")],
)
def test_sizes_are_mib(size, shown):
    assert cli.mib(size) == shown
