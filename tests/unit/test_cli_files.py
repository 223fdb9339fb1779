"""`partwise download` and `partwise delete` over the fake server: what lands on disk, what is
checked before it does, what is printed, and the exit codes.

tests/integration/test_cli.py runs both against a real server and SeaweedFS.
"""

import os

import pytest

from partwise_client import cli
from partwise_client.downloading import ChecksumCheck, part_sizes
from partwise_client.fingerprint import MiB
from tests.support.fake_partwise import FakePartwise

ARGS = ["--server", "http://partwise.test", "--token", "t"]


@pytest.fixture
def server(monkeypatch):
    fake = FakePartwise()
    monkeypatch.setattr(cli, "PartwiseApi", lambda *args, **kwargs: fake.connect())
    return fake


DATA = os.urandom(3 * MiB + 5)  # four parts of the fake's 1 MiB


def test_download_writes_the_file_under_its_name_after_checking_size_and_sha256(
    server, tmp_path, capsys, monkeypatch
):
    server.add_completed("done", DATA, filename="report.pdf")
    monkeypatch.chdir(tmp_path)

    assert cli.main(["download", "done", "-q", *ARGS]) == cli.OK

    assert (tmp_path / "report.pdf").read_bytes() == DATA
    out = capsys.readouterr().out
    assert (
        out == f"{tmp_path / 'report.pdf'}: downloaded done (3.0 MiB, size and SHA-256 checked)\n"
    )
    assert os.listdir(tmp_path) == ["report.pdf"]  # no temporary file left behind


def test_download_to_a_path_or_into_a_directory(server, tmp_path):
    server.add_completed("done", DATA, filename="report.pdf")
    (tmp_path / "inbox").mkdir()

    assert cli.main(["download", "done", "-q", "-o", str(tmp_path / "copy.bin"), *ARGS]) == 0
    assert cli.main(["download", "done", "-q", "-o", str(tmp_path / "inbox"), *ARGS]) == 0

    assert (tmp_path / "copy.bin").read_bytes() == DATA
    assert (tmp_path / "inbox" / "report.pdf").read_bytes() == DATA


def test_a_name_with_directories_is_written_by_its_last_component_only(server, tmp_path):
    server.add_completed("done", DATA, filename="../../etc/passwd")

    assert cli.main(["download", "done", "-q", "-o", str(tmp_path), *ARGS]) == cli.OK

    assert os.listdir(tmp_path) == ["passwd"]


def test_an_upload_without_checksums_is_checked_by_size(server, tmp_path, capsys):
    server.add_completed("done", DATA, checksum=False)

    assert cli.main(["download", "done", "-q", "-o", str(tmp_path / "f"), *ARGS]) == cli.OK

    assert "(3.0 MiB, size checked)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "served",
    [DATA[:-1], DATA[:-1] + b"!"],
    ids=["truncated", "one-byte-changed"],
)
def test_bytes_that_are_not_the_uploads_are_refused_and_nothing_is_written(
    server, tmp_path, capsys, served
):
    server.add_completed("done", DATA, filename="report.pdf")
    target = tmp_path / "report.pdf"
    target.write_bytes(b"the old file")
    server.objects["done"] = served

    assert cli.main(["download", "done", "-q", "-o", str(target), *ARGS]) == cli.MISMATCH

    err = capsys.readouterr().err
    assert err.startswith("partwise: report.pdf: ")
    assert err.endswith("; nothing written\n")
    assert target.read_bytes() == b"the old file"
    assert os.listdir(tmp_path) == ["report.pdf"]


def test_downloading_an_unfinished_upload_fails_with_the_servers_reason(server, tmp_path, capsys):
    server.add("open", 10)

    assert cli.main(["download", "open", "-q", "-o", str(tmp_path / "f"), *ARGS]) == cli.FAILED

    assert capsys.readouterr().err == "partwise: Not completed. (upload_conflict)\n"
    assert os.listdir(tmp_path) == []


def test_downloading_an_unknown_upload_exits_not_found(server, tmp_path):
    assert cli.main(["download", "nope", "-q", *ARGS]) == cli.NOT_FOUND


def test_delete_names_the_etag_and_prints_what_it_deleted(server, capsys):
    server.add_completed("done", DATA, filename="report.pdf")

    assert cli.main(["delete", "done", *ARGS]) == cli.OK

    assert capsys.readouterr().out == "done: deleted report.pdf (3.0 MiB)\n"
    assert server.uploads["done"]["status"] == "deleted"
    delete = [e for e in server.exchanges if e["operation"] == "delete"]
    assert [e["status"] for e in delete] == [200]


def test_delete_of_an_unfinished_upload_points_at_abort_and_deletes_nothing(server, capsys):
    server.add("open", 10)

    assert cli.main(["delete", "open", *ARGS]) == cli.FAILED

    assert "`partwise abort open`" in capsys.readouterr().err
    assert server.uploads["open"]["status"] == "uploading"


@pytest.mark.parametrize("size", [0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB + 5])
def test_the_composite_checksum_check_agrees_with_s3s_whatever_the_block_boundaries(size):
    fake = FakePartwise()
    data = os.urandom(size)
    upload = fake.add_completed("x", data)
    check = ChecksumCheck(upload["checksum"], part_sizes(fake._json(upload)))

    for start in range(0, size, 300_000):  # blocks that straddle part boundaries
        check.update(data[start : start + 300_000])

    assert check.matches()
